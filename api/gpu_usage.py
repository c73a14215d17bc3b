"""GPU-hours allocated and used, and queue wait, summed per project, user or GPU type over a period."""

import json
from collections import defaultdict
from datetime import datetime

from ltm import gpus
from ltm.api.admission import ANY_TYPE
from ltm.vocabulary import UsageGrouping

HIDDEN_PROJECTS = "（看不到的私有项目）"
UNKNOWN_USER = "（未记录）"


def _hours(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds()) / 3600


def _group(run: dict, group_by: UsageGrouping, visible: set[str]) -> tuple[str | None, str]:
    if group_by == UsageGrouping.PROJECT:
        if run["project_id"] not in visible:
            return None, HIDDEN_PROJECTS
        return run["project_id"], run["project_name"]
    if group_by == UsageGrouping.USER:
        return run["created_by"], run["created_by"] or UNKNOWN_USER
    gpu_type = gpus.requested(json.loads(run["resources"]))[0] or ANY_TYPE
    return gpu_type, gpu_type


def summed(
    runs: list[dict], group_by: UsageGrouping, since: datetime | None, until: datetime, visible: set[str]
) -> list[dict]:
    """One row per group, most allocated GPU-hours first. Each run's lease and wait are clipped to
    [since, until]; used hours weigh allocated hours by the run's mean device utilisation."""
    rows: dict[tuple[str | None, str], dict] = defaultdict(
        lambda: {"runs": 0, "gpu_hours_allocated": 0.0, "gpu_hours_used": 0.0, "queue_wait_hours": 0.0}
    )
    for run in runs:
        row = rows[_group(run, group_by, visible)]
        row["runs"] += 1
        start = since or run["created_at"]
        waited_until = min(run["leased_at"] or until, until)
        row["queue_wait_hours"] += _hours(max(run["created_at"], start), waited_until)
        if run["leased_at"] is None:
            continue
        held = len(json.loads(run["devices"])) * _hours(
            max(run["leased_at"], start), min(run["released_at"] or until, until)
        )
        row["gpu_hours_allocated"] += held
        row["gpu_hours_used"] += held * (run["utilization"] or 0.0)
    answer = [{"key": key, "label": label, **values} for (key, label), values in rows.items()]
    return sorted(answer, key=lambda row: (-row["gpu_hours_allocated"], row["label"]))
