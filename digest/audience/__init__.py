"""Audience: who gets what — mailing lists (``lists``), subscribers and subscriptions with the
one admission rule (``records``, ``subscriptions``), their history (``history``), the
suppression list (``suppressions``) and subscriber CSV files (``csvfiles``)."""
