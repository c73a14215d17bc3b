"""Ingest benchmarks: metric points and log lines stored per second over HTTP from 8 concurrent reporters,
against raw DuckDB Arrow inserts of the same batches measured in the same run.

Run with `make bench` (or `python -m bench.bench_ingest [--smoke]`); it starts its own API process.
"""

import argparse
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from bench.common import figure, on_threads
from ltm import Client, arrow_batches
from ltm.reporter import MAX_BATCH_ROWS, RunReporter
from ltm.store import Database
from ltm.testing import ApiProcess

SERIES = ("train_loss", "learning_rate", "grad_norm", "tokens_per_second", "gpu_utilization")
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
US0 = arrow_batches.micros(T0)


def step_values(step: int) -> dict[str, float]:
    """The value of each of SERIES at `step`: every benchmark that compares ingest sends these."""
    return {
        "train_loss": 2.0 / (1 + step),
        "learning_rate": 3e-4,
        "grad_norm": 1.0 + step % 7,
        "tokens_per_second": 40_000.0 + step % 97,
        "gpu_utilization": 0.9,
    }


def feed_metrics(reporter: RunReporter, steps: int) -> None:
    for step in range(steps):
        reporter.metrics(step, step_values(step))


def feed_logs(reporter: RunReporter, lines: int) -> None:
    for i in range(lines):
        reporter.log(f"step {i}/{lines} loss={2.0 / (1 + i):.4f} lr=3.0e-04 tokens/s={40_000 + i % 97}")


def reporters_rate(client: Client, project_id: str, reporters: int, per_reporter: int, kind: str) -> float:
    """Rows per second from the first row fed to the last one acknowledged, with stored counts checked."""
    runs = [client.create_run(project_id, model="bench", dataset="bench") for _ in range(reporters)]
    feed = feed_metrics if kind == "metrics" else feed_logs
    per_call = len(SERIES) if kind == "metrics" else 1

    def report(run) -> None:
        reporter = RunReporter(client, project_id, run.id, interval=0.05)
        feed(reporter, per_reporter)
        reporter.close()

    elapsed = on_threads([lambda run=run: report(run) for run in runs])
    expected = per_reporter * per_call
    for run in runs:
        if kind == "metrics":
            stored = {s.name: s.total_points for s in client.get_metrics(project_id, run.id, max_points=1).series}
            assert stored == {name: per_reporter for name in SERIES}, f"{run.id}: {stored}"
        else:
            stored = client.get_logs(project_id, run.id, page_size=1).total
            assert stored == expected, f"{run.id}: stored {stored} of {expected} lines"
    return reporters * expected / elapsed


def raw_rate(folder: Path, total: int) -> float:
    """Plain DuckDB: the same 50k-row Arrow batches inserted into the store's metrics table, one commit each."""
    Database(folder / "raw.duckdb").close()
    batch = arrow_batches.metric_table(
        [SERIES[i % len(SERIES)] for i in range(MAX_BATCH_ROWS)],
        [i // len(SERIES) for i in range(MAX_BATCH_ROWS)],
        [1.0 / (i + 1) for i in range(MAX_BATCH_ROWS)],
        [US0 + i * 1000 for i in range(MAX_BATCH_ROWS)],
    )
    con = duckdb.connect(str(folder / "raw.duckdb"))
    batches = max(1, total // MAX_BATCH_ROWS)
    started = time.perf_counter()
    for _ in range(batches):
        con.begin()
        con.register("incoming", batch)
        con.execute("INSERT INTO metrics SELECT 'run_raw', name, step, value, timestamp FROM incoming")
        con.unregister("incoming")
        con.commit()
    elapsed = time.perf_counter() - started
    con.close()
    return batches * MAX_BATCH_ROWS / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one sample: proves the benchmark runs")
    args = parser.parse_args()
    samples, steps, lines = (1, 2_000, 5_000) if args.smoke else (5, 80_000, 250_000)
    reporters = 8
    with tempfile.TemporaryDirectory() as tmp:
        api = ApiProcess(Path(tmp) / "home", LTM_LAUNCHER="none").start()
        try:
            with Client(api.url, timeout=120) as client:
                project = client.create_project(name="bench-ingest", owner="bench")
                metric_rates, raw_rates, log_rates = [], [], []
                for _ in range(samples):
                    metric_rates.append(reporters_rate(client, project.id, reporters, steps, "metrics"))
                    raw_rates.append(raw_rate(Path(tmp), reporters * steps * len(SERIES)))
                    log_rates.append(reporters_rate(client, project.id, reporters, lines, "logs"))
        finally:
            api.stop()
    figure(
        f"1  metric points stored/s over HTTP, {reporters} reporters (counts exact)",
        metric_rates,
        "≥ 200,000/s",
        unit="points/s",
        digits=0,
    )
    figure("1  raw DuckDB Arrow inserts/s, same batches, same run", raw_rates, "(reference)", unit="rows/s", digits=0)
    figure(
        "1  HTTP ingest as a share of raw DuckDB",
        [m / r * 100 for m, r in zip(metric_rates, raw_rates)],
        "≥ 25 %",
        unit="%",
        digits=1,
    )
    figure(
        f"2  log lines stored/s over HTTP, {reporters} reporters (counts exact)",
        log_rates,
        "≥ 100,000/s",
        unit="lines/s",
        digits=0,
    )


if __name__ == "__main__":
    main()
