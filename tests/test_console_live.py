"""Watching a run live: logs that follow the newest lines, charts that keep their zoom and colours, and the Prefect
progress bar that moves within seconds. AppTest drives the real console against the session's shared API (no mocks);
the runs' logs and metrics are sent through the SDK as a training flow would send them."""

import io
import json
import os
import random
import subprocess
import sys
import threading
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import httpx
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from ltm import Client
from ltm.console import charts
from ltm.models import LogBatch, LogLine, MetricBatch, MetricPoint
from tests.conftest import ROOT, answers, free_port, wait_until
from tests.console_helpers import labelled, open_console, texts
from tests.helpers import new_project, new_run, unique

pytestmark = pytest.mark.usefixtures("fresh_cache")

START = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=20)
LEVELS = ["INFO", "DEBUG", "WARNING", "ERROR"]


@pytest.fixture
def sdk(shared_api, monkeypatch):
    """The SDK on the shared API, which the console talks to as well."""
    monkeypatch.setenv("LTM_API_URL", shared_api.url)
    with Client(shared_api.url) as client:
        yield client


def rerun(at: AppTest) -> AppTest:
    """What the page shows at its next refresh (AppTest does not tick `run_every` fragments)."""
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def log_table(at: AppTest):
    tables = [t.value for t in at.dataframe if "级别" in t.value.columns]
    assert tables, "no log table"
    return tables[0]


def new_live_run(sdk: Client, lines: int = 0, status: str = "运行中", **run_fields):
    """A run in its own project with `lines` logs one second apart (第 i 行, levels cycling) from START."""
    project = sdk.create_project(unique("实时"), "小李", base_model="llama-2-7b")
    run = sdk.create_run(project.id, "llama-2-7b", "语料", **run_fields)
    sdk.report(
        project.id, run.id, status="运行中", progress=0.5, current_step=50, total_steps=100, gpu_utilization=0.68
    )
    send_lines(sdk, run, range(lines))
    if status != "运行中":
        sdk.report(project.id, run.id, status=status)
    return run


def send_lines(sdk: Client, run, numbers) -> None:
    lines = [
        LogLine(timestamp=START + timedelta(seconds=i), level=LEVELS[i % 4], message=f"第 {i} 行") for i in numbers
    ]
    if lines:
        sdk.send_logs(run.project_id, run.id, LogBatch(batch_id=uuid.uuid4().hex, lines=lines))


def send_points(sdk: Client, run, name: str, steps, value=lambda step: 1.0 + step) -> None:
    points = [
        MetricPoint(name=name, step=step, value=value(step), timestamp=START + timedelta(seconds=step))
        for step in steps
    ]
    sdk.send_metrics(run.project_id, run.id, MetricBatch(batch_id=uuid.uuid4().hex, points=points))


# The API: newest lines first


def test_newest_first_pages_are_the_reversed_pages_whatever_order_batches_came_in(shared_http):
    """Lines paged by line numbers (batches in time order) and by sorting (batches out of order) agree newest first."""
    base = datetime(2024, 1, 2, 10, 0, tzinfo=timezone.utc)
    lines = [
        {"timestamp": (base + timedelta(seconds=i / 2)).isoformat(), "level": "WARNING" if i % 7 == 0 else "INFO"}
        | {"message": f"行 {i}"}
        for i in range(500)
    ]
    batches = [lines[i : i + 45] for i in range(0, 500, 45)]
    project_id = new_project(shared_http)["id"]
    in_order, shuffled = (new_run(shared_http, project_id) for _ in range(2))
    for run, order in ((in_order, batches), (shuffled, random.Random(5).sample(batches, len(batches)))):
        for batch in order:
            posted = shared_http.post(
                f"/projects/{project_id}/runs/{run['id']}/logs", json={"batch_id": uuid.uuid4().hex, "lines": batch}
            )
            assert posted.status_code == 200, posted.text

    def newest(run: dict, **params) -> dict:
        response = shared_http.get(f"/projects/{project_id}/runs/{run['id']}/logs", params={"order": "desc", **params})
        assert response.status_code == 200, response.text
        return response.json()

    expected = [line["message"] for line in reversed(lines)]
    at = (base + timedelta(seconds=100)).isoformat()
    for params in [{}, {"page": 3, "page_size": 33}, {"page": 11}, {"start_time": at}, {"end_time": at, "page": 2}]:
        assert newest(in_order, **params) == newest(shuffled, **params), params
    assert [i["message"] for i in newest(in_order, page_size=3)["items"]] == expected[:3]
    assert [i["message"] for i in newest(in_order, page=3, page_size=33)["items"]] == expected[66:99]
    assert newest(in_order, page=11)["items"] == [] and newest(in_order, page=11)["total"] == 500
    window = newest(in_order, start_time=at, page_size=5)
    assert window["total"] == 300 and [i["message"] for i in window["items"]] == expected[:5]
    warnings = newest(shuffled, level="WARNING", page_size=2)
    assert [i["message"] for i in warnings["items"]] == ["行 497", "行 490"] and warnings["total"] == 72
    assert [i["message"] for i in newest(in_order, q="行 49", page_size=2)["items"]] == ["行 499", "行 498"]

    wrong = shared_http.get(f"/projects/{project_id}/runs/{in_order['id']}/logs", params={"order": "最新"})
    assert wrong.status_code == 422 and "排序方向" in wrong.json()["detail"], wrong.text


