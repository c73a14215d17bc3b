"""The one DuckDB connection of the process that owns the store file."""

import os
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from ltm.store import backup, compaction, migrations


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def to_db_time(value: datetime) -> datetime:
    """Store naive UTC; a naive input is taken to be UTC already."""
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def from_db_time(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=timezone.utc)


class _Gate:
    """Readers–writer gate over the connection: cursors share it; compaction and close take it alone.

    Taking it alone waits for the cursors in flight and stops new ones meanwhile; a thread that already holds
    a cursor may still open another, so nested cursors cannot deadlock against a waiting compaction."""

    def __init__(self) -> None:
        self._changed = threading.Condition(threading.Lock())
        self._shared = 0
        self._waiting = 0
        self._alone = False
        self._held = threading.local()

    def enter(self) -> None:
        depth = getattr(self._held, "depth", 0)
        with self._changed:
            while self._alone or (self._waiting and not depth):
                self._changed.wait()
            self._shared += 1
        self._held.depth = depth + 1

    def leave(self) -> None:
        self._held.depth -= 1
        with self._changed:
            self._shared -= 1
            if not self._shared and self._waiting:
                self._changed.notify_all()

    @contextmanager
    def alone(self) -> Iterator[None]:
        with self._changed:
            self._waiting += 1
            try:
                while self._alone or self._shared:
                    self._changed.wait()
            finally:
                self._waiting -= 1
            self._alone = True
        try:
            yield
        finally:
            with self._changed:
                self._alone = False
                self._changed.notify_all()


@contextmanager
def _begun(cur: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    cur.begin()
    try:
        yield cur
    except BaseException:
        cur.rollback()
        raise
    cur.commit()


class Database:
    """Owns the connection. Readers take a cursor each; appends (`store.ingest.append`) and every row
    update or delete run inside `writing()` (one writer at a time: concurrent UPDATEs of one DuckDB row conflict),
    and deleting runs inside `removing_runs()`; `compact` swaps the connection for one on a rewritten file while no
    cursor is open.

    Lock order, wherever several are held: writer, then the gate (a cursor)."""

    def __init__(self, path: Path | str, memory_limit: str | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._config = {"memory_limit": memory_limit} if memory_limit else {}
        self._connection = self._connect()
        self._remove_leftovers()
        self._writer = threading.RLock()
        self._gate = _Gate()
        self._seq_lock = threading.Lock()
        migrations.apply(self._connection, utc_now())
        self._next_log_seq = self.fetch_one("SELECT coalesce(max(seq), 0) + 1 FROM logs")[0]

    def _connect(self) -> duckdb.DuckDBPyConnection:
        return duckdb.connect(str(self.path), config=self._config)

    def _remove_leftovers(self) -> None:
        """What a process killed mid-compaction or mid-backup left behind. Only the one process that holds the
        store's connection gets here, so none of it is in use."""
        compaction.remove(compaction.staging_of(self.path))
        backup.remove_partial(self.path)

    @property
    def schema_version(self) -> int:
        return self.fetch_one("SELECT max(version) FROM schema_version")[0]

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        self._gate.enter()
        try:
            cur = self._connection.cursor()
            try:
                yield cur
            finally:
                cur.close()
        finally:
            self._gate.leave()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self.cursor() as cur, _begun(cur):
            yield cur

    @contextmanager
    def removing_runs(self, run_ids: Iterable[str]) -> Iterator[duckdb.DuckDBPyConnection]:
        """The writer's transaction: appends (group commit) hold the writer too, so a batch either commits before
        the deletion starts or begins after it and finds its run gone."""
        with self.writing(transaction=True) as cur:
            yield cur

    @contextmanager
    def writing(self, transaction: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """The one writer: re-entrant, so a caller that checks and then writes holds it across both."""
        with self._writer:
            with self.transaction() if transaction else self.cursor() as cur:
                yield cur

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

    def compact(self) -> dict:
        """Rewrite the store into a fresh file beside it and swap that in, giving back the space of deleted rows.

        Waits for the cursors in flight; new ones wait until the swap is done. On any failure before the swap
        the store file is left untouched and the partial copy removed."""
        started = time.monotonic()
        with self._gate.alone():
            before = compaction.footprint(self.path)
            staging = compaction.staging_of(self.path)
            compaction.remove(staging)
            try:
                tables = compaction.copy_store(self._connection, staging)
                self._swap_in(staging)
            finally:
                compaction.remove(staging)
            after = compaction.footprint(self.path)
        return {
            "bytes_before": before,
            "bytes_after": after,
            "tables": tables,
            "seconds": round(time.monotonic() - started, 3),
        }

    def _swap_in(self, staging: Path) -> None:
        """Close the connection, move `staging` over the store file and reopen; the old file's WAL goes with it."""
        self._connection.close()
        try:
            os.replace(staging, self.path)
            compaction.wal_of(self.path).unlink(missing_ok=True)
        finally:
            self._connection = self._connect()

    def close(self) -> None:
        """Fold the WAL into the file so a clean stop leaves no WAL behind."""
        with self._gate.alone():
            self._connection.execute("CHECKPOINT")
            self._connection.close()
