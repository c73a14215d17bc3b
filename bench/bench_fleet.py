"""Fleet-scale benchmarks: many live runs sending small batches to one API node.

15  one small ingest request at a time: round trip of a 20-line log batch, a 10-point metric batch and a progress
    PATCH, beside /health (the HTTP floor of the same stack).
16  the load client alone against a trivial HTTP server (it must not be the bottleneck).
17  N simulated live runs, each sending a 20-line log batch and a 10-point metric batch (Arrow, as the SDK does) once
    a second: requests acknowledged per second, acknowledgement p50/p99, GET run p50 during the load, and every
    acknowledged line and point counted in the store file afterwards (exactly once).
17c the same runs' data as one report per run and second (POST …/report: the log batch, the metric batch and the
    progress together, as the SDK's RunReporter sends a flush), on runs of their own: requests/s, acknowledgement
    p50/p99, GET run p50, and the stored counts checked the same way. 17 and 17c also print the group commits of
    the load's last minute as the API's /health reports them (duration, and how long each group's oldest batch waited).
17b during the figure 17 load, the Streamlit console's page of one of those live runs in headless Chromium (as
    bench_console's 10b), until its two charts are drawn; the browser shares the machine with the load.
18  50 real RunReporters (SDK threads) driving the simulated trainer at 10 steps/s each: acknowledgement p99 and the
    most rows any reporter held buffered.
19  the API process's resident memory after the load.

Run with `python -m bench.bench_fleet [--runs N] [--seconds S] [--shards K] [--page-loads N]`; `--smoke` uses tiny
sizes for CI, `--page-loads 0` leaves the console out. It starts its own API processes (no Prefect) and console.
`--shards 2` runs two API processes, each owning its own DuckDB file, and routes each run to one of them: the
measurement behind docs/scaling.md.
"""

import argparse
import asyncio
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import httpx
from playwright.sync_api import sync_playwright

from bench.bench_console import CHROMIUM_ARGS, load_seconds, start_console
from bench.common import figure
from ltm import Client, arrow_batches
from ltm.reporter import RunReporter
from ltm.testing import ApiProcess, answers, free_port, wait_until
from ltm.trainers import TrainerConfig, get_trainer

LINES, POINTS = 20, 10
KINDS = ("logs", "metrics")  # the order of the batches in templates()
SERIES = ("train_loss", "learning_rate")
ID_WIDTH = 24
PLACEHOLDER = "Q" * ID_WIDTH
TRIVIAL_SERVER = """
import sys, uvicorn
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    body = b'{"accepted": 10, "duplicate": false}'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


class Connection:
    """HTTP/1.1 with keep-alive over one socket: httpx's AsyncClient tops out near 375 requests/s on these
    machines, far below what the API must be offered."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"", content_type: str = "application/json"):
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status = int((await self.reader.readline()).split()[1])
        length, headers = 0, {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.lower()] = value.strip()
        length = int(headers.get("content-length", 0))
        return status, headers, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def address(url: str) -> tuple[str, int]:
    host, port = url.split("//")[1].split(":")
    return host, int(port)