# 日志 tab


def test_an_active_run_follows_its_newest_lines_until_paused(sdk):
    run = new_live_run(sdk, lines=120)
    at = open_console("run", project_id=run.project_id, run_id=run.id)

    assert any(c.startswith("共 120 条日志 · 跟随中：显示最新 50 条") for c in texts(at.caption))
    assert list(log_table(at)["内容"][:2]) == ["第 119 行", "第 118 行"]
    assert not at.pagination, "following shows the newest lines, not pages"

    send_lines(sdk, run, range(120, 125))
    rerun(at)
    assert any(c.startswith("共 125 条日志 · 跟随中") for c in texts(at.caption))
    assert log_table(at)["内容"].iloc[0] == "第 124 行"

    at.toggle(key=f"log_pause_{run.id}").set_value(True).run()
    assert "共 125 条日志，第 1 / 3 页" in texts(at.caption)
    assert log_table(at)["内容"].iloc[0] == "第 0 行"
    at.segmented_control(key="log_order").set_value("最新的在前").run()
    assert log_table(at)["内容"].iloc[0] == "第 124 行"
    at.pagination[0].set_value(3).run()
    assert list(log_table(at)["内容"]) == [f"第 {i} 行" for i in range(24, -1, -1)]


def test_a_finished_run_pages_its_lines_without_following(sdk):
    run = new_live_run(sdk, lines=60, status="已完成")
    at = open_console("run", project_id=run.project_id, run_id=run.id)
    assert not at.toggle, "nothing to follow once the run has ended"
    assert "共 60 条日志，第 1 / 2 页" in texts(at.caption)
    assert log_table(at)["内容"].iloc[0] == "第 0 行"


def test_empty_messages_tell_a_run_without_logs_from_a_filter_that_matches_nothing(sdk):
    run = new_live_run(sdk)
    at = open_console("run", project_id=run.project_id, run_id=run.id)
    assert "这个运行还没有日志。有新日志时会自动显示。" in texts(at.info)

    labelled(at.text_input, "搜索内容").set_value("不存在的文字").run()
    assert "这个运行还没有日志。有新日志时会自动显示。" in texts(at.info), "a filter over no lines: still no logs"

    send_lines(sdk, run, range(8))
    rerun(at)
    assert "没有符合筛选条件的日志（这个运行共有 8 条日志）。" in texts(at.info)
    labelled(at.text_input, "搜索内容").set_value("").run()
    assert not at.info and len(log_table(at)) == 8


def test_time_filter_works_to_the_second(sdk):
    run = new_live_run(sdk, lines=30)
    at = open_console("run", project_id=run.project_id, run_id=run.id)
    at.toggle(key=f"log_pause_{run.id}").set_value(True).run()

    local = START.astimezone().replace(tzinfo=None)
    labelled(at.text_input, "开始时间（可选）").set_value(f"{local + timedelta(seconds=7):%Y-%m-%d %H:%M:%S}")
    labelled(at.text_input, "结束时间（可选）").set_value(f"{local + timedelta(seconds=10):%Y-%m-%d %H:%M:%S}").run()
    assert list(log_table(at)["内容"]) == ["第 7 行", "第 8 行", "第 9 行"], "start inclusive, end exclusive"
    assert "共 3 条日志，第 1 / 1 页" in texts(at.caption)

    labelled(at.text_input, "开始时间（可选）").set_value("明天早上").run()
    assert any(e.startswith("开始时间格式无效：请写成") for e in texts(at.error))
    assert not [t for t in at.dataframe if "级别" in t.value.columns], "no stale table under the error"


# Charts


