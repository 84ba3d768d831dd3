"""Feedback: what comes back after delivery — bounce and complaint reports from mailboxes
(``reports``, ``mailboxes``) and provider webhooks (``webhooks``, verified), the policy that turns
them into subscription changes (``policy``), the record of them (``events``, which writes
``bounce_events``), and the wiring that matches, records and applies them (``process`` for
mailboxes, ``receive`` for the web endpoints)."""
