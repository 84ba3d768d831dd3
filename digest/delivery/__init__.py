"""Delivery: to whom and how — publishing a built issue to its audience (``publish``), the
delivery ledger (``ledger``), personalising each message (``personalise``), transports (SMTP,
Maildir), sending (``send``), exact previews (``preview``) and transactional notices
(confirmation emails, ``notices``)."""
