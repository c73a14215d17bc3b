"""Console benchmarks in headless Chromium: first page load, a run page whose series hold 1M points each, and a
project page holding 10,000 runs.

Run with `python -m bench.bench_console [--points N] [--series N] [--loads N] [--runs N] [--only 10c]`; `--smoke`
uses tiny sizes for CI, `--only` runs the named figures alone. It starts its own `ltm up`; the project page's runs
are generated straight into the DuckDB file of an API and a console of their own (as bench_runs does), since 10,000
runs through `ltm up` would each start a flow.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from playwright.sync_api import sync_playwright

from bench.bench_runs import fill
from bench.common import figure
from ltm import Client
from ltm.models import MetricBatch, MetricPoint
from ltm.testing import ROOT, ApiProcess, LtmSystem, answers, free_port, wait_until

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
BATCH = 50_000
FULL = {"points": 1_000_000, "series": 3, "loads": 5, "runs": 10_000}
SMOKE = {"points": BATCH + 1, "series": 2, "loads": 1, "runs": 500}


def seed_run(api: Client, points: int, series: int) -> tuple[str, str, float]:
    project = api.create_project(name=f"bench-console-{uuid.uuid4().hex[:6]}", owner="bench")
    run = api.create_run(project.id, model="m", dataset="d")
    start = datetime.now(timezone.utc)
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for index in range(series):
        name = f"series_{index}"
        values = np.cumsum(rng.standard_normal(points)) * 0.01 + 3.0
        for first in range(0, points, BATCH):
            chunk = [
                MetricPoint.model_construct(
                    name=name, step=step, value=float(values[step]), timestamp=start + timedelta(milliseconds=step)
                )
                for step in range(first, min(points, first + BATCH))
            ]
            api.send_metrics(project.id, run.id, MetricBatch.model_construct(batch_id=uuid.uuid4().hex, points=chunk))
    elapsed = time.perf_counter() - started
    api.cancel_run(project.id, run.id)  # a finished run: its page is not live, and it accepts no more points
    stored = {s.name: s.total_points for s in api.get_metrics(project.id, run.id, max_points=1).series}
    if stored != {f"series_{index}": points for index in range(series)}:
        raise AssertionError(f"stored points per series {stored}, expected {points} in each of {series}")
    return project.id, run.id, elapsed


def start_console(api_url: str) -> tuple[subprocess.Popen, str]:
    """The Streamlit console against `api_url`, in its own process; returns it and its URL."""
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", str(ROOT / "console" / "app.py"), "--server.address"]
    command += ["127.0.0.1", "--server.port", str(port), "--server.headless", "true"]
    command += ["--browser.gatherUsageStats", "false"]
    console = subprocess.Popen(
        command, env={**os.environ, "LTM_API_URL": api_url}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return console, f"http://127.0.0.1:{port}"


def load_seconds(browser, url: str, ready) -> float:
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    started = time.perf_counter()
    page.goto(url)
    ready(page)
    elapsed = time.perf_counter() - started
    context.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for CI: every figure once in about a minute")
    parser.add_argument("--points", type=int, help="points per series")
    parser.add_argument("--series", type=int)
    parser.add_argument("--loads", type=int, help="samples per figure")
    parser.add_argument("--runs", type=int, help="runs in the project whose page 10c loads")
    parser.add_argument("--only", nargs="+", choices=["10a", "10b", "10c"], help="figures to run (default: all)")
    args = parser.parse_args()
    for key, value in (SMOKE if args.smoke else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    only = set(args.only or ["10a", "10b", "10c"])
    with tempfile.TemporaryDirectory() as tmp:
        if only & {"10a", "10b"}:
            first_pages(Path(tmp) / "home", args, only)
        if "10c" in only:
            project_page(Path(tmp) / "runs-home", args.runs, args.loads)


def first_pages(home: Path, args: argparse.Namespace, only: set[str]) -> None:
    """10a: the console's first page; 10b: a run page whose series hold many points, until its charts are drawn."""
    system = LtmSystem(home).start()
    try:
        if "10b" in only:
            with Client(system.api_url, timeout=120) as api:
                project_id, run_id, seeded = seed_run(api, args.points, args.series)
            print(f"seeded {args.series} × {args.points:,} points in {seeded:.1f} s", flush=True)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)

            def projects_ready(page):
                return page.get_by_role("button", name="创建项目").wait_for(timeout=30_000)

            def charts_ready(page):
                page.locator(".vega-embed").nth(args.series - 1).wait_for(timeout=60_000)

            load_seconds(browser, system.console_url, projects_ready)  # warm-up: Streamlit's first script run
            if "10a" in only:
                first = [load_seconds(browser, system.console_url, projects_ready) for _ in range(args.loads)]
                figure("10a console first page (项目) in headless Chromium", first, "≤ 3 s")
            if "10b" in only:
                run_url = f"{system.console_url}/run?project_id={project_id}&run_id={run_id}"
                runs = [load_seconds(browser, run_url, charts_ready) for _ in range(args.loads)]
                figure(f"10b run page, {args.series} series × {args.points:,} points, charts drawn", runs, "≤ 3 s")
            browser.close()
    finally:
        system.stop()


def project_page(home: Path, runs: int, loads: int) -> None:
    """10c: the project page opened on its 运行 tab, until the first page of the newest runs is in the grid."""
    started = time.perf_counter()
    project_id = fill(home, runs)
    print(f"{runs:,} runs generated in {time.perf_counter() - started:.1f} s", flush=True)
    api = ApiProcess(home).start()
    console, console_url = start_console(api.url)
    try:
        wait_until(lambda: answers(f"{console_url}/_stcore/health"), timeout=60, message="the console to answer")
        newest = f"run-{runs - 1:06d}"  # fill() names run i run-%06d, created in order

        def runs_ready(page):
            # Checked at every animation frame: a locator's wait_for polls only every 500 ms after its first tries,
            # which added up to half a second to the figure.
            page.wait_for_function(
                """([caption, newest]) => document.body.textContent.includes(caption) &&
                    [...document.querySelectorAll('[data-testid="glide-cell-0-0"]')]
                        .some((cell) => cell.textContent.includes(newest))""",
                arg=[f"共 {runs} 个运行", newest],
                polling="raf",
                timeout=60_000,
            )

        url = f"{console_url}/project?project_id={project_id}&tab=%E8%BF%90%E8%A1%8C"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            load_seconds(browser, url, runs_ready)  # warm-up
            samples = [load_seconds(browser, url, runs_ready) for _ in range(loads)]
            figure(f"10c project page with {runs:,} runs, 运行 tab, newest runs in the grid", samples, "≤ 2 s")
            browser.close()
    finally:
        console.terminate()
        console.wait(timeout=30)
        api.stop()


if __name__ == "__main__":
    main()