def second_points(second: int) -> tuple[list[str], list[int], list[float]]:
    """Names, steps and values of the 10 metric points a run sends in second `second` of the load."""
    return (
        [SERIES[i % 2] for i in range(POINTS)],
        [second * 5 + i // 2 for i in range(POINTS)],
        [2.0 / (1 + second + i) for i in range(POINTS)],
    )


def templates(seconds: int) -> list[tuple[bytes, bytes]]:
    """Per second of load: an Arrow log batch and an Arrow metric batch whose batch id is a placeholder, replaced
    per run and second (the same length, so the stream stays valid); steps advance with the second."""
    t0 = arrow_batches.micros(datetime(2026, 1, 1, tzinfo=timezone.utc))
    bodies = []
    for second in range(seconds):
        base = t0 + second * 1_000_000
        lines = arrow_batches.log_table(
            [base + i for i in range(LINES)],
            ["INFO"] * LINES,
            [f"step {second * 10 + i // 2} loss={2.0 / (1 + second + i):.4f} lr=3.0e-04" for i in range(LINES)],
        )
        points = arrow_batches.metric_table(*second_points(second), [base + i for i in range(POINTS)])
        bodies.append((arrow_batches.encode(lines, PLACEHOLDER), arrow_batches.encode(points, PLACEHOLDER)))
    return bodies


def named(body: bytes, run: int, second: int, kind: str) -> bytes:
    """`body` with its placeholder batch id replaced by one unique to the run, the second and the kind."""
    return body.replace(PLACEHOLDER.encode(), f"{kind}{run:09d}-{second:013d}".encode())


def report_batches(project_ids: list[str], seconds: int):
    """What one run sends in one second as a single report: its log and metric batch and its progress."""
    bodies = templates(seconds)

    def requests(shard: int, index: int, run_id: str, second: int) -> list[tuple[str, str, bytes, str]]:
        logs, metrics = (named(body, index, second, kind[0]) for body, kind in zip(bodies[second], KINDS))
        progress = {"progress": (second + 1) / seconds, "current_step": second * 5 + 4, "total_steps": seconds * 5}
        body = arrow_batches.encode_report(progress, logs, metrics)
        path = f"/projects/{project_ids[shard]}/runs/{run_id}/report"
        return [("report", path, body, arrow_batches.REPORT_MEDIA_TYPE)]

    return requests


def prepare(client: Client, runs: int) -> tuple[str, list[str]]:
    project = client.create_project(name=f"fleet-{uuid.uuid4().hex[:8]}", owner="bench")
    ids = []
    for _ in range(runs):
        run = client.create_run(project.id, model="bench", dataset="bench")
        client.report(project.id, run.id, status="运行中")
        ids.append(run.id)
    return project.id, ids


def ltm_batches(project_ids: list[str], seconds: int, kinds: tuple[str, ...] = KINDS):
    """What one run sends to ltm in one second of load: its Arrow batches of `kinds`, each named uniquely."""
    bodies = templates(seconds)

    def requests(shard: int, index: int, run_id: str, second: int) -> list[tuple[str, str, bytes, str]]:
        base = f"/projects/{project_ids[shard]}/runs/{run_id}"
        return [
            (
                kind,
                f"{base}/{kind}",
                named(bodies[second][KINDS.index(kind)], index, second, kind[0]),
                arrow_batches.MEDIA_TYPE,
            )
            for kind in kinds
        ]

    return requests


async def offered_requests(
    urls: list[str],
    run_ids: list[list[str]],
    seconds: int,
    connections: int,
    requests,
    read_path=None,
    started: float | None = None,
    deadline: float | None = None,
    errors_counted: bool = False,
) -> dict:
    """Every run sends `requests(shard, index, run_id, second)` once a second, runs spread evenly over the second;
    requests are queued to `connections` keep-alive connections per server (`urls`, one per shard). Latency is
    measured from the moment a request is written. `read_path(i)`, if given, is read from the first server every
    0.2 s during the load. The load starts at `started` (a `time.perf_counter()` value; default 0.5 s from now);
    requests still queued `deadline` seconds after it are not sent but counted as unsent. A 503 is retried after its
    Retry-After; any other answer but 200 fails the load, or with `errors_counted` is counted and not retried."""
    flat = [(shard, run_id) for shard, ids in enumerate(run_ids) for run_id in ids]
    queues = [asyncio.Queue() for _ in urls]
    latencies: list[float] = []
    lateness: list[float] = []
    refused: dict[int, int] = {}
    failed: dict[str, int] = {}
    acknowledged = {run_id: {} for _, run_id in flat}
    unsent = 0
    started = time.perf_counter() + 0.5 if started is None else started

    async def schedule() -> None:
        total = len(flat) * seconds
        for k in range(total):
            second, index = divmod(k, len(flat))
            due = started + second + index / len(flat)
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            shard, run_id = flat[index]
            for kind, path, body, media in requests(shard, index, run_id, second):
                queues[shard].put_nowait((due, run_id, kind, path, body, media))
        for queue in queues:
            for _ in range(connections):
                queue.put_nowait(None)

    async def work(shard: int) -> None:
        nonlocal unsent
        connection = Connection(*address(urls[shard]))
        while (item := await queues[shard].get()) is not None:
            due, run_id, kind, path, body, media = item
            if deadline is not None and time.perf_counter() > started + deadline:
                unsent += 1
                continue
            while True:
                sent = time.perf_counter()
                status, headers, answer = await connection.request("POST", path, body, media)
                if status == 200 or (errors_counted and status != 503):
                    break
                assert status == 503, (status, answer[:300])
                refused[status] = refused.get(status, 0) + 1
                await asyncio.sleep(float(headers.get("retry-after", 1)))
            done = time.perf_counter()
            if status != 200:
                error = f"{status} {answer[:160].decode(errors='replace')}"
                failed[error] = failed.get(error, 0) + 1
                continue
            latencies.append(done - sent)
            lateness.append(sent - due)
            acknowledged[run_id][kind] = acknowledged[run_id].get(kind, 0) + 1
        connection.close()

    reads: list[float] = []

    async def read_runs() -> None:
        if read_path is None:
            return
        connection = Connection(*address(urls[0]))
        while time.perf_counter() < started + seconds:
            sent = time.perf_counter()
            status, _, _ = await connection.request("GET", read_path(len(reads)))
            assert status == 200
            reads.append(time.perf_counter() - sent)
            await asyncio.sleep(0.2)
        connection.close()

    workers = [work(shard) for shard in range(len(urls)) for _ in range(connections)]
    await asyncio.gather(schedule(), read_runs(), *workers)
    elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "elapsed": elapsed,
        "latencies": latencies,
        "lateness": lateness,
        "reads": reads,
        "refused": refused,
        "acknowledged": acknowledged,
        "unsent": unsent,
        "failed": failed,
    }


