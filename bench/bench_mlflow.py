"""MLflow side by side: the same workloads against MLflow's tracking server and ltm's API, in one run.

M1 metric points stored/s from 8 clients, M2 GET run latency, M3 reading back one metric series, M4 each
server's resident memory, M5 bench_fleet's small-batch scenario (figure 17) on both: N live runs each sending a
10-point metric batch once a second. MLflow runs from its own virtual env and is spoken to over its REST API only;
only the server under test is busy, the other one idles.
Run with `make bench-mlflow` (creates .venv-mlflow; `ARGS=--smoke` for tiny sizes) or
`python -m bench.bench_mlflow --mlflow-venv .venv-mlflow [--smoke] [--fleet-runs N] [--fleet-seconds S]
[--only-fleet]`.
"""

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import httpx

from bench.bench_fleet import POINTS, ltm_batches, offered_requests, percentile, prepare, second_points
from bench.bench_fleet import SERIES as FLEET_SERIES
from bench.bench_ingest import SERIES, reporters_rate, step_values
from bench.bench_store import latencies
from bench.common import figure, on_threads
from ltm import Client, arrow_batches
from ltm.testing import ApiProcess, answers, free_port, wait_until

LOG_BATCH = 1000
SERIES_NAME = "train_loss"
BUCKETS = 1000
T0_US = arrow_batches.micros(datetime(2026, 1, 1, tzinfo=timezone.utc))
FLEET_GRACE = 10  # seconds after the offered load's last second during which queued requests are still sent


@dataclass
class Scale:
    clients: int
    steps: int
    ltm_steps: int
    samples: int
    get_samples: int
    series_points: int
    full_reads: int
    sampled_reads: int
    fleet_runs: int
    fleet_seconds: int
    fleet_connections: int


FULL = Scale(
    clients=8,
    steps=1_200,
    ltm_steps=80_000,
    samples=5,
    get_samples=101,
    series_points=1_000_000,
    full_reads=3,
    sampled_reads=5,
    fleet_runs=200,
    fleet_seconds=30,
    fleet_connections=64,
)
SMOKE = Scale(
    clients=8,
    steps=250,
    ltm_steps=2_000,
    samples=1,
    get_samples=11,
    series_points=20_000,
    full_reads=1,
    sampled_reads=3,
    fleet_runs=10,
    fleet_seconds=2,
    fleet_connections=4,
)


