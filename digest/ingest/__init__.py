"""Ingest: the one import path from the outside world into the article store. Source readers
(``sources``: feeds, JSON, documents; ``dates``), HTTP fetching (``http``), the feed registry
(``feeds``), unchanged-source detection (``unchanged``) and the pipeline that ties them together
(``pipeline``). First stage of the flow."""
