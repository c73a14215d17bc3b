"""Buffers a run's logs, metrics and progress and sends them in batches from a background thread."""

import threading
import time
import uuid
from collections import deque
from datetime import datetime, timezone
from typing import Any

import httpx

from ltm.client import ApiError, Client
from ltm.models import LogBatch, LogLevel, LogLine, MetricBatch, MetricPoint, RunStatus

MAX_BATCH = 5000


class RunReporter:
    """A retried batch keeps its id and a retried artifact its path, so the API stores each once."""

    def __init__(self, client: Client, project_id: str, run_id: str, interval: float = 0.5) -> None:
        self.client = client
        self.project_id = project_id
        self.run_id = run_id
        self.interval = interval
        self.remote_status: RunStatus | None = None
        self._lines: list[LogLine] = []
        self._points: list[MetricPoint] = []
        self._progress: dict[str, Any] = {}
        self._artifacts: list[dict] = []
        self._outbox: deque = deque()
        self._buffer_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"reporter-{run_id}", daemon=True)
        self._thread.start()

    def log(self, message: str, level: str = "INFO", timestamp: datetime | None = None) -> None:
        line = LogLine.model_construct(timestamp=timestamp or _now(), level=LogLevel(level), message=message)
        with self._buffer_lock:
            self._lines.append(line)

    def metrics(self, step: int, values: dict[str, float], timestamp: datetime | None = None) -> None:
        ts = timestamp or _now()
        points = [MetricPoint.model_construct(name=name, step=step, value=float(value), timestamp=ts)
                  for name, value in values.items()]
        with self._buffer_lock:
            self._points.extend(points)

    def artifact(self, **fields: Any) -> None:
        """Register an artifact file in order with the logs and metrics around it."""
        with self._buffer_lock:
            self._artifacts.append(fields)

    def progress(self, **values: Any) -> None:
        with self._buffer_lock:
            self._progress.update(values)

    def flush(self) -> None:
        """Send everything buffered so far; raises if the API cannot take it now."""
        with self._send_lock:
            self._package()
            while self._outbox:
                kind, batch = self._outbox[0]
                if kind == "logs":
                    self.client.send_logs(self.project_id, self.run_id, batch)
                elif kind == "metrics":
                    self.client.send_metrics(self.project_id, self.run_id, batch)
                elif kind == "artifact":
                    self.client.register_artifact(self.project_id, self.run_id, **batch)
                else:
                    self._send_progress(batch)
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
                time.sleep(0.5)

    def _package(self) -> None:
        with self._buffer_lock:
            lines, self._lines = self._lines, []
            points, self._points = self._points, []
            progress, self._progress = self._progress, {}
            artifacts, self._artifacts = self._artifacts, []
        for start in range(0, len(lines), MAX_BATCH):
            batch = LogBatch.model_construct(batch_id=uuid.uuid4().hex, lines=lines[start:start + MAX_BATCH])
            self._outbox.append(("logs", batch))
        for start in range(0, len(points), MAX_BATCH):
            batch = MetricBatch.model_construct(batch_id=uuid.uuid4().hex, points=points[start:start + MAX_BATCH])
            self._outbox.append(("metrics", batch))
        self._outbox.extend(("artifact", fields) for fields in artifacts)
        if progress:
            self._outbox.append(("progress", progress))

    def _send_progress(self, values: dict) -> None:
        try:
            run = self.client.report(self.project_id, self.run_id, **values)
        except ApiError as exc:
            if exc.status_code != 409:
                raise
            run = self.client.find_run(self.run_id)
        self.remote_status = run.status

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.flush()
            except (httpx.HTTPError, ApiError):
                continue


def _now() -> datetime:
    return datetime.now(timezone.utc)
