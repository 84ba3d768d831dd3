"""Issues: what goes out — periods and issue dates (``periods``), which articles an issue gets
(``selection``) and how they are grouped (``sections``), rendering (``render``) into a message
template (``template``), building variants (``build``) and the stored digests (``store``)."""
