"""The DuckDB store: the only package that writes SQL."""

from ltm.store.db import Database, from_db_time, to_db_time, utc_now

__all__ = ["Database", "from_db_time", "to_db_time", "utc_now"]
