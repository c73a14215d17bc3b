"""Group commit against the store's history: does a group's cost grow with the batches stored before it?

21  a group of 100 reports (each a 20-line log batch, a 10-point metric batch and progress, one per live run)
    committed by `store.ingest.append` on a store that already holds N ingested batches: the median over the
    groups at each N. Every group's duplicate check looks up its 200 batch ids among all N.
21b the same groups on a store that already holds N earlier finished runs (each with its log bookkeeping): a group
    updates its 100 runs' rows and their log bookkeeping among all N.

Run with `python -m bench.bench_history [--smoke]`; it starts an API process only to create the runs, then works on
the store file directly (the API is stopped: one process owns the file).
"""

import argparse
import tempfile
import time
import uuid
from pathlib import Path

import pyarrow as pa

from bench.bench_fleet import LINES, POINTS, prepare
from bench.common import figure
from ltm import Client, arrow_batches
from ltm.store import Database, ingest, utc_now
from ltm.testing import ApiProcess

RUNS = 100
T0 = 1_767_225_600_000_000  # 2026-01-01 in microseconds


def tables() -> tuple[pa.Table, pa.Table]:
    times = [T0 + i for i in range(LINES)]
    lines = arrow_batches.log_table(times, ["INFO"] * LINES, [f"step {i} loss={1 / (1 + i):.4f}" for i in range(LINES)])
    points = arrow_batches.metric_table(["train_loss"] * POINTS, list(range(POINTS)), [0.5] * POINTS, times[:POINTS])
    naive = pa.timestamp("us")  # as the API hands tables to the store
    lines = lines.set_column(0, "timestamp", lines["timestamp"].cast(naive))
    points = points.set_column(3, "timestamp", points["timestamp"].cast(naive))
    return lines, points


def add_history(db: Database, project_id: str, first: int, end: int) -> None:
    """Earlier batches `first`..`end` of 10,000 finished runs, as the store keeps them."""
    with db.writing() as cur:
        cur.execute(
            "INSERT INTO ingest_batches (run_id, kind, batch_id, row_count, received_at, digest, claim) "
            "SELECT 'run_old' || (i % 10000), 'logs', 'b' || i, 20, now(), 'd', "
            "'logs:run_old' || (i % 10000) || ':b' || i FROM range(?, ?) t(i)",
            [first, end],
        )


def add_runs(db: Database, project_id: str, first: int, end: int) -> None:
    """Earlier finished runs `first`..`end` of the project, each with its log bookkeeping."""
    now = utc_now()
    with db.writing() as cur:
        cur.execute(
            """INSERT INTO runs (id, project_id, name, status, progress, model, dataset, hyperparameters, resources,
                    metrics, created_at, updated_at, start_step, current_step, project_version, metric_steps)
               SELECT printf('run_old%09d', i), ?, printf('old-%09d', i), '已完成', 1.0, 'm', 'd', '{}', '{}',
                    '{"train_loss": 0.5}', ?, ?, 0, 100, 1, '{"train_loss": 100}'
               FROM range(?, ?) t(i)""",
            [project_id, now, now, first, end],
        )
        cur.execute(
            "INSERT INTO log_runs SELECT printf('run_old%09d', i), 2000, ?, true FROM range(?, ?) t(i)",
            [now, first, end],
        )


def group_seconds(db: Database, project_id: str, run_ids: list[str], groups: int, step: int) -> list[float]:
    """Seconds of each of `groups` groups, after one untimed group (the first one after a change of size is cold)."""
    lines, points = tables()
    samples = []
    for index in range(groups + 1):
        name = uuid.uuid4().hex
        group = [
            ingest.Report(
                run_id,
                project_id,
                [
                    ingest.Batch(ingest.LOGS, run_id, f"l-{name}", lines, project_id),
                    ingest.Batch(ingest.METRICS, run_id, f"m-{name}", points, project_id),
                ],
                {"current_step": step + index},
            )
            for run_id in run_ids
        ]
        started = time.perf_counter()
        outcomes = ingest.append(db, group)
        if index:
            samples.append(time.perf_counter() - started)
        refused = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
        assert not refused, refused[:3]
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: proves the benchmark runs")
    args = parser.parse_args()
    groups = 3 if args.smoke else 30
    axes = [
        ("21", "earlier batches", add_history, [0, 10_000] if args.smoke else [0, 1_000_000, 4_000_000]),
        ("21b", "earlier finished runs", add_runs, [0, 1_000] if args.smoke else [0, 10_000, 100_000]),
    ]
    for number, held, add, sizes in axes:
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp) / "home"
            api = ApiProcess(home, LTM_LAUNCHER="none").start()
            try:
                project_id, run_ids = prepare(Client(api.url, timeout=120), RUNS)
            finally:
                api.stop()
            db = Database(home / "ltm.duckdb")
            try:
                stored = 0
                for index, size in enumerate(sizes):
                    add(db, project_id, stored, size)
                    stored = size
                    samples = group_seconds(db, project_id, run_ids, groups, 1 + index * (groups + 1))
                    figure(
                        f"{number} group of {RUNS} reports on a store holding {size:,} {held}",
                        [s * 1000 for s in samples],
                        "flat as the history grows",
                        unit="ms",
                        digits=1,
                    )
            finally:
                db.close()


if __name__ == "__main__":
    main()