async def offered_load(
    urls: list[str],
    project_ids: list[str],
    run_ids: list[list[str]],
    seconds: int,
    connections: int,
    started: float | None = None,
    reports: bool = False,
) -> dict:
    """Figure 17 (17c with `reports`): every run sends its log and metric batch once a second, while GET run is
    read beside them."""
    return await offered_requests(
        urls,
        run_ids,
        seconds,
        connections,
        (report_batches if reports else ltm_batches)(project_ids, seconds),
        read_path=lambda i: f"/projects/{project_ids[0]}/runs/{run_ids[0][i % len(run_ids[0])]}",
        started=started,
    )


def with_run_pages(load, console_url: str, project_id: str, run_id: str, pages: int, after: float, seconds: int):
    """Runs `load(started)` on a thread while headless Chromium opens the console's page of live run `run_id` until
    its two charts are drawn (as bench_console's 10b): `pages` times one after the other, the first `after` s into
    the load, the others only while the load lasts. Returns the load's result, the page timings and how many of
    them ended within the load."""
    url = f"{console_url}/run?project_id={project_id}&run_id={run_id}"
    outcome: dict = {}

    def run_load(started: float) -> None:
        try:
            outcome["result"] = load(started)
        except BaseException as error:  # noqa: BLE001 - re-raised on the main thread
            outcome["error"] = error

    def charts_ready(page) -> None:
        page.locator(".vega-embed").nth(1).wait_for(timeout=60_000)

    def page_ready(page) -> None:
        page.get_by_text("指标曲线", exact=True).wait_for(timeout=60_000)

    wait_until(lambda: answers(f"{console_url}/_stcore/health"), timeout=60, message="the console to answer")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        load_seconds(browser, url, page_ready)  # warm-up before the load: Streamlit's first script run
        started = time.perf_counter() + 0.5
        thread = threading.Thread(target=run_load, args=(started,))
        thread.start()
        try:
            time.sleep(max(0.0, started + after - time.perf_counter()))
            samples, within = [], 0
            while len(samples) < pages and (not samples or time.perf_counter() < started + seconds):
                samples.append(load_seconds(browser, url, charts_ready))
                within += time.perf_counter() <= started + seconds
            browser.close()
        finally:
            thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"], samples, within


