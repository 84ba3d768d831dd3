"""Issues: what goes out — periods and issue dates (``periods``), which articles an issue gets
(``selection``) and how they are grouped (``sections``), rendering (``render``, ``compose`` in the
list's language and brand within the size ``budget``, with ``subjects`` and per-part ``transfer``
encodings) into a message template (``template``), building variants (``build``), the stored
digests (``store``), and what editors do to an issue (``edits``, ``approval``, ``overview``)."""
