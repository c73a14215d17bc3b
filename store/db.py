"""The one DuckDB connection of the process that owns the store file."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from store.migrations import MIGRATIONS


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def to_db_time(value: datetime) -> datetime:
    """Store naive UTC; a naive input is taken to be UTC already."""
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def from_db_time(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=timezone.utc)


class Database:
    """Owns the connection. Readers and appenders take a cursor each; row updates take `write_lock`."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connection = duckdb.connect(str(self.path))
        self.write_lock = threading.RLock()
        self._seq_lock = threading.Lock()
        self._migrate()
        self._next_log_seq = self.fetch_one("SELECT coalesce(max(seq), 0) + 1 FROM logs")[0]

    def _migrate(self) -> None:
        con = self._connection
        con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL)")
        current = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
        for version, statements in MIGRATIONS:
            if version <= current:
                continue
            con.begin()
            try:
                for statement in statements:
                    con.execute(statement)
                con.execute("INSERT INTO schema_version VALUES (?, ?)", [version, utc_now()])
                con.commit()
            except BaseException:
                con.rollback()
                raise

    @property
    def schema_version(self) -> int:
        return self.fetch_one("SELECT max(version) FROM schema_version")[0]

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        cur = self._connection.cursor()
        try:
            yield cur
        finally:
            cur.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self.cursor() as cur:
            cur.begin()
            try:
                yield cur
            except BaseException:
                cur.rollback()
                raise
            cur.commit()

    def fetch_one(self, sql: str, params: list | None = None) -> tuple | None:
        with self.cursor() as cur:
            return cur.execute(sql, params or []).fetchone()

    def fetch_all(self, sql: str, params: list | None = None) -> list[tuple]:
        with self.cursor() as cur:
            return cur.execute(sql, params or []).fetchall()

    def fetch_dicts(self, sql: str, params: list | None = None) -> list[dict]:
        with self.cursor() as cur:
            result = cur.execute(sql, params or [])
            columns = [d[0] for d in result.description]
            return [dict(zip(columns, row)) for row in result.fetchall()]

    def reserve_log_seq(self, count: int) -> int:
        """First of `count` consecutive log sequence numbers, unique and increasing in this process."""
        with self._seq_lock:
            first = self._next_log_seq
            self._next_log_seq += count
            return first

    def close(self) -> None:
        """Fold the WAL into the file so a clean stop leaves no WAL behind."""
        self._connection.execute("CHECKPOINT")
        self._connection.close()
