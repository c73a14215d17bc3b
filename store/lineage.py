"""What a release manifest reads besides runs and artifacts: a run's metric values as of a checkpoint's step."""

from ltm.store.db import Database


def metrics_up_to(db: Database, run_id: str, step: int) -> dict[str, float]:
    """The last value of each of the run's metrics logged at or before `step`, by name."""
    rows = db.fetch_all(
        "SELECT name, arg_max(value, step) FROM metrics WHERE run_id = ? AND step <= ? GROUP BY name ORDER BY name",
        [run_id, step],
    )
    return dict(rows)
