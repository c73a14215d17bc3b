"""Store benchmarks on a big store: the seed logs endpoint, downsampled metrics, GET run, and the store's size.

The store is filled over HTTP as live ingestion would fill it: 1,000 runs report round by round, so their
lines interleave; one run holds 250k lines and another 5 series × 1M points.
Run with `make bench` (or `python -m bench.bench_store [--smoke]`); it starts its own API process.
"""

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

from bench.common import figure, on_threads
from ltm import Client, arrow_batches
from ltm.testing import ApiProcess

T0_US = arrow_batches.micros(datetime(2026, 1, 1, tzinfo=timezone.utc))
SERIES = ("train_loss", "eval_loss", "learning_rate", "grad_norm", "tokens_per_second")
ROUNDS = 40
LINE_EVERY_US = 1000


@dataclass
class Scale:
    runs: int
    lines: int
    big_run_lines: int
    points_per_series: int
    samples: int


FULL = Scale(runs=1000, lines=10_000_000, big_run_lines=250_000, points_per_series=1_000_000, samples=51)
SMOKE = Scale(runs=20, lines=40_000, big_run_lines=10_000, points_per_series=20_000, samples=5)


def lines_of(run_index: int, first: int, count: int) -> "arrow_batches.pa.Table":
    """Lines that differ from run to run, as real losses do: identical text across runs would flatter the
    interleaved layout's compression (measured: 43 MB vs 195 MB sorted by run, for the same 10M lines)."""
    numbers = range(first, first + count)
    return arrow_batches.log_table(
        [T0_US + n * LINE_EVERY_US + run_index for n in numbers],
        ["WARNING" if n % 100 == 99 else "INFO" for n in numbers],
        [
            f"step {n} loss={2.0 / (1 + n / 1000) + run_index * 0.0137:.4f} lr=3.0e-04 "
            f"tokens/s={40_000 + (n * 7919 + run_index) % 997}"
            for n in numbers
        ],
    )


def fill_logs(client: Client, project_id: str, run_ids: list[str], scale: Scale) -> None:
    """Round by round every run sends its next batch, from 8 senders at once: lines interleave in the store."""
    small = (scale.lines - scale.big_run_lines) // (len(run_ids) - 1)
    totals = [scale.big_run_lines] + [small] * (len(run_ids) - 1)
    sent = [0] * len(run_ids)

    def send(index: int, round_number: int) -> None:
        share = totals[index] // ROUNDS + (totals[index] % ROUNDS if round_number == ROUNDS - 1 else 0)
        table = lines_of(index, sent[index], share)
        client.send_table(project_id, run_ids[index], "logs", f"r{round_number}", table)
        sent[index] += share

    with ThreadPoolExecutor(8) as pool:
        for round_number in range(ROUNDS):
            list(pool.map(send, range(len(run_ids)), [round_number] * len(run_ids)))
    assert sent == totals


def fill_metrics(client: Client, project_id: str, run_id: str, points_per_series: int) -> None:
    per_batch = 50_000 // len(SERIES)

    def send(first_step: int) -> None:
        steps = range(first_step, min(first_step + per_batch, points_per_series))
        table = arrow_batches.metric_table(
            [name for _ in steps for name in SERIES],
            [s for s in steps for _ in SERIES],
            [2.0 / (1 + s / 1000) + i for s in steps for i in range(len(SERIES))],
            [T0_US + s * 1000 for s in steps for _ in SERIES],
        )
        client.send_table(project_id, run_id, "metrics", f"m{first_step}", table)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(send, range(0, points_per_series, per_batch)))


def latencies(http: httpx.Client, path: str, samples: int, **params) -> list[float]:
    timings = []
    for _ in range(samples):
        started = time.perf_counter()
        response = http.get(path, params=params)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
    return timings


