"""Articles: the store of what was ingested — the records a source reader hands in (``inputs``),
writing them (``writes``: sanitising, keys, canonical URLs, tags), and the one read model
(``reads``). Second stage of the flow; ``ingest`` feeds it, ``issues`` reads it."""