def stored_counts(db_path: Path) -> dict[str, tuple[int, int]]:
    """Lines and points of each run, read from the store file once its API has stopped."""
    with duckdb.connect(str(db_path), read_only=True) as con:
        lines = dict(con.execute("SELECT run_id, count(*) FROM logs GROUP BY run_id").fetchall())
        points = dict(con.execute("SELECT run_id, count(*) FROM metrics GROUP BY run_id").fetchall())
    return {run_id: (lines.get(run_id, 0), points.get(run_id, 0)) for run_id in set(lines) | set(points)}


def differing(acknowledged: dict[str, dict[str, int]], stored: dict[str, tuple[int, int]]) -> list[str]:
    """Runs whose stored lines and points are not what their acknowledged batches and reports hold."""
    return [
        run_id
        for run_id, acks in acknowledged.items()
        if stored.get(run_id, (0, 0))
        != (
            (acks.get("logs", 0) + acks.get("report", 0)) * LINES,
            (acks.get("metrics", 0) + acks.get("report", 0)) * POINTS,
        )
    ]


def print_load(label: str, result: dict, stored: dict[str, tuple[int, int]], offered: str) -> list[str]:
    """Figure 17's line for one load; returns the runs whose stored counts differ from the acknowledged ones."""
    latencies, wrong = result["latencies"], differing(result["acknowledged"], stored)
    print(
        f"{label}: {result['requests'] / result['elapsed']:,.0f} requests/s acknowledged ({offered}); "
        f"ack p50 {percentile(latencies, 0.5) * 1000:.1f} ms, p99 {percentile(latencies, 0.99) * 1000:.1f} ms "
        f"(target ≤ 250); client lateness p99 {percentile(result['lateness'], 0.99) * 1000:.0f} ms; "
        f"503 answers {result['refused'] or 0}; "
        f"runs whose stored counts differ from the acknowledged ones: {len(wrong)} of {len(result['acknowledged'])}",
        flush=True,
    )
    return wrong


def last_minute(apis: list[ApiProcess]) -> list[dict]:
    """Each API's group commits of the last minute, as its /health reports them."""
    return [httpx.get(f"{api.url}/health", timeout=60).json()["ingest"]["last_minute"] for api in apis]


