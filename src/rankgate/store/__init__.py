"""Storage: the schema (``tables.py``), the background request-log writer (``request_log.py``)
and the typed read/write layer every other module goes through instead of writing SQL:
``outcome_store`` (outcomes), ``request_queries`` (reads of the request log) and ``key_store``
(virtual keys)."""