def chart_specs(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("vega_lite_chart")]


def chart_data(chart) -> "pa.Table":
    [dataset] = chart.proto.datasets
    assert dataset.name == charts.DATA_NAME
    return pa.ipc.open_stream(io.BytesIO(dataset.data.data)).read_all()


def chart_titled(at: AppTest, title: str):
    found = [c for c in at.get("vega_lite_chart") if json.loads(c.proto.spec)["title"] == title]
    assert found, f"no chart titled {title!r}"
    return found[0]


def layers_with(spec: dict, field: str) -> list[dict]:
    return [layer for layer in spec["layer"] if layer["encoding"].get("y", {}).get("field") == field]


def test_a_refresh_with_new_points_changes_the_data_but_not_the_spec_so_the_zoom_stays(sdk):
    run = new_live_run(sdk)
    send_points(sdk, run, "train_loss", range(0, 50, 5))
    at = open_console("run", project_id=run.project_id, run_id=run.id)
    before = chart_titled(at, "train_loss")
    assert chart_data(before).num_rows == 10

    send_points(sdk, run, "train_loss", range(50, 100, 5))
    rerun(at)
    after = chart_titled(at, "train_loss")
    assert chart_data(after).num_rows == 20
    assert after.proto.spec == before.proto.spec, "an unchanged spec lets the browser keep the drawn view and its zoom"
    assert json.loads(after.proto.spec)["params"][0]["bind"] == "scales"
    assert list(after.proto.selection_mode) == [charts.ZOOM], "as a tracked selection the zoom survives new data"


def test_a_single_point_series_is_drawn_as_a_point(sdk):
    run = new_live_run(sdk)
    send_points(sdk, run, "eval_accuracy", [100])
    send_points(sdk, run, "train_loss", range(100))
    at = open_console("run", project_id=run.project_id, run_id=run.id)
    single, many = chart_titled(at, "eval_accuracy"), chart_titled(at, "train_loss")
    point_layers = [layer for layer in json.loads(single.proto.spec)["layer"] if layer["mark"]["type"] == "point"]
    assert point_layers and point_layers[0]["transform"] == [{"filter": "datum.few"}]
    assert chart_data(single).column("few").to_pylist() == [True]
    assert not any(chart_data(many).column("few").to_pylist()), "a long series is a line without dots"


def test_smoothing_log_scale_and_time_axis(sdk):
    run = new_live_run(sdk)
    send_points(sdk, run, "train_loss", range(40), value=lambda step: 3.0 if step % 2 else 1.0)
    at = open_console("run", project_id=run.project_id, run_id=run.id)

    labelled(at.slider, "平滑").set_value(0.9).run()
    spec, data = json.loads(chart_titled(at, "train_loss").proto.spec), chart_data(chart_titled(at, "train_loss"))
    raw, smoothed = data.column("last").to_pylist(), data.column("value").to_pylist()
    assert max(raw) - min(raw) == 2 and max(smoothed[10:]) - min(smoothed[10:]) < 0.5, "EMA flattens the zigzag"
    assert smoothed[0] == raw[0], "debiased: the first point is not pulled towards zero"
    assert layers_with(spec, "last"), "the raw line stays visible behind the smoothed one"

    at.toggle(key=f"chart_{run.id}_log").set_value(True).run()
    spec = json.loads(chart_titled(at, "train_loss").proto.spec)
    assert {layer["encoding"]["y"]["scale"]["type"] for layer in spec["layer"]} == {"log"}

    at.segmented_control(key=f"chart_{run.id}_x").set_value("时钟时间").run()
    spec = json.loads(chart_titled(at, "train_loss").proto.spec)
    x = spec["layer"][0]["encoding"]["x"]
    assert (x["field"], x["type"], x["title"], x["axis"]["format"]) == ("timestamp", "temporal", "时间", "%H:%M:%S")
    at.segmented_control(key=f"chart_{run.id}_x").set_value("相对时间").run()
    chart = chart_titled(at, "train_loss")
    assert json.loads(chart.proto.spec)["layer"][0]["encoding"]["x"]["field"] == "elapsed"
    assert chart_data(chart).column("elapsed").to_pylist()[-1] == pytest.approx(39 / 60)