def print_commits(number: str, windows: list[dict]) -> None:
    for shard, window in enumerate(windows):
        print(
            f"{number} group commits in the load's last minute, API {shard + 1} (/health): {window['commits']:,} "
            f"commits of {window['batches']:,} batches; a commit p50 {window['commit_ms_p50']} ms, p99 "
            f"{window['commit_ms_p99']} ms; its oldest batch waited p50 {window['wait_ms_p50']} ms, p99 "
            f"{window['wait_ms_p99']} ms",
            flush=True,
        )


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def trivial_rate(seconds: float, connections: int) -> float:
    """Requests/s the load client gets from a trivial uvicorn app, posting the same bodies it posts to the API."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", TRIVIAL_SERVER, str(port)])
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/"), message="the trivial server")
        body = templates(1)[0][1]

        async def hammer() -> int:
            done = 0
            stop = time.perf_counter() + seconds

            async def one() -> None:
                nonlocal done
                connection = Connection("127.0.0.1", port)
                while time.perf_counter() < stop:
                    await connection.request("POST", "/projects/p/runs/r/metrics", body, arrow_batches.MEDIA_TYPE)
                    done += 1
                connection.close()

            await asyncio.gather(*(one() for _ in range(connections)))
            return done

        return asyncio.run(hammer()) / seconds
    finally:
        server.terminate()
        server.wait()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def sequential(url: str, project_id: str, run_id: str, requests: int) -> dict[str, list[float]]:
    """One request at a time over one connection: the cost of a single small request."""
    bodies = templates(requests)

    async def measure() -> dict[str, list[float]]:
        connection = Connection(*address(url))
        base = f"/projects/{project_id}/runs/{run_id}"
        timings: dict[str, list[float]] = {"health": [], "logs": [], "metrics": [], "progress": [], "report": []}
        for second, (log_body, metric_body) in enumerate(bodies):
            for kind, method, path, body, media in (
                ("health", "GET", "/health", b"", "application/json"),
                (
                    "logs",
                    "POST",
                    base + "/logs",
                    named(log_body, 0, second, "s"),
                    arrow_batches.MEDIA_TYPE,
                ),
                (
                    "metrics",
                    "POST",
                    base + "/metrics",
                    named(metric_body, 0, second, "t"),
                    arrow_batches.MEDIA_TYPE,
                ),
                (
                    "progress",
                    "PATCH",
                    base,
                    f'{{"progress": {second / requests}, "current_step": {second}}}'.encode(),
                    "application/json",
                ),
                (
                    "report",
                    "POST",
                    base + "/report",
                    arrow_batches.encode_report(
                        {"progress": second / requests, "current_step": second},
                        named(log_body, 0, second, "u"),
                        named(metric_body, 0, second, "v"),
                    ),
                    arrow_batches.REPORT_MEDIA_TYPE,
                ),
            ):
                sent = time.perf_counter()
                status, _, answer = await connection.request(method, path, body, media)
                assert status == 200, answer[:300]
                timings[kind].append(time.perf_counter() - sent)
        connection.close()
        return timings

    return asyncio.run(measure())


def reporters(url: str, count: int, seconds: float) -> dict:
    """`count` RunReporters, each fed by the simulated trainer at 10 steps/s (its metrics and one log line a step)."""
    latencies: list[float] = []
    buffered: list[int] = []

    def timed(request: httpx.Request) -> None:
        request.extensions["sent"] = time.perf_counter()

    def acknowledged(response: httpx.Response) -> None:
        if response.request.method == "POST":
            latencies.append(time.perf_counter() - response.request.extensions["sent"])

    http = httpx.Client(base_url=url, timeout=60, event_hooks={"request": [timed], "response": [acknowledged]})
    client = Client(http=http)
    project_id, run_ids = prepare(client, count)
    trainer_class = get_trainer("simulated")
    stop = threading.Event()

    def train(run_id: str) -> None:
        config = TrainerConfig(
            "bench", "bench", None, {"num_epochs": 1000, "steps_per_epoch": 1000, "step_seconds": 0}, {}
        )
        trainer = trainer_class(config)
        reporter = RunReporter(client, project_id, run_id)
        next_step = time.perf_counter()
        while not stop.is_set():
            out = trainer.train_step()
            reporter.metrics(out.step, out.metrics)
            reporter.log(out.log or f"step {out.step} loss={out.metrics.get('train_loss', 0):.4f}")
            reporter.progress(current_step=out.step, progress=out.step / trainer.total_steps)
            buffered.append(len(reporter._lines.columns[0]) + len(reporter._points.columns[0]))
            next_step += 0.1
            time.sleep(max(0.0, next_step - time.perf_counter()))
        reporter.close()

    threads = [threading.Thread(target=train, args=(run_id,)) for run_id in run_ids]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    http.close()
    return {"latencies": latencies, "buffered": max(buffered)}


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: proves the benchmark runs")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--connections", type=int, default=256, help="keep-alive connections per API")
    parser.add_argument("--shards", type=int, default=1, help="API processes, each owning one DuckDB file")
    parser.add_argument("--reporters", type=int, default=50)
    parser.add_argument(
        "--page-loads", type=int, default=5, help="console run page loads during the load (17b); 0: no console"
    )
    args = parser.parse_args()
    if args.smoke:
        args.runs, args.seconds, args.reporters, args.connections = 20, 3, 4, 8
        args.page_loads = min(args.page_loads, 1)
    page_after = min(10.0, args.seconds / 3)  # seconds of load before the first page load: the run has metrics
    with tempfile.TemporaryDirectory() as tmp:
        apis = [ApiProcess(Path(tmp) / f"home-{shard}", LTM_LAUNCHER="none").start() for shard in range(args.shards)]
        console = None
        try:
            clients = [Client(api.url, timeout=120) for api in apis]
            seq_project, (seq_run,) = prepare(clients[0], 1)
            timings = sequential(apis[0].url, seq_project, seq_run, 30 if args.smoke else 300)
            if args.page_loads:  # started after 15, so its start-up does not share the cores with those timings
                console, console_url = start_console(apis[0].url)
            shards = [prepare(client, args.runs // args.shards) for client in clients]
            client_alone = trivial_rate(2 if args.smoke else 5, args.connections)

            def load(started: float | None = None, runs: list[tuple[str, list[str]]] = shards, **kind) -> dict:
                urls, project_ids = [api.url for api in apis], [project for project, _ in runs]
                run_ids = [ids for _, ids in runs]
                return asyncio.run(
                    offered_load(urls, project_ids, run_ids, args.seconds, args.connections, started, **kind)
                )

            if console is None:
                result = load()
            else:
                project_id, run_ids = shards[0]
                result, pages, pages_within = with_run_pages(
                    load, console_url, project_id, run_ids[0], args.page_loads, page_after, args.seconds
                )
            commits = last_minute(apis)
            report_shards = [prepare(client, args.runs // args.shards) for client in clients]
            combined = load(runs=report_shards, reports=True)
            report_commits = last_minute(apis)
            fleet = reporters(apis[0].url, args.reporters, 3 if args.smoke else 30)
            memory = [resident_mb(api.process.pid) for api in apis]
        finally:
            if console is not None:
                console.terminate()
                console.wait(timeout=30)
            for api in apis:
                api.stop()
        stored: dict[str, tuple[int, int]] = {}
        for api in apis:
            stored.update(stored_counts(api.home / "ltm.duckdb"))
    for kind, samples in timings.items():
        figure(f"15 sequential {kind} round trip", [s * 1000 for s in samples], "≤ 2 ms (ingest)", unit="ms")
    print(f"16 load client alone against a trivial server: {client_alone:,.0f} requests/s", flush=True)
    wrong = print_load(
        f"17 {args.runs} live runs × (log + metric batch)/s for {args.seconds} s on {args.shards} API node(s)",
        result,
        stored,
        f"offered {2 * args.runs:,}/s, target ≥ 2,000",
    )
    figure("17 GET run during the load", [r * 1000 for r in result["reads"]], "≤ 10 ms", unit="ms")
    print_commits("17", commits)
    if console is not None:
        figure(
            f"17b console run page (运行) of one live run during the load, headless Chromium, 2 charts drawn "
            f"(first {page_after:.0f} s in; {pages_within} of {len(pages)} ended within the load)",
            pages,
            "≤ 3 s",
        )
    wrong += print_load(
        f"17c {args.runs} live runs × one report (log + metric batch + progress)/s for {args.seconds} s on "
        f"{args.shards} API node(s)",
        combined,
        stored,
        f"offered {args.runs:,}/s",
    )
    figure("17c GET run during the report load", [r * 1000 for r in combined["reads"]], "≤ 10 ms", unit="ms")
    print_commits("17c", report_commits)
    print(
        f"18 {args.reporters} RunReporters at 10 steps/s: ack p50 {percentile(fleet['latencies'], 0.5) * 1000:.1f} ms, "
        f"p99 {percentile(fleet['latencies'], 0.99) * 1000:.1f} ms (target ≤ 250), most rows buffered by one reporter "
        f"{fleet['buffered']}",
        flush=True,
    )
    print(f"19 API resident memory after the load: {', '.join(f'{m:,.0f} MB' for m in memory)}", flush=True)
    if wrong:
        raise SystemExit(f"stored counts differ from acknowledged ones for {len(wrong)} runs")


if __name__ == "__main__":
    main()
