"""Group commit: log and metric batches and reports from many requests share one store transaction.

One thread drains the queue: it takes every batch waiting (up to a group's worth of rows), checks all their rows
together (`row_checks`, refusing only the items holding a bad row), stores the rest with `store.ingest.append` in one
transaction, and only then resolves the requests' futures (one hand-over to the event loop per group), so a request
is acknowledged after the commit that holds its batch. While one group commits, the next one gathers. A full queue
refuses new batches at once (`Overloaded`, answered 503 with Retry-After) instead of letting waits grow.
`window()` tells how long the last minute's commits took and how long their batches waited (`GET /health`).
"""

import asyncio
import logging
import threading
import time
from collections import deque

from ltm.api import row_checks
from ltm.store import Database, ingest

log = logging.getLogger("ltm.api")

GROUP_ROWS = 200_000  # rows per transaction: bounds a group's memory and its commit time
RETRY_AFTER_SECONDS = 1
WINDOW_SECONDS = 60  # what `window()` reports on

_Entry = tuple[ingest.Batch | ingest.Report, asyncio.Future, float]  # the item, its request's future, submitted at


class Overloaded(Exception):
    """The queue holds `QUEUED_ROWS` already; nothing of the batch was taken."""


class GroupCommit:
    def __init__(
        self,
        db: Database,
        terminal: frozenset[str],
        group_rows: int = GROUP_ROWS,
        queued_rows: int = 1_000_000,
    ) -> None:
        self.db = db
        self.terminal = terminal
        self.group_rows = group_rows
        self.queued_rows = queued_rows
        self._pending: deque[_Entry] = deque()
        self._rows = 0
        self._recent: deque[tuple[float, int, float, float]] = deque()  # ended, batches, commit and wait seconds
        self._recent_lock = threading.Lock()
        self._changed = threading.Condition()
        self._stopping = False
        self.groups = 0
        self.batches = 0
        self._thread = threading.Thread(target=self._drain, name="group-commit", daemon=True)
        self._thread.start()

    @property
    def queued_batches(self) -> int:
        return len(self._pending)

    def window(self) -> dict:
        """The groups committed in the last WINDOW_SECONDS: how many, their batches, and the p50/p99 of a commit's
        duration and of the wait of each group's oldest batch (from submit to its commit's start), in ms."""
        with self._recent_lock:
            self._forget(time.monotonic())
            recent = list(self._recent)
        commits = sorted(seconds * 1000 for _, _, seconds, _ in recent)
        waits = sorted(waited * 1000 for _, _, _, waited in recent)
        return {
            "seconds": WINDOW_SECONDS,
            "commits": len(recent),
            "batches": sum(batches for _, batches, _, _ in recent),
            "commit_ms_p50": _percentile(commits, 0.5),
            "commit_ms_p99": _percentile(commits, 0.99),
            "wait_ms_p50": _percentile(waits, 0.5),
            "wait_ms_p99": _percentile(waits, 0.99),
        }

    def _forget(self, now: float) -> None:
        while self._recent and self._recent[0][0] < now - WINDOW_SECONDS:
            self._recent.popleft()

    def _record(self, batches: int, started: float, oldest: float) -> None:
        ended = time.monotonic()
        with self._recent_lock:
            self._recent.append((ended, batches, ended - started, started - oldest))
            self._forget(ended)

    def submit(self, item: ingest.Batch | ingest.Report) -> asyncio.Future:
        """A future of the running event loop that resolves to what `ingest.append` makes of the item once
        committed, or to the exception refusing it. Raises Overloaded when the queue is full (an item larger than the
        whole queue is taken when it is empty)."""
        future = asyncio.get_running_loop().create_future()
        rows = _rows(item)
        with self._changed:
            if self._stopping:
                raise Overloaded("API 正在停止")
            if self._pending and self._rows + rows > self.queued_rows:
                raise Overloaded(f"写入队列已满（{self._rows} 行待写入）")
            self._pending.append((item, future, time.monotonic()))
            self._rows += rows
            self._changed.notify()
        return future

    def stop(self, timeout: float = 30.0) -> None:
        """Commit what is queued, then stop taking batches."""
        with self._changed:
            self._stopping = True
            self._changed.notify()
        self._thread.join(timeout)

    def _take(self) -> list[_Entry]:
        with self._changed:
            while not self._pending and not self._stopping:
                self._changed.wait()
            group, rows = [], 0
            while self._pending and (not group or rows + _rows(self._pending[0][0]) <= self.group_rows):
                entry = self._pending.popleft()
                size = _rows(entry[0])
                rows += size
                self._rows -= size
                group.append(entry)
            return group

    def _drain(self) -> None:
        while True:
            group = self._take()
            if not group:
                return  # stopping, and nothing is left
            self._commit(group)

    def _commit(self, group: list[_Entry]) -> None:
        started = time.monotonic()
        try:
            refusals = row_checks.refused([item for item, _, _ in group])
        except Exception as exc:  # the writer thread must live on: each request of the group answers 500 instead
            log.exception("检查一组 %d 个批次的行时出错", len(group))
            refusals = dict.fromkeys(range(len(group)), exc)
        _resolve([(group[index][1], refusal) for index, refusal in refusals.items()])
        group = [entry for index, entry in enumerate(group) if index not in refusals]
        if not group:
            return
        try:
            outcomes = ingest.append(self.db, [item for item, _, _ in group], self.terminal)
        except Exception as exc:
            if len(group) > 1:
                log.warning("一组 %d 个批次写入失败，逐个重试：%s", len(group), exc)
                for entry in group:
                    self._commit([entry])
                return
            outcomes = [exc]
        self.groups += 1
        self.batches += len(group)
        self._record(len(group), started, min(submitted for _, _, submitted in group))
        _resolve([(future, outcome) for (_, future, _), outcome in zip(group, outcomes)])


def _resolve(outcomes: list[tuple[asyncio.Future, object]]) -> None:
    """Hands the outcomes to their event loop in one call: a wake-up per group rather than per request."""
    if not outcomes:
        return
    try:
        outcomes[0][0].get_loop().call_soon_threadsafe(_settle, outcomes)
    except RuntimeError:  # the loop has closed: no request is left to answer
        log.warning("事件循环已关闭，%d 个写入结果无人接收", len(outcomes))


def _settle(outcomes: list[tuple[asyncio.Future, object]]) -> None:
    for future, outcome in outcomes:
        if future.done():  # its request went away (the client disconnected) and cancelled it
            continue
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


def _percentile(ordered: list[float], share: float) -> float | None:
    """Nearest rank; None when there is nothing to rank."""
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 2)


def _rows(item: ingest.Batch | ingest.Report) -> int:
    return max(1, sum(batch.rows.num_rows for batch in ingest.batches_of(item)))
