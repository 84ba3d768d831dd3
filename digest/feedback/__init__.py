"""Feedback: what comes back after delivery — bounce and complaint reports from mailboxes
(``reports``, ``mailboxes``) and provider webhooks (``webhooks``), and the policy that turns
them into subscription changes (``policy``)."""
