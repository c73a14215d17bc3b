"""Runs search on a big project: `GET /projects/{id}/runs` with a filter, a sort by a metric and a page.

The store is generated straight into a DuckDB file (100,000 runs in one project, each with hyperparameters, a
latest eval_loss and its metric block, like runs that logged their evaluations), then served by a real API
process and queried over HTTP. Run with `make bench` (or `python -m bench.bench_runs [--smoke]`).
"""

import argparse
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import figure
from ltm.ids import new_id
from ltm.settings import Settings
from ltm.store import Database, utc_now
from ltm.store import projects as project_store
from ltm.testing import ApiProcess

FULL_RUNS, SMOKE_RUNS = 100_000, 2_000
STATUSES = ("已完成", "失败", "已取消", "运行中")


def fill(home: Path, runs: int) -> str:
    """A project holding `runs` runs; returns its id."""
    db = Database(Settings(home=home).db_path)
    now = utc_now()
    project_id = new_id("project")
    project_store.insert(
        db,
        {
            "id": project_id,
            "name": "检索基准",
            "description": None,
            "objective": None,
            "task_type": None,
            "base_model": None,
            "owner": "基准",
            "tags": [],
            "default_hyperparameters": {},
            "archived": False,
            "created_at": now,
            "updated_at": now,
            "default_trainer": None,
            "visibility": "团队可见",
            "default_priority": 0,
        },
    )
    with db.writing() as cur:
        cur.execute(
            f"""INSERT INTO runs (id, project_id, name, status, progress, model, dataset, hyperparameters, resources,
                    metrics, created_at, updated_at, start_step, current_step, project_version, metric_steps)
                SELECT printf('run_%012d', i), ?, printf('run-%06d', i), (?)[1 + i % 4], 1.0, 'llama-2-7b', 'd',
                    printf('{{"learning_rate": %s, "batch_size": %d}}', (['0.001', '0.0003', '0.0001'])[1 + i % 3],
                           (8 << (i % 4))),
                    '{{}}', printf('{{"eval_loss": %.6f}}', 1.0 + (i * 7919 % {runs}) / {runs}),
                    ? + to_microseconds(i), ?, 0, 100, 1, '{{"eval_loss": 100}}'
                FROM range({runs}) t(i)""",
            [project_id, list(STATUSES), now, now],
        )
        cur.execute(
            f"""INSERT INTO metric_blocks
                SELECT printf('run_%012d', i), 'eval_loss', 0, 0, 100,
                    0.5 + (i * 104729 % {runs}) / {runs}, 2.0 + (i * 7919 % {runs}) / {runs},
                    1.0 + (i * 7919 % {runs}) / {runs}, ?, 10
                FROM range({runs}) t(i)""",
            [now],
        )
    db.close()
    return project_id


def latencies(http: httpx.Client, path: str, params: dict, samples: int) -> tuple[list[float], int]:
    timings, total = [], None
    for _ in range(samples):
        started = time.perf_counter()
        response = http.get(path, params=params)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
        total = int(response.headers["X-Total-Count"])
        assert len(response.json()) == min(50, total - params.get("offset", 0))
    return timings, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: proves the benchmark runs")
    args = parser.parse_args()
    runs = SMOKE_RUNS if args.smoke else FULL_RUNS
    samples = 5 if args.smoke else 51
    with tempfile.TemporaryDirectory(prefix="ltm-bench-runs-") as folder:
        home = Path(folder) / "home"
        started = time.perf_counter()
        project_id = fill(home, runs)
        print(f"{runs:,} runs generated in {time.perf_counter() - started:.1f} s", flush=True)
        api = ApiProcess(home).start()
        try:
            with httpx.Client(base_url=api.url, timeout=60) as http:
                path = f"/projects/{project_id}/runs"
                queries = {
                    "status filter + sort by eval_loss min (metric blocks)": (
                        {"status": "已完成", "sort": "metric:eval_loss:min", "limit": 50},
                        runs // 4,
                    ),
                    "hyperparameter filter + sort by latest eval_loss, descending": (
                        {"hp": "learning_rate=0.001", "sort": "-metric:eval_loss", "limit": 50},
                        (runs + 2) // 3,
                    ),
                    "newest first, a page halfway down": (
                        {"sort": "-created_at", "limit": 50, "offset": runs // 2},
                        runs,
                    ),
                }
                for label, (params, expected) in queries.items():
                    http.get(path, params=params)  # warm
                    timings, total = latencies(http, path, params, samples)
                    assert total == expected, f"{label}: {total} matched, expected {expected}"
                    figure(f"runs search, {runs:,} runs: {label}", timings, "p50 ≤ 50 ms", unit="ms", digits=1)
        finally:
            api.stop()


if __name__ == "__main__":
    main()
