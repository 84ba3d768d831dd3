"""Ingest: the one import path from the outside world into the article store. Source readers
(``sources``: feeds, JSON, article files; ``pages``: web pages; ``scraped``: text scrapes;
``documents``: which file or URL is which; ``dates``), HTTP fetching (``http``), the feed
registry (``feeds``), full text for summary-only feeds (``fulltext``), unchanged-source
detection (``unchanged``) and the pipeline that ties them together (``pipeline``). First stage
of the flow."""
