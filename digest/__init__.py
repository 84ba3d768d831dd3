"""digest: turn a stream of articles into tag-grouped email digests and send them.

The flow, one module per step: sources (``ingest``) -> ``store`` -> ``digests`` (periods,
grouping, variants) -> ``render`` (Jinja2 + premailer) -> ``messages`` (MIME templates and
per-recipient personalisation) -> ``ledger`` (deliveries) -> ``send`` (SMTP / Maildir).
"""

__version__ = "0.1.0"