def test_compare_charts_have_a_legend_and_one_fixed_colour_per_run(sdk):
    project = sdk.create_project(unique("对比"), "小李", base_model="llama-2-7b")
    runs = [sdk.create_run(project.id, "m", "d", name=name) for name in ("基线", "大学习率", "长训练")]
    for index, run in enumerate(runs):
        send_points(sdk, run, "train_loss", range(0, 30, 3), value=lambda step, i=index: 3.0 - step / 10 + i)
        send_points(sdk, run, "eval_accuracy", [30], value=lambda step, i=index: 0.5 + i / 10)
    ids = ",".join(run.id for run in runs[::-1])
    at = open_console("compare", project_id=project.id, runs=ids)

    specs = chart_specs(at)
    assert {spec["title"] for spec in specs} == {"train_loss", "eval_accuracy"}
    for spec in specs:
        [line] = [layer for layer in spec["layer"] if layer["mark"]["type"] == "line"]
        color = line["encoding"]["color"]
        assert color["scale"] == {"domain": ["长训练", "大学习率", "基线"], "range": list(charts.PALETTE[:3])}
        assert color["legend"]["title"] == "运行"
    for chart in at.get("vega_lite_chart"):
        if json.loads(chart.proto.spec)["title"] == "eval_accuracy":
            assert chart_data(chart).column("few").to_pylist() == [True, True, True], "one dot per run"


# GPU


def test_a_finished_run_shows_no_stale_gpu_utilisation(sdk):
    run = new_live_run(sdk)
    at = open_console("run", project_id=run.project_id, run_id=run.id)
    assert {m.label: m.value for m in at.metric}["GPU 利用率"] == "68%"

    sdk.report(run.project_id, run.id, status="已完成")
    at = open_console("run", project_id=run.project_id, run_id=run.id)
    assert {m.label: m.value for m in at.metric}["GPU 利用率"] == "—", "no stale reading once the run has ended"


# What the page asks the API


class _Forward(BaseHTTPRequestHandler):
    """Passes each request on to the real API and notes its method and path."""

    protocol_version = "HTTP/1.1"

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append((self.command, urlsplit(self.path).path))
        skip = {"host", "content-length", "connection", "accept-encoding"}
        headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
        answer = httpx.request(self.command, self.server.target + self.path, headers=headers, content=body, timeout=30)
        self.send_response(answer.status_code)
        for name, value in answer.headers.items():
            if name.lower() not in {"content-length", "transfer-encoding", "connection", "content-encoding"}:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _forward

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def counted(shared_api, monkeypatch):
    """The console's requests, counted on their way to the shared API."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Forward)
    server.target, server.seen = shared_api.url, []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("LTM_API_URL", f"http://127.0.0.1:{server.server_address[1]}")
    yield server.seen
    server.shutdown()
    server.server_close()


def test_a_run_page_reads_the_run_once_for_all_its_sections(sdk, counted):
    """The page, its live section and its logs section are drawn together and share one read of the run; under a
    loaded API each read costs a round trip of the page load."""
    run = new_live_run(sdk, lines=3)
    send_points(sdk, run, "loss", range(1, 20))
    at = open_console("run", project_id=run.project_id, run_id=run.id)
    assert "运行中" in at.markdown[0].value  # the live section's status badge
    assert counted.count(("GET", f"/projects/{run.project_id}/runs/{run.id}")) == 1, counted

    sdk.report(run.project_id, run.id, status="已完成", progress=1.0, current_step=100)
    counted.clear()
    at = rerun(at)
    assert counted.count(("GET", f"/projects/{run.project_id}/runs/{run.id}")) == 1, counted
    assert "已完成" in at.markdown[0].value, "read afresh at the next draw"


# Prefect progress


PROGRESS_SCRIPT = """
import sys
from ltm import Client
from ltm.flows.training import training_run
client = Client.local()
project = client.create_project(name="进度条", owner="笔记本", task_type="分类")
run = client.create_run(project.id, model="m", dataset="d", name=sys.argv[1],
                        hyperparameters={"num_epochs": 1, "steps_per_epoch": 30, "step_seconds": 0.15})