def throughput(url: str, path: str, seconds: float, clients: int = 4) -> float:
    done = [0] * clients
    stop = time.perf_counter() + seconds

    def hammer(index: int) -> None:
        with httpx.Client(base_url=url) as http:
            while time.perf_counter() < stop:
                assert http.get(path).status_code == 200
                done[index] += 1

    elapsed = on_threads([lambda i=i: hammer(i) for i in range(clients)])
    return sum(done) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: proves the benchmark runs")
    args = parser.parse_args()
    scale = SMOKE if args.smoke else FULL
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        api = ApiProcess(home, LTM_LAUNCHER="none").start()
        try:
            with Client(api.url, timeout=300) as client, httpx.Client(base_url=api.url, timeout=60) as http:
                project = client.create_project(name="bench-store", owner="bench")
                started = time.perf_counter()
                run_ids = [client.create_run(project.id, model="m", dataset="d").id for _ in range(scale.runs)]
                print(f"created {scale.runs} runs in {time.perf_counter() - started:.1f} s", flush=True)
                started = time.perf_counter()
                fill_logs(client, project.id, run_ids, scale)
                seconds = time.perf_counter() - started
                print(
                    f"stored {scale.lines:,} log lines in {seconds:.1f} s ({scale.lines / seconds:,.0f}/s)", flush=True
                )
                started = time.perf_counter()
                fill_metrics(client, project.id, run_ids[1], scale.points_per_series)
                print(
                    f"stored {len(SERIES)} × {scale.points_per_series:,} points in "
                    f"{time.perf_counter() - started:.1f} s",
                    flush=True,
                )

                big = f"/projects/{project.id}/runs/{run_ids[0]}"
                deep_page = min(2000, scale.big_run_lines // 50)
                window = {"start_time": _iso(scale.big_run_lines // 10), "end_time": _iso(scale.big_run_lines)}
                for label, params in [
                    ("first page", {"page": 1}),
                    (f"page {deep_page}", {"page": deep_page}),
                    ("first page, time window", {"page": 1, **window}),
                    (f"page {deep_page // 2}, time window", {"page": deep_page // 2, **window}),
                ]:
                    page = http.get(big + "/logs", params={**params, "page_size": 50}).json()
                    assert len(page["items"]) == 50, page
                    figure(
                        f"3  logs of a {scale.big_run_lines:,}-line run among {scale.lines:,}: {label}",
                        latencies(http, big + "/logs", scale.samples, page_size=50, **params),
                        "p50 ≤ 30 ms",
                        unit="ms",
                        digits=1,
                    )
                metrics_path = f"/projects/{project.id}/runs/{run_ids[1]}/metrics"
                series = http.get(metrics_path).json()["series"]
                assert [s["total_points"] for s in series] == [scale.points_per_series] * len(SERIES), series
                assert all(len(s["points"]) <= 1000 for s in series)
                figure(
                    f"4  downsampled metrics, {len(SERIES)} × {scale.points_per_series:,} points → ≤ 1,000 each",
                    latencies(http, metrics_path, scale.samples),
                    "≤ 100 ms",
                    unit="ms",
                    digits=1,
                )
                run_path = f"/projects/{project.id}/runs/{run_ids[len(run_ids) // 2]}"
                figure(
                    f"5  GET run with {scale.runs:,} runs, {scale.lines:,} lines stored",
                    latencies(http, run_path, scale.samples * 4),
                    "p50 ≤ 10 ms",
                    unit="ms",
                    digits=2,
                )
                rates = [throughput(api.url, run_path, 2.0 if args.smoke else 5.0) for _ in range(3)]
                figure("5  GET run, 4 concurrent clients", rates, "≥ 500 requests/s", unit="requests/s", digits=0)
                space_back(client, project.id, run_ids, scale)
        finally:
            api.stop()
        size = (home / "ltm.duckdb").stat().st_size
        print(f"9  store file after a clean stop: {size / 1e6:,.1f} MB", flush=True)


def space_back(client: Client, project_id: str, run_ids: list[str], scale: Scale) -> None:
    """Target 9: the size of the full store, then deleting every other small run and compacting."""
    first = client.compact()
    print(
        f"9  store of {scale.lines:,} log lines and {len(SERIES) * scale.points_per_series:,} metric points: "
        f"{first.bytes_after / 1e6:,.1f} MB compacted ({first.bytes_before / 1e6:,.1f} MB as ingested) "
        f"target ≤ 300 MB for 10M lines",
        flush=True,
    )
    doomed = run_ids[2::2]

    def delete(run_id: str) -> None:
        client.cancel_run(project_id, run_id)  # still 排队中: no launcher in this benchmark
        client.delete_run(project_id, run_id, dry_run=False)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(delete, doomed))
    kept = sum(client.get_logs(project_id, run_id, page_size=1).total for run_id in run_ids[:2] + run_ids[3::2])
    small = (scale.lines - scale.big_run_lines) // (len(run_ids) - 1)
    assert kept == scale.big_run_lines + small * (len(run_ids) - 1 - len(doomed)), kept
    second = client.compact()
    print(
        f"9  deleted {len(doomed):,} runs, compacted: {second.bytes_before / 1e6:,.1f} MB → "
        f"{second.bytes_after / 1e6:,.1f} MB in {second.seconds:.1f} s "
        f"(target: deleting runs gives the space back)",
        flush=True,
    )
    assert second.bytes_after < second.bytes_before


def _iso(line_number: int) -> str:
    moment = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=line_number * LINE_EVERY_US)
    return moment.isoformat()


if __name__ == "__main__":
    main()
