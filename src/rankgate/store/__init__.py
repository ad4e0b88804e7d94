"""Storage: SQLAlchemy Core tables (``tables.py``) and the background request-log writer."""