class MlflowServer:
    """`mlflow server` on a SQLite file in `folder`, in its own process group so every worker stops with it."""

    def __init__(self, venv: Path, folder: Path, workers: int) -> None:
        self.venv = venv.resolve()
        self.folder = folder
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = folder / "mlflow-server.log"
        self.process: subprocess.Popen | None = None

    def version(self) -> str:
        out = subprocess.run([self.venv / "bin" / "mlflow", "--version"], capture_output=True, text=True, check=True)
        return out.stdout.strip().rsplit(" ", 1)[-1]

    def command(self) -> list[str]:
        return [
            str(self.venv / "bin" / "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--backend-store-uri",
            f"sqlite:///{self.folder / 'mlflow.db'}",
            "--default-artifact-root",
            str(self.folder / "mlartifacts"),
            "--workers",
            str(self.workers),
        ]

    def launch(self) -> None:
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                self.command(), cwd=self.folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_ready(self) -> None:
        wait_until(self._healthy, timeout=300, interval=0.2, message="MLflow to answer /health")
        wait_until(self._workers_ready, timeout=120, interval=0.2, message=f"{self.workers} MLflow workers")

    def _healthy(self) -> bool:
        assert self.process.poll() is None, "mlflow server exited during start-up:\n" + self.log_tail()
        return answers(self.url + "/health")

    def _workers_ready(self) -> bool:
        return self.log_path.read_text(errors="replace").count("Application startup complete") >= self.workers

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.process is None:
            return
        signal_group(self.process.pid, signal.SIGTERM)
        try:
            wait_until(lambda: not group_members(self.process.pid), timeout=30, message="MLflow to stop")
        except AssertionError:
            signal_group(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


class MlflowRest:
    """The few REST calls of MLflow's tracking API this benchmark needs."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url + "/api/2.0/mlflow", timeout=600)

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, **kwargs) -> httpx.Response:
        response = self.http.request(method, path, **kwargs)
        assert response.status_code == 200, f"{path}: {response.status_code} {response.text[:500]}"
        return response

    def create_experiment(self, name: str) -> str:
        return self.call("POST", "/experiments/create", json={"name": name}).json()["experiment_id"]

    def create_run(self, experiment_id: str) -> str:
        body = {"experiment_id": experiment_id, "start_time": _now_ms()}
        return self.call("POST", "/runs/create", json=body).json()["run"]["info"]["run_id"]

    def history_length(self, run_id: str, key: str) -> int:
        return len(
            self.call("GET", "/metrics/get-history", params={"run_id": run_id, "metric_key": key})
            .json()
            .get("metrics", [])
        )


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _proc_stats() -> dict[int, tuple[int, int]]:
    """pid → (parent pid, process group) of every live process."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                stats[int(entry.name)] = (int(fields[1]), int(fields[2]))
    return stats


def group_members(pgid: int) -> list[int]:
    return [pid for pid, (_, group) in _proc_stats().items() if group == pgid]


def tree_rss_mb(root: int) -> float:
    """VmRSS summed over `root` and all its descendants."""
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in _proc_stats().items():
        children.setdefault(parent, []).append(pid)
    pending, total_kb = [root], 0
    while pending:
        pid = pending.pop()
        pending.extend(children.get(pid, []))
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total_kb += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return total_kb / 1024


def process_name(pid: int) -> str:
    args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    return args[args.index("-m") + 1] if "-m" in args else Path(args[1] if len(args) > 1 else args[0]).name


def rss_by_child(root: int) -> str:
    """`root`'s own RSS and each direct child's subtree, named by the module or script it runs."""
    children = children_of(root)
    parts = [f"{process_name(root)} {tree_rss_mb(root) - sum(map(tree_rss_mb, children)):,.0f}"]
    parts += [f"{process_name(pid)} (+{len(children_of(pid))} children) {tree_rss_mb(pid):,.0f}" for pid in children]
    return ", ".join(parts) + " MB"


def children_of(pid: int) -> list[int]:
    return [child for child, (parent, _) in _proc_stats().items() if parent == pid]


def settled_rss_mb(root: int) -> float:
    """The tree's RSS once two readings a second apart differ by under 1 %."""
    readings: list[float] = []

    def steady() -> float | None:
        readings.append(tree_rss_mb(root))
        if len(readings) > 1 and abs(readings[-1] - readings[-2]) < 0.01 * readings[-2]:
            return readings[-1]
        return None

    return wait_until(steady, timeout=120, interval=1.0, message="resident memory to settle")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def step_chunks(steps: range, keys: tuple[str, ...]) -> list[range]:
    """Steps of each LogBatch request: at most 1,000 metrics, every step with all its keys."""
    per_request = LOG_BATCH // len(keys)
    return [steps[start : start + per_request] for start in range(0, len(steps), per_request)]


def mlflow_post(url: str, run_id: str, chunks: list[range], keys: tuple[str, ...]) -> None:
    with httpx.Client(base_url=url + "/api/2.0/mlflow", timeout=600) as http:
        for steps in chunks:
            now = _now_ms()
            metrics = [
                {"key": key, "value": value, "timestamp": now, "step": step}
                for step in steps
                for key, value in step_values(step).items()
                if key in keys
            ]
            response = http.post("/runs/log-batch", json={"run_id": run_id, "metrics": metrics})
            assert response.status_code == 200, f"log-batch: {response.status_code} {response.text[:500]}"


def mlflow_ingest_rate(
    mlflow: MlflowRest, url: str, experiment_id: str, scale: Scale, verify: bool = True
) -> tuple[float, list[str]]:
    """Points/s from `clients` threads, each with its own connection and run, with stored counts checked."""
    runs = [mlflow.create_run(experiment_id) for _ in range(scale.clients)]
    chunks = step_chunks(range(scale.steps), SERIES)
    elapsed = on_threads([lambda r=run_id: mlflow_post(url, r, chunks, SERIES) for run_id in runs])
    if verify:
        check_counts(mlflow, runs, scale.steps)
    return scale.clients * scale.steps * len(SERIES) / elapsed, runs


def check_counts(mlflow: MlflowRest, runs: list[str], steps: int) -> None:
    for run_id in runs:
        stored = {key: mlflow.history_length(run_id, key) for key in SERIES}
        assert stored == {key: steps for key in SERIES}, f"{run_id}: {stored}"


def seed_mlflow_series(mlflow: MlflowRest, url: str, experiment_id: str, scale: Scale) -> str:
    run_id = mlflow.create_run(experiment_id)
    chunks = step_chunks(range(scale.series_points), (SERIES_NAME,))
    shares = [chunks[i :: scale.clients] for i in range(scale.clients)]
    elapsed = on_threads([lambda share=share: mlflow_post(url, run_id, share, (SERIES_NAME,)) for share in shares])
    print(
        f"M3 seeded MLflow with {scale.series_points:,} points of one metric in {elapsed:.1f} s "
        f"({scale.series_points / elapsed:,.0f}/s, {scale.clients} clients)",
        flush=True,
    )
    return run_id


def seed_ltm_series(client: Client, project_id: str, scale: Scale) -> str:
    run_id = client.create_run(project_id, model="bench", dataset="bench").id
    per_batch = 50_000

    def send(first: int) -> None:
        steps = range(first, min(first + per_batch, scale.series_points))
        table = arrow_batches.metric_table(
            [SERIES_NAME] * len(steps), list(steps), [2.0 / (1 + s) for s in steps], [T0_US + s * 1000 for s in steps]
        )
        client.send_table(project_id, run_id, "metrics", f"s{first}", table)

    started = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(send, range(0, scale.series_points, per_batch)))
    elapsed = time.perf_counter() - started
    print(
        f"M3 seeded ltm with {scale.series_points:,} points of one metric in {elapsed:.2f} s "
        f"({scale.series_points / elapsed:,.0f}/s)",
        flush=True,
    )
    return run_id


def timed_reads(http: httpx.Client, path: str, params: dict, samples: int, check) -> tuple[list[float], int]:
    """Seconds until each whole response body has arrived (parsing and checking are not timed), and its bytes."""
    timings, size = [], 0
    for _ in range(samples):
        started = time.perf_counter()
        response = http.get(path, params=params)
        timings.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text[:500]
        size = len(response.content)
        check(json.loads(response.content))
    return timings, size


def check_full_history(points: int):
    def check(body: dict) -> None:
        assert len(body["metrics"]) == points, f"get-history returned {len(body['metrics'])} of {points}"

    return check


def check_sampled(points: int):
    def check(body: dict) -> None:
        assert len(body["metrics"]) == min(points, BUCKETS), f"bulk-interval returned {len(body['metrics'])}"

    return check


def check_buckets(points: int):
    def check(body: dict) -> None:
        [series] = body["series"]
        assert series["total_points"] == points and 0 < len(series["points"]) <= BUCKETS, series["total_points"]

    return check


def ratio_line(label: str, numerator: list[float], denominator: list[float]) -> None:
    print(
        f"{label}: {statistics.median(numerator) / statistics.median(denominator):,.1f}× (ratio of medians)", flush=True
    )


def memory_figures(when: str, mlflow_pid: int, ltm_pid: int) -> None:
    mlflow_mb, ltm_mb = settled_rss_mb(mlflow_pid), settled_rss_mb(ltm_pid)
    figure(f"M4 MLflow server RSS (process tree), {when}", [mlflow_mb], "(reference)", unit="MB", digits=0)
    print(f"M4 MLflow RSS by process, {when}: {rss_by_child(mlflow_pid)}", flush=True)
    figure(f"M4 ltm API RSS (process tree), {when}", [ltm_mb], "(reference)", unit="MB", digits=0)
    print(f"M4 MLflow/ltm resident memory, {when}: {mlflow_mb / ltm_mb:,.1f}×", flush=True)


def compare_ingest(
    mlflow: MlflowRest, server: MlflowServer, experiment_id: str, client: Client, project_id: str, scale: Scale
) -> tuple[str, str]:
    """M1 after one untimed round a tenth the size on each side. ltm is measured twice: on the points MLflow gets
    (so short that start-up dominates) and on bench_ingest's size. Returns a run of each side that holds metrics."""
    warm_up = replace(scale, steps=scale.steps // 10)
    mlflow_ingest_rate(mlflow, server.url, experiment_id, warm_up, verify=False)
    scratch = client.create_project(name="bench-mlflow-scratch", owner="bench").id
    reporters_rate(client, scratch, warm_up.clients, warm_up.steps, "metrics")
    mlflow_rates, same_rates, ltm_rates = [], [], []
    for _ in range(scale.samples):
        rate, mlflow_runs = mlflow_ingest_rate(mlflow, server.url, experiment_id, scale)
        mlflow_rates.append(rate)
        same_rates.append(reporters_rate(client, project_id, scale.clients, scale.steps, "metrics"))
        ltm_rates.append(reporters_rate(client, scratch, scale.clients, scale.ltm_steps, "metrics"))
    points = scale.clients * len(SERIES)
    figure(
        f"M1 MLflow metric points stored/s, {scale.clients} clients, LogBatch of {LOG_BATCH:,} "
        f"({points * scale.steps:,} points per sample, counts exact)",
        mlflow_rates,
        "(reference)",
        unit="points/s",
        digits=0,
    )
    figure(
        f"M1 ltm metric points stored/s, {scale.clients} RunReporters, the same {points * scale.steps:,} points "
        "(counts exact)",
        same_rates,
        "(reference)",
        unit="points/s",
        digits=0,
    )
    figure(
        f"M1 ltm metric points stored/s, {scale.clients} RunReporters, {points * scale.ltm_steps:,} points per "
        "sample as bench_ingest (counts exact)",
        ltm_rates,
        "≥ 200,000/s",
        unit="points/s",
        digits=0,
    )
    figure(
        "M1 ltm/MLflow ingest, paired samples, same points",
        ratios(same_rates, mlflow_rates),
        "(ratio)",
        unit="×",
        digits=1,
    )
    figure(
        "M1 ltm/MLflow ingest, paired samples, bench_ingest's size for ltm",
        ratios(ltm_rates, mlflow_rates),
        "(ratio)",
        unit="×",
        digits=1,
    )
    return mlflow_runs[0], client.list_runs(project_id)[0].id


def ratios(numerators: list[float], denominators: list[float]) -> list[float]:
    return [top / bottom for top, bottom in zip(numerators, denominators)]


def compare_get_run(
    server: MlflowServer, mlflow_run: str, api: ApiProcess, project_id: str, ltm_run: str, scale: Scale
) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        mlflow_ms = latencies(http, "/api/2.0/mlflow/runs/get", scale.get_samples, run_id=mlflow_run)
    with httpx.Client(base_url=api.url, timeout=60) as http:
        ltm_ms = latencies(http, f"/projects/{project_id}/runs/{ltm_run}", scale.get_samples)
    figure(
        f"M2 MLflow GET runs/get, run with {len(SERIES)} metrics × {scale.steps:,} steps, sequential",
        mlflow_ms,
        "(reference)",
        unit="ms",
        digits=2,
    )
    figure(
        "M2 ltm GET /projects/{p}/runs/{r}, same kind of run, sequential", ltm_ms, "p50 ≤ 10 ms", unit="ms", digits=2
    )
    ratio_line("M2 MLflow/ltm GET run p50", mlflow_ms, ltm_ms)


def compare_series_read(
    mlflow: MlflowRest,
    server: MlflowServer,
    experiment_id: str,
    client: Client,
    api: ApiProcess,
    project_id: str,
    scale: Scale,
) -> None:
    points = scale.series_points
    mlflow_run = seed_mlflow_series(mlflow, server.url, experiment_id, scale)
    ltm_run = seed_ltm_series(client, project_id, scale)
    with httpx.Client(base_url=server.url + "/api/2.0/mlflow", timeout=600) as http:
        full, full_bytes = timed_reads(
            http,
            "/metrics/get-history",
            {"run_id": mlflow_run, "metric_key": SERIES_NAME},
            scale.full_reads,
            check_full_history(points),
        )
        sampled, sampled_bytes = timed_reads(
            http,
            "/metrics/get-history-bulk-interval",
            {"run_ids": mlflow_run, "metric_key": SERIES_NAME, "max_results": BUCKETS},
            scale.sampled_reads,
            check_sampled(points),
        )
    with httpx.Client(base_url=api.url, timeout=600) as http:
        buckets, bucket_bytes = timed_reads(
            http,
            f"/projects/{project_id}/runs/{ltm_run}/metrics",
            {"names": SERIES_NAME, "max_points": BUCKETS},
            scale.sampled_reads,
            check_buckets(points),
        )
    figure(
        f"M3 MLflow get-history, every one of {points:,} points ({full_bytes / 1e6:,.1f} MB JSON)",
        full,
        "(reference)",
        unit="s",
        digits=2,
    )
    figure(
        f"M3 MLflow get-history-bulk-interval, {BUCKETS:,} sampled points of {points:,} "
        f"({sampled_bytes / 1e3:,.0f} kB JSON)",
        [t * 1000 for t in sampled],
        "(reference)",
        unit="ms",
        digits=1,
    )
    figure(
        f"M3 ltm metrics?max_points={BUCKETS:,}, ≤ {BUCKETS:,} min/max/last buckets of {points:,} points "
        f"({bucket_bytes / 1e3:,.0f} kB JSON)",
        [t * 1000 for t in buckets],
        "≤ 100 ms",
        unit="ms",
        digits=1,
    )
    ratio_line("M3 MLflow full get-history / ltm buckets, time", full, buckets)
    print(f"M3 MLflow full get-history / ltm buckets, bytes: {full_bytes / bucket_bytes:,.0f}×", flush=True)
    ratio_line("M3 MLflow bulk-interval / ltm buckets, time", sampled, buckets)


def mlflow_batches(seconds: int):
    """What one run sends to MLflow in one second of load: one runs/log-batch (JSON) of the 10 points ltm's metric
    batch holds in that second (bench_fleet's `second_points`), timestamps in ms."""
    t0_ms = T0_US // 1000

    def requests(shard: int, index: int, run_id: str, second: int) -> list[tuple[str, str, bytes, str]]:
        names, steps, values = second_points(second)
        metrics = [
            {"key": name, "value": value, "timestamp": t0_ms + second * 1000 + i, "step": step}
            for i, (name, step, value) in enumerate(zip(names, steps, values))
        ]
        body = json.dumps({"run_id": run_id, "metrics": metrics}).encode()
        return [("metrics", "/api/2.0/mlflow/runs/log-batch", body, "application/json")]

    return requests


def fleet_load(url: str, run_ids: list[str], scale: Scale, requests) -> dict:
    """bench_fleet's offered load on one server: queued requests still unsent FLEET_GRACE s after the last second
    are dropped and counted, so a server that cannot keep up costs the grace, not the whole backlog. Error answers
    are counted, not retried (MLflow answers an overload with 400 "QueuePool limit … reached")."""
    return asyncio.run(
        offered_requests(
            [url],
            [run_ids],
            scale.fleet_seconds,
            scale.fleet_connections,
            requests,
            deadline=scale.fleet_seconds + FLEET_GRACE,
            errors_counted=True,
        )
    )


def check_fleet_counts(result: dict, stored) -> None:
    """Each run's points per series, as `stored(run_id)` reads them back, equal 5 per acknowledged metric batch."""
    wrong = []
    with ThreadPoolExecutor(8) as pool:
        for run_id, counts in zip(result["acknowledged"], pool.map(stored, result["acknowledged"])):
            expected = result["acknowledged"][run_id].get("metrics", 0) * POINTS // len(FLEET_SERIES)
            if any(counts.get(name, 0) != expected for name in FLEET_SERIES):
                wrong.append((run_id, counts, expected))
    assert not wrong, f"{len(wrong)} runs whose stored points differ from the acknowledged ones, e.g. {wrong[:3]}"


def fleet_line(label: str, result: dict, offered: int) -> dict:
    latencies = result["latencies"]
    shown = {
        "rate": result["requests"] / result["elapsed"],
        "p50": percentile(latencies, 0.5) * 1000,
        "p99": percentile(latencies, 0.99) * 1000,
    }
    print(
        f"M5 {label}: {shown['rate']:,.0f} requests/s acknowledged (offered {offered:,}/s); ack p50 "
        f"{shown['p50']:.1f} ms, p99 {shown['p99']:.1f} ms; client lateness p99 "
        f"{percentile(result['lateness'], 0.99) * 1000:,.0f} ms; unsent after the {FLEET_GRACE} s grace "
        f"{result['unsent']:,}; 503 answers {result['refused'] or 0}; error answers "
        f"{sum(result['failed'].values()):,}; stored points = acknowledged (exact)",
        flush=True,
    )
    for error, count in result["failed"].items():
        print(f"M5   {count:,} × {error}", flush=True)
    return shown


def compare_fleet(
    mlflow: MlflowRest, server: MlflowServer, experiment_id: str, client: Client, api: ApiProcess, scale: Scale
) -> None:
    """M5: N live runs, each sending one small metric request a second, against each server in turn."""
    runs, seconds = scale.fleet_runs, scale.fleet_seconds
    print(
        f"M5 {runs} live runs × one small request/s for {seconds} s, {scale.fleet_connections} keep-alive "
        "connections (bench_fleet's client). MLflow has no log-line API, so ltm's 20-line log batch has no MLflow "
        "counterpart: the ratio compares the 10-point metric request alone; ltm's log + metric batch pair "
        "(figure 17's scenario) follows for reference.",
        flush=True,
    )

    def ltm_stored(project_id: str):
        def stored(run_id: str) -> dict[str, int]:
            series = client.get_metrics(project_id, run_id, max_points=1).series
            return {s.name: s.total_points for s in series}

        return stored

    def mlflow_stored(run_id: str) -> dict[str, int]:
        return {name: mlflow.history_length(run_id, name) for name in FLEET_SERIES}

    project_id, ltm_runs = prepare(client, runs)
    ltm = fleet_load(api.url, ltm_runs, scale, ltm_batches([project_id], seconds, ("metrics",)))
    check_fleet_counts(ltm, ltm_stored(project_id))
    both_project, both_runs = prepare(client, runs)
    both = fleet_load(api.url, both_runs, scale, ltm_batches([both_project], seconds))
    check_fleet_counts(both, ltm_stored(both_project))
    with ThreadPoolExecutor(8) as pool:
        mlflow_runs = list(pool.map(lambda _: mlflow.create_run(experiment_id), range(runs)))
    theirs = fleet_load(server.url, mlflow_runs, scale, mlflow_batches(seconds))
    check_fleet_counts(theirs, mlflow_stored)
    a = fleet_line("MLflow runs/log-batch, 10 metrics (JSON)", theirs, runs)
    b = fleet_line("ltm metric batch, 10 points (Arrow)", ltm, runs)
    kept_up = " (ltm kept up with the offered load: a lower bound, more --fleet-runs raise it)"
    print(
        f"M5 ltm/MLflow, metric request alone: requests/s {b['rate'] / a['rate']:,.1f}×"
        f"{kept_up if b['rate'] >= 0.95 * runs else ''}; ack p50 MLflow/ltm {a['p50'] / b['p50']:,.1f}×, p99 "
        f"{a['p99'] / b['p99']:,.1f}×",
        flush=True,
    )
    fleet_line("ltm log batch (20 lines) + metric batch (10 points), both requests", both, 2 * runs)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def compare(server: MlflowServer, api: ApiProcess, scale: Scale, only_fleet: bool = False) -> None:
    print(f"load average (1, 5, 15 min) before: {load_average()} on {os.cpu_count()} cores", flush=True)
    memory_figures("idle after start", server.process.pid, api.process.pid)
    mlflow = MlflowRest(server.url)
    try:
        with Client(api.url, timeout=600) as client:
            experiment_id = mlflow.create_experiment("bench-mlflow")
            project_id = client.create_project(name="bench-mlflow", owner="bench").id
            if not only_fleet:
                mlflow_run, ltm_run = compare_ingest(mlflow, server, experiment_id, client, project_id, scale)
                compare_get_run(server, mlflow_run, api, project_id, ltm_run, scale)
                compare_series_read(mlflow, server, experiment_id, client, api, project_id, scale)
            print(f"load average (1, 5, 15 min) before M5: {load_average()}", flush=True)
            compare_fleet(mlflow, server, experiment_id, client, api, scale)
    finally:
        mlflow.close()
    memory_figures("idle after the tests", server.process.pid, api.process.pid)
    print(f"load average (1, 5, 15 min) after: {load_average()}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: proves the benchmark runs")
    parser.add_argument(
        "--mlflow-venv",
        type=Path,
        default=Path(os.environ.get("MLFLOW_VENV", ".venv-mlflow")),
        help="virtual env with mlflow installed (default .venv-mlflow, or $MLFLOW_VENV)",
    )
    parser.add_argument(
        "--mlflow-workers", type=int, help="mlflow server --workers; default 4 (MLflow's own default), 1 with --smoke"
    )
    parser.add_argument("--samples", type=int, help="samples of the ingest figures (M1)")
    parser.add_argument("--fleet-runs", type=int, help="live runs of M5, the same on both servers (default 200)")
    parser.add_argument("--fleet-seconds", type=int, help="seconds of offered load in M5 (default 30)")
    parser.add_argument("--fleet-connections", type=int, help="keep-alive connections in M5 (default 64)")
    parser.add_argument("--only-fleet", action="store_true", help="M5 alone (with M4's memory figures)")
    args = parser.parse_args()
    scale = SMOKE if args.smoke else FULL
    if args.samples:
        scale = replace(scale, samples=args.samples)
    for name in ("fleet_runs", "fleet_seconds", "fleet_connections"):
        if getattr(args, name):
            scale = replace(scale, **{name: getattr(args, name)})
    assert (args.mlflow_venv / "bin" / "mlflow").exists(), f"no mlflow in {args.mlflow_venv}: run make bench-mlflow"
    with tempfile.TemporaryDirectory() as tmp:
        server = MlflowServer(args.mlflow_venv, Path(tmp), args.mlflow_workers or (1 if args.smoke else 4))
        api = None
        try:
            started = time.perf_counter()
            server.launch()
            api = ApiProcess(Path(tmp) / "home", LTM_LAUNCHER="none").start()
            print(f"ltm API answering after {time.perf_counter() - started:.1f} s", flush=True)
            server.wait_ready()
            print(
                f"MLflow {server.version()} answering with {server.workers} workers after "
                f"{time.perf_counter() - started:.1f} s (started alongside ltm): "
                f"{' '.join(server.command()[1:])}",
                flush=True,
            )
            compare(server, api, scale, args.only_fleet)
        except Exception:
            print("--- mlflow server log\n" + server.log_tail(), flush=True)
            raise
        finally:
            server.stop()
            if api is not None:
                api.stop()


if __name__ == "__main__":
    main()
