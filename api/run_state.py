"""Run status transitions: which are allowed, what they stamp, and who waits for them."""

import threading
from datetime import datetime

from ltm.models import RunStatus

S = RunStatus
ALLOWED = {
    S.QUEUED: {S.RUNNING, S.CANCELLING, S.CANCELLED, S.FAILED},
    S.RUNNING: {S.CANCELLING, S.CANCELLED, S.COMPLETED, S.FAILED},
    S.CANCELLING: {S.CANCELLED, S.COMPLETED, S.FAILED},
    S.CANCELLED: set(),
    S.COMPLETED: set(),
    S.FAILED: set(),
}


def can_move(current: RunStatus, new: RunStatus) -> bool:
    return new == current or new in ALLOWED[current]


def cancelled_elsewhere(current: RunStatus, new: RunStatus) -> bool:
    """A move into 取消中 or 已取消 from a status no cancel had reached: unless the API's own cancel is making it,
    someone cancelled the run where the API does not see it (the Prefect UI, the flow's process)."""
    cancelled = (S.CANCELLING, S.CANCELLED)
    return new in cancelled and current not in cancelled


def stamps(run: dict, new: RunStatus, now: datetime) -> dict:
    """Columns that change with the move to `new`."""
    values: dict = {"status": new.value, "updated_at": now}
    if new == S.RUNNING and run["started_at"] is None:
        values["started_at"] = now
    if new.is_terminal:
        values["finished_at"] = now
        values["gpu_utilization"] = None  # a live figure; a finished run has none
    if new == S.CANCELLED:
        values["cancelled_at"] = now
    if new == S.COMPLETED:
        values["progress"] = 1.0
    return values


class StatusWatch:
    """Lets a request wait until a run's status changes, without polling the store."""

    def __init__(self) -> None:
        self._changed = threading.Condition()

    def notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, predicate, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(predicate, timeout=timeout)