training_run(run.id)
"""


def test_the_prefect_progress_bar_moves_within_an_epoch(tmp_path, ltm_system):
    """One epoch of ~6 s: updated only per epoch, the bar would jump from 0 to 100; it must show steps in between."""
    name = unique("进度")
    env = {**os.environ, "LTM_HOME": str(tmp_path / "home"), "PREFECT_API_URL": ltm_system.prefect_api_url}
    env.pop("LTM_API_URL", None)
    flow = subprocess.Popen(
        [sys.executable, "-c", PROGRESS_SCRIPT, name], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )

    def progress() -> float | None:
        response = httpx.post(
            f"{ltm_system.prefect_api_url}/artifacts/filter",
            json={"artifacts": {"type": {"any_": ["progress"]}}, "sort": "CREATED_DESC", "limit": 50},
            timeout=10,
        )
        mine = [a["data"] for a in response.json() if a["description"] == f"{name} 训练进度"]
        return mine[0] if mine else None

    seen: list[float | None] = []

    def moved_or_ended() -> bool:
        seen.append(progress())
        return 0 < (seen[-1] or 0) < 100 or flow.poll() is not None

    try:
        wait_until(moved_or_ended, timeout=90, interval=0.2, message="the progress bar to move or the flow to end")
        _, stderr = flow.communicate(timeout=120)
    finally:
        if flow.poll() is None:
            flow.kill()
    assert flow.returncode == 0, stderr.decode()[-3000:]
    assert any(0 < (value or 0) < 100 for value in seen), f"the bar never showed a step inside the epoch: {seen}"
    assert progress() == 100


# In a real browser


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
CHROMIUM_ARGS += ["--disable-sync", "--no-first-run", "--disable-quic"]
SHOTS = ROOT / "test-output" / "screenshots"


@pytest.fixture
def live_console(start_api, tmp_path):
    """A console of its own on an API of its own, as `ltm up` starts them."""
    api = start_api(tmp_path / "home")
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", str(ROOT / "console" / "app.py"), "--server.address"]
    command += ["127.0.0.1", "--server.port", str(port), "--server.headless", "true"]
    command += ["--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer"]
    with open(tmp_path / "console.log", "wb") as log:
        console = subprocess.Popen(command, env={**os.environ, "LTM_API_URL": api.url}, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(f"{url}/_stcore/health"), timeout=60, message="the console to answer")
        with Client(api.url) as client:
            yield client, url
    finally:
        console.terminate()
        console.wait(timeout=30)


def ticks(chart, axis: str = "X") -> list[str]:
    """The tick labels of the drawn chart's X or Y axis."""
    return chart.locator(f'svg g[aria-label^="{axis}-axis"] .role-axis-label text').evaluate_all(
        "texts => texts.map(text => text.textContent)"
    )


def steady_ticks(chart) -> list[str]:
    """The x axis once it stopped moving (two readings a few frames apart agree)."""
    readings = [ticks(chart)]

    def unchanged() -> bool:
        readings.append(ticks(chart))
        return readings[-1] == readings[-2]

    wait_until(unchanged, timeout=15, interval=0.3, message="the x axis to settle")
    return readings[-1]


def test_in_a_browser_logs_follow_and_a_zoomed_chart_stays_zoomed_across_refreshes(live_console):
    from playwright.sync_api import expect, sync_playwright

    sdk, url = live_console
    run = new_live_run(sdk, lines=40)
    send_points(sdk, run, "train_loss", range(100), value=lambda step: 3 / (1 + step / 50))
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1440, "height": 2400}, locale="zh-CN")
        page.on(
            "console",
            lambda message: message.type == "error" and "ERROR" in message.text and errors.append(message.text),
        )
        page.goto(f"{url}/run?project_id={run.project_id}&run_id={run.id}")
        logs = page.get_by_role("tabpanel", name="日志")
        expect(logs.get_by_text("共 40 条日志 · 跟随中")).to_be_visible(timeout=30_000)

        send_lines(sdk, run, [40])
        expect(logs.get_by_text("共 41 条日志 · 跟随中")).to_be_visible(timeout=15_000)  # no reload: it follows

        chart = page.locator('[data-testid="stVegaLiteChart"]').first
        expect(chart.locator("svg")).to_be_visible(timeout=30_000)
        whole = steady_ticks(chart)
        box = chart.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        for _ in range(4):
            page.mouse.wheel(0, -200)
        wait_until(lambda: ticks(chart) != whole, timeout=15, message="the chart to zoom")
        zoomed, heights = steady_ticks(chart), ticks(chart, "Y")
        page.screenshot(path=str(SHOTS / "live-1-zoomed.png"))

        send_points(sdk, run, "train_loss", range(100, 160), value=lambda step: 3 / (1 + step / 50))
        expect(page.get_by_text("train_loss：共 160 个点")).to_be_visible(timeout=15_000)
        wait_until(lambda: ticks(chart, "Y") != heights, timeout=15, message="the lower new points on the y axis")
        assert steady_ticks(chart) == zoomed != whole, "the refresh brought new points and kept the zoom"
        page.screenshot(path=str(SHOTS / "live-2-after-refresh.png"))
        browser.close()
    assert not errors, errors
