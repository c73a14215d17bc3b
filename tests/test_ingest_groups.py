"""A group commit stores a run's log lines exactly as if its batches had come one request at a time: the same line
numbers, the same time order, the same in-order bookkeeping, whatever the batches' order and how they are grouped."""

import random

import httpx
import pyarrow as pa

from ltm.store import Database, ingest
from ltm.store import logs as log_store
from tests.conftest import ApiProcess
from tests.helpers import new_project, new_run

SECOND = 1_000_000


def log_batches(seed: int, count: int) -> list[tuple[str, list[int]]]:
    """(batch id, line times in µs), some batches overlapping or earlier than the one before, some empty."""
    rng = random.Random(seed)
    batches = []
    for index in range(count):
        base = rng.randint(0, 40) * SECOND
        batches.append((f"b{index}", [base + rng.randint(0, 4) * SECOND for _ in range(rng.randint(0, 6))]))
    return batches


def as_batch(run_id: str, batch_id: str, times: list[int]) -> ingest.Batch:
    """Lines as the API hands them to the store: naive UTC timestamps."""
    table = pa.table(
        {
            "timestamp": pa.array(times, pa.timestamp("us")),
            "level": ["INFO"] * len(times),
            "message": [f"{batch_id}-{i}" for i in range(len(times))],
        }
    )
    return ingest.Batch(ingest.LOGS, run_id, batch_id, table)


def test_lines_grouped_in_one_commit_are_numbered_as_if_sent_one_at_a_time(tmp_path):
    api = ApiProcess(tmp_path / "home").start()
    with httpx.Client(base_url=api.url) as http:
        project = new_project(http)["id"]
        runs = [new_run(http, project)["id"] for _ in range(4)]
    api.stop()
    db = Database(tmp_path / "home" / "ltm.duckdb")
    try:
        for seed in range(6):
            batches = log_batches(seed, 12)
            alone, grouped = runs[0], runs[1]
            for batch_id, times in batches:
                (outcome,) = ingest.append(db, [as_batch(alone, f"{seed}-{batch_id}", times)])
                assert not isinstance(outcome, Exception), outcome
            cuts = sorted(random.Random(seed).sample(range(1, len(batches)), 3))  # four groups, several batches each
            for start, end in zip([0, *cuts], [*cuts, len(batches)]):
                group = [as_batch(grouped, f"{seed}-{b}", times) for b, times in batches[start:end]]
                group.append(as_batch(runs[2 + seed % 2], f"{seed}-other-{start}", [start * SECOND]))  # another run
                assert not any(isinstance(o, Exception) for o in ingest.append(db, group))
            for newest_first in (False, True):
                pages = [
                    log_store.page(db, run_id, 0, 10_000, newest_first=newest_first) for run_id in (alone, grouped)
                ]
                assert pages[0][0] == pages[1][0]
                assert [(line["timestamp"], line["message"]) for line in pages[0][1]] == [
                    (line["timestamp"], line["message"]) for line in pages[1][1]
                ]
            bookkeeping = [
                db.fetch_one("SELECT lines, last_ts, in_order FROM log_runs WHERE run_id = ?", [run_id])
                for run_id in (alone, grouped)
            ]
            assert bookkeeping[0] == bookkeeping[1]
            numbered = [
                db.fetch_all("SELECT line, ts, message FROM logs WHERE run_id = ? ORDER BY line", [run_id])
                for run_id in (alone, grouped)
            ]
            assert numbered[0] == numbered[1]
            assert [line for line, _, _ in numbered[1]] == list(range(1, bookkeeping[1][0] + 1))
    finally:
        db.close()
