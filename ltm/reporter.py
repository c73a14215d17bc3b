"""Buffers a run's logs, metrics and progress and sends them in batches from a background thread: one request
per flush (`POST …/report`) carries a log batch, a metric batch and the progress."""

import math
import threading
import time
import uuid
from collections import deque
from datetime import datetime
from typing import Any

import httpx

from ltm import arrow_batches
from ltm.client import ApiError, Client
from ltm.limits import INGEST_BODY_LIMIT, MIB
from ltm.models import MAX_LOG_MESSAGE, LogLevel, ProgressReport, RunStatus

MAX_BATCH_ROWS = 50_000
TRUNCATED = "…（已截断）"
MAX_BATCH_TEXT = 4 * 1024 * 1024  # characters of log text per batch: at most 12 MiB of UTF-8, under the API's 16 MiB
MAX_REPORT_BYTES = INGEST_BODY_LIMIT - MIB  # a log and a metric batch larger together go in two reports


class RunReporter:
    """A retried batch keeps its id and a retried artifact its path, so the API stores each once. When the API is
    busy (503 with Retry-After) the reporter waits as long as it asks before sending again, buffering meanwhile."""

    def __init__(self, client: Client, project_id: str, run_id: str, interval: float = 0.5) -> None:
        self.client = client
        self.project_id = project_id
        self.run_id = run_id
        self.interval = interval
        self.remote_status: RunStatus | None = None
        self._lines = _Columns(3)  # timestamp, level, message
        self._points = _Columns(4)  # name, step, value, timestamp
        self._progress: dict[str, Any] = {}
        self._artifacts: list[dict] = []
        self._outbox: deque = deque()
        self._buffer_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._stop = threading.Event()
        self._quiet_until = 0.0  # monotonic time before which the API asked not to be called again
        self._thread = threading.Thread(target=self._loop, name=f"reporter-{run_id}", daemon=True)
        self._thread.start()

    def log(self, message: str, level: str = "INFO", timestamp: datetime | None = None) -> None:
        level = LogLevel(level).value
        if len(message) > MAX_LOG_MESSAGE:
            message = message[: MAX_LOG_MESSAGE - len(TRUNCATED)] + TRUNCATED
        moment = arrow_batches.micros(timestamp) if timestamp else _now_us()
        with self._buffer_lock:
            self._lines.add(moment, level, message)

    def metrics(self, step: int, values: dict[str, float], timestamp: datetime | None = None) -> None:
        """Non-finite values (a diverged loss) cannot be stored; they become one warning line each."""
        moment = arrow_batches.micros(timestamp) if timestamp else _now_us()
        names, numbers = list(values), [float(value) for value in values.values()]
        if not all(map(math.isfinite, numbers)):
            for name, number in zip(names, numbers):
                if not math.isfinite(number):
                    self.log(
                        f"指标 {name} 在第 {step} 步的值为 {number}，无法记录", level="WARNING", timestamp=timestamp
                    )
            kept = [(name, number) for name, number in zip(names, numbers) if math.isfinite(number)]
            names, numbers = [name for name, _ in kept], [number for _, number in kept]
        count = len(names)
        with self._buffer_lock:
            self._points.extend(names, [step] * count, numbers, [moment] * count)

    def artifact(self, **fields: Any) -> None:
        """Register an artifact file in order with the logs and metrics around it."""
        with self._buffer_lock:
            self._artifacts.append(fields)

    def progress(self, **values: Any) -> None:
        """progress, current_step, total_steps, gpu_utilization; None leaves a field as it is."""
        checked = ProgressReport(**values).model_dump(exclude_none=True)
        with self._buffer_lock:
            self._progress.update(checked)

    def flush(self) -> None:
        """Send everything buffered so far; raises if the API cannot take it now."""
        with self._send_lock:
            self._package()
            while self._outbox:
                kind, item = self._outbox[0]
                if kind == "report":
                    self._send_report(*item)
                else:
                    self.client.register_artifact(self.project_id, self.run_id, **item)
                self._outbox.popleft()

    def close(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._thread.join()
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.flush()
                return
            except (httpx.HTTPError, ApiError) as exc:
                if time.monotonic() > deadline or (isinstance(exc, ApiError) and exc.status_code < 500):
                    raise
                time.sleep(max(0.5, self._backoff(exc)))

    def _backoff(self, exc: Exception) -> float:
        """Seconds to wait before the next send: what a 503's Retry-After asks for, else none."""
        wait = getattr(exc, "retry_after", None) or 0.0
        self._quiet_until = time.monotonic() + wait
        return wait

    def _package(self) -> None:
        """Reports pair the log and metric batches in order (two batches over `MAX_REPORT_BYTES` go apart); the
        artifacts follow them, and the progress comes last, so whoever sees a step sees the checkpoints before it:
        in the last report, or in a report of its own after the artifacts when there are any."""
        with self._buffer_lock:
            lines, self._lines = self._lines, _Columns(3)
            points, self._points = self._points, _Columns(4)
            progress, self._progress = self._progress, {}
            artifacts, self._artifacts = self._artifacts, []
        timestamps, levels, messages = lines.columns
        logs = deque(
            arrow_batches.encode(
                arrow_batches.log_table(timestamps[start:end], levels[start:end], messages[start:end]),
                uuid.uuid4().hex,
            )
            for start, end in _log_slices(messages)
        )
        metrics = deque(  # points.columns are metric_table's arguments, in order
            arrow_batches.encode(
                arrow_batches.metric_table(*(column[start : start + MAX_BATCH_ROWS] for column in points.columns)),
                uuid.uuid4().hex,
            )
            for start in range(0, len(points.columns[0]), MAX_BATCH_ROWS)
        )
        reports = []
        while logs or metrics:
            log_stream = logs.popleft() if logs else None
            metric_stream = metrics.popleft() if metrics else None
            if log_stream and metric_stream and len(log_stream) + len(metric_stream) > MAX_REPORT_BYTES:
                metrics.appendleft(metric_stream)
                metric_stream = None
            reports.append([{}, log_stream, metric_stream])
        if progress and reports and not artifacts:
            reports[-1][0] = progress
        self._outbox.extend(("report", tuple(report)) for report in reports)
        self._outbox.extend(("artifact", fields) for fields in artifacts)
        if progress and (artifacts or not reports):
            self._outbox.append(("report", (progress, None, None)))

    def _send_report(self, progress: dict, logs: bytes | None, metrics: bytes | None) -> None:
        try:
            self.remote_status = self.client.send_report(self.project_id, self.run_id, progress, logs, metrics).status
        except ApiError as exc:
            if exc.status_code != 409:
                raise
            self.remote_status = self.client.find_run(self.run_id).status
            if logs or metrics:
                raise  # the run has ended: its batches cannot be stored
            # progress of a run that has ended has nowhere to go

    def _loop(self) -> None:
        while not self._stop.wait(max(self.interval, self._quiet_until - time.monotonic())):
            try:
                self.flush()
            except (httpx.HTTPError, ApiError) as exc:
                self._backoff(exc)


def _now_us() -> int:
    return time.time_ns() // 1000


class _Columns:
    def __init__(self, width: int) -> None:
        self.columns: tuple[list, ...] = tuple([] for _ in range(width))

    def add(self, *row: Any) -> None:
        for column, value in zip(self.columns, row):
            column.append(value)

    def extend(self, *columns) -> None:
        for column, values in zip(self.columns, columns):
            column.extend(values)


def _log_slices(messages: list[str]):
    """(start, end) of consecutive batches, each within the row and text limits (a line is at most 10k chars)."""
    start, text = 0, 0
    for index, message in enumerate(messages):
        if index - start == MAX_BATCH_ROWS or text + len(message) > MAX_BATCH_TEXT:
            yield start, index
            start, text = index, 0
        text += len(message)
    if start < len(messages):
        yield start, len(messages)
