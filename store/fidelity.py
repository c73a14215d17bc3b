"""The metric points a resumed run shares with its parent, compared in SQL.

Two queries: the last step of each series of the two runs after the checkpoint (from `metric_blocks`, a few rows
per 128 steps), then the points of the named series in the shared step range, both runs' points grouped by
(name, step) in one pass (measured about twice as fast as grouping each run and joining). Both filter on the run
ids and a constant step range, so a run with a million points is read only where the runs overlap. A step reported
twice in one series is compared by its smallest and largest value.
"""

from dataclasses import dataclass

from ltm.store.db import Database

_SERIES_ENDS = """
SELECT run_id, name, max(last_step) FROM metric_blocks
WHERE run_id IN (?, ?) AND last_step > ?
GROUP BY run_id, name
"""

_COMPARED = """
WITH steps AS (
    SELECT name, step,
           min(value) FILTER (WHERE run_id = $parent) AS parent_lo,
           max(value) FILTER (WHERE run_id = $parent) AS parent_hi,
           min(value) FILTER (WHERE run_id = $run) AS run_lo,
           max(value) FILTER (WHERE run_id = $run) AS run_hi
    FROM metrics
    WHERE run_id IN ($parent, $run) AND step > $after AND step <= $up_to AND list_contains($names, name)
    GROUP BY name, step
),
pairs AS (
    SELECT name, step, parent_lo <> run_lo OR parent_hi <> run_hi AS differs,
           CASE WHEN parent_lo <> run_lo THEN parent_lo ELSE parent_hi END AS parent_value,
           CASE WHEN parent_lo <> run_lo THEN run_lo ELSE run_hi END AS run_value
    FROM steps WHERE parent_lo IS NOT NULL AND run_lo IS NOT NULL
)
SELECT name, count(*), min(step), max(step), min(step) FILTER (WHERE differs),
       arg_min(parent_value, step) FILTER (WHERE differs), arg_min(run_value, step) FILTER (WHERE differs)
FROM pairs GROUP BY name ORDER BY name
"""


@dataclass(frozen=True)
class SharedSeries:
    """One metric at the steps both runs have: how many points, their range, and the first point that differs."""

    name: str
    points: int
    first_step: int
    last_step: int
    differs_at: int | None
    parent_value: float | None
    run_value: float | None


def series_ends(db: Database, parent_id: str, run_id: str, after_step: int) -> dict[str, dict[str, int]]:
    """Per run id (absent when it has none), each series' last step among the series with points after
    `after_step`."""
    ends: dict[str, dict[str, int]] = {}
    for owner, name, last in db.fetch_all(_SERIES_ENDS, [parent_id, run_id, after_step]):
        ends.setdefault(owner, {})[name] = last
    return ends


def compare(
    db: Database, parent_id: str, run_id: str, names: list[str], after_step: int, up_to_step: int
) -> list[SharedSeries]:
    """The series `names` compared point by point at the steps in (after_step, up_to_step] that both runs have;
    a series without such a step is left out."""
    if not names:
        return []
    params = {"parent": parent_id, "run": run_id, "after": after_step, "up_to": up_to_step, "names": names}
    rows = db.fetch_all(_COMPARED, params)
    return [SharedSeries(*row) for row in rows]
