"""The real console in headless Chromium (Debian's), driven by Playwright against `ltm up` (GPU pages: own API)."""

import os
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from ltm import Client
from ltm.gpus import parse_declared
from ltm.models import MetricBatch, MetricPoint, RunStatus
from tests.conftest import ROOT, ApiProcess, answers, free_port, wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SHOTS = ROOT / "test-output" / "screenshots"
STEP = re.compile(r"第 (\d+) / \d+ 步")
expect.set_options(timeout=30_000)  # a rerun on two busy cores can take longer than Playwright's 5 s default


@pytest.fixture(scope="module")
def browser():
    assert Path(CHROMIUM).exists(), "Debian's chromium is required: apt-get install chromium fonts-noto-cjk"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def settled(page) -> None:
    """The script run has finished and no widget is still drawn as a loading placeholder."""
    expect(page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]')).to_be_attached()
    expect(page.locator('[data-testid="stSkeleton"], [data-testid="stSkeletonElement"]')).to_have_count(0)


def shot(page, name: str) -> None:
    settled(page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def expect_charts_drawn(page, count: int) -> None:
    charts = page.locator('[data-testid="stVegaLiteChart"]')
    expect(charts).to_have_count(count)
    for index in range(count):
        expect(charts.nth(index).locator("canvas, svg").first).to_be_visible()


def current_step(page) -> int:
    text = page.get_by_text(STEP).first.inner_text()
    return int(STEP.search(text).group(1))


def cancel_through_the_page(page) -> None:
    settled(page)
    page.get_by_role("button", name="取消运行").click()
    expect(page.get_by_text("确认取消运行")).to_be_visible()
    settled(page)  # a click on a button that a rerun is about to replace is lost
    page.get_by_role("button", name="确认取消").click()
    # The flow's log line says 已取消 before the run is; the page is final only once its rerun for the ended run has
    # dropped the cancel button. A form filled before that rerun is drawn afresh and loses what was typed (CI).
    expect(page.get_by_role("button", name="取消运行")).to_have_count(0, timeout=60_000)
    expect(page.get_by_text("已取消").first).to_be_visible()


def release_through_the_page(page, notes: str) -> None:
    """Tag the checkpoint the tag form offers first as 发布, confirm, and see the tag in the history grid."""
    settled(page)
    page.get_by_role("tab", name="检查点标签").click()
    page.get_by_text("发布", exact=True).click()
    page.get_by_label("备注（可选）").fill(notes)
    page.get_by_role("button", name="打标签").click()
    page.get_by_role("button", name="确认发布").click()  # 发布 asks first, naming the release it replaces
    expect(page.get_by_text("打上“发布”标签")).to_be_visible()
    settled(page)
    page.get_by_role("tab", name="检查点标签").click()
    expect(page.get_by_text(notes).first).to_be_attached()  # a cell of the tag history grid


def resume_through_the_page(page, overrides: str = "") -> None:
    """Resume from the checkpoint the resume form offers (the latest) and follow the link to the new run."""
    settled(page)
    page.get_by_role("tab", name="从检查点恢复").click()
    if overrides:
        field = page.get_by_label("覆盖的超参数（JSON 对象，可选，只填写要修改的键）")
        field.fill(overrides)
        field.blur()  # the text area hands its value to the form on blur; a submit racing it once sent none (CI)
        expect(field).to_have_value(overrides)
    page.get_by_role("button", name="从检查点恢复").click()
    settled(page)
    page.get_by_role("link", name=re.compile("查看新运行")).click()


def test_a_user_trains_cancels_resumes_and_releases_through_the_console(ltm_system, page):
    api = Client(ltm_system.api_url)
    page.goto(ltm_system.console_url)
    expect(page.get_by_role("heading", name="项目").first).to_be_visible()
    shot(page, "1-projects-empty")

    page.get_by_label("项目名称 *").fill("浏览器端到端项目")
    page.get_by_label("负责人 *").fill("小王")
    page.get_by_label("任务类型").fill("文本摘要")
    page.get_by_label("基线模型").fill("llama-2-7b")
    page.get_by_label("默认超参数（JSON 对象）").fill('{"num_epochs": 3, "steps_per_epoch": 100, "step_seconds": 0.1}')
    page.get_by_role("button", name="创建项目").click()
    page.get_by_role("link", name="打开项目详情").click()
    expect(page.get_by_role("heading", name=re.compile("浏览器端到端项目"))).to_be_visible()
    shot(page, "2-project")

    settled(page)
    page.get_by_role("tab", name="发起运行").click()
    page.get_by_label("数据集 *").fill("中文科技论文语料")
    page.get_by_role("button", name="发起运行").click()
    page.get_by_role("link", name=re.compile("查看运行")).click()

    expect(page.get_by_text(STEP).first).to_be_visible(timeout=60_000)
    first = wait_until(
        lambda: current_step(page) > 0 and current_step(page),
        timeout=60,
        interval=0.2,
        message="the run page to show training progress",
    )
    wait_until(lambda: current_step(page) > first, timeout=30, interval=0.2, message="progress to move without reload")
    shot(page, "3-run-training")
    # The tag and resume forms must move on to the cancel checkpoint though they were drawn with an older one (CI).
    expect(page.get_by_text("第 100 步检查点").first).to_be_attached(timeout=60_000)

    cancel_through_the_page(page)
    expect(page.get_by_text("取消前的检查点").first).to_be_attached()  # a cell of the artifacts grid
    shot(page, "4-run-cancelled")

    project = next(p for p in api.list_projects(q="浏览器端到端项目"))
    run = api.list_runs(project.id)[0]
    cancelled = api.get_run(project.id, run.id)
    assert cancelled.status == RunStatus.CANCELLED
    checkpoint = next(a for a in cancelled.artifacts if a.name == "取消前的检查点")

    release_through_the_page(page, "验证集表现最好")
    tags = api.get_run(project.id, run.id).artifacts
    assert [t.value.value for a in tags if a.id == checkpoint.id for t in a.tags] == ["发布"]
    shot(page, "5-run-tagged")

    resume_through_the_page(page)
    resumed = wait_until(lambda: [r for r in api.list_runs(project.id) if r.resumed_from], message="the resumed run")[0]
    assert resumed.resumed_from == checkpoint.id and resumed.parent_run_id == run.id
    expect(page.get_by_role("heading", name=f"运行 {resumed.name}")).to_be_visible()
    expect(page).to_have_url(re.compile(f"run_id={resumed.id}"))  # the address a reload or a colleague opens
    expect(page.get_by_text(checkpoint.id).first).to_be_visible()
    wait_until(
        lambda: page.get_by_text(STEP).count() and current_step(page) > checkpoint.step,
        timeout=60,
        interval=0.2,
        message="the resumed run to train past its checkpoint on the page",
    )
    shot(page, "6-run-resumed")
    expect(page.get_by_text("已完成").first).to_be_visible(timeout=120_000)
    assert api.get_run(project.id, resumed.id).status == RunStatus.COMPLETED

    page.goto(f"{ltm_system.console_url}/compare?project_id={project.id}&runs={run.id},{resumed.id}")
    expect(page.get_by_role("heading", name="超参数差异")).to_be_visible()
    expect(page.get_by_role("heading", name="指标曲线")).to_be_visible()
    expect_charts_drawn(page, len({*cancelled.metrics, *api.get_run(project.id, resumed.id).metrics}))
    shot(page, "7-compare")


def metric_value(page, name: str) -> float:
    card = page.locator('[data-testid="stMetric"]').filter(has=page.get_by_text(name, exact=True))
    return float(card.locator('[data-testid="stMetricValue"]').inner_text())


@pytest.mark.timeout(600)
def test_a_user_trains_a_real_model_from_the_console_and_releases_it(ltm_system, page):
    """Issue 7's journey in the browser: tiny-lm chosen in the run form, loss falling on the page, cancel, resume,
    release, then the released checkpoint loaded in Python as the README shows."""
    pytest.importorskip("torch", reason="需要安装 ltm[torch]（CI 会安装）")
    from ltm.trainers.tiny_lm import generate, load_checkpoint

    api = Client(ltm_system.api_url)
    project = api.create_project(
        name="控制台真实模型",
        owner="小王",
        base_model="tiny-lm",
        default_hyperparameters={"num_epochs": 1, "steps_per_epoch": 3000, "d_model": 64},
    )
    page.goto(f"{ltm_system.console_url}/project?project_id={project.id}")
    settled(page)
    page.get_by_role("tab", name="发起运行").click()
    page.get_by_label("训练器", exact=True).click()
    page.get_by_role("option", name=re.compile("^tiny-lm")).click()
    page.get_by_label("数据集 *").fill("sample")
    page.get_by_role("button", name="发起运行").click()
    page.get_by_role("link", name=re.compile("查看运行")).click()

    expect(page.get_by_text("train_loss", exact=True).first).to_be_visible(timeout=90_000)
    early_step, early_loss = current_step(page), metric_value(page, "train_loss")
    wait_until(
        lambda: current_step(page) >= early_step + 40,
        timeout=240,
        interval=0.5,
        message="40 more real training steps on the page",
    )
    later_loss = metric_value(page, "train_loss")
    assert later_loss < early_loss - 0.5, (early_step, early_loss, later_loss)
    [run] = api.list_runs(project.id)
    assert run.trainer == "tiny-lm"

    cancel_through_the_page(page)
    checkpoint = next(a for a in api.get_run(project.id, run.id).artifacts if a.name == "取消前的检查点")

    resume_through_the_page(page, f'{{"steps_per_epoch": {checkpoint.step + 20}}}')
    resumed = next(r for r in api.list_runs(project.id) if r.resumed_from == checkpoint.id)
    assert resumed.hyperparameters["steps_per_epoch"] == checkpoint.step + 20, resumed.hyperparameters
    expect(page.get_by_role("heading", name=f"运行 {resumed.name}")).to_be_visible()
    expect(page).to_have_url(re.compile(f"run_id={resumed.id}"))
    expect(page.get_by_text(re.compile("^已完成$")).first).to_be_visible(timeout=180_000)
    resumed = api.get_run(project.id, resumed.id)
    assert (resumed.status, resumed.current_step) == (RunStatus.COMPLETED, checkpoint.step + 20)

    release_through_the_page(page, "真实模型，损失最低")
    shot(page, "8-real-model-released")

    released = next(
        a for a in api.list_artifacts(project.id, resumed.id) if any(t.value.value == "发布" for t in a.tags)
    )
    assert released.step == checkpoint.step + 20
    text = generate(load_checkpoint(released.path), "今天", max_new_tokens=20, temperature=0)
    assert text.startswith("今天") and len(text) > 2


@pytest.fixture
def gpu_console(start_api, tmp_path):
    """A console of its own on an API of its own (runs are not launched), so registering GPUs there cannot make the
    `ltm up` system's runs wait."""
    api: ApiProcess = start_api(tmp_path / "home", LTM_HOST_OFFLINE_SECONDS="600")
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", str(ROOT / "console" / "app.py"), "--server.address"]
    command += ["127.0.0.1", "--server.port", str(port), "--server.headless", "true"]
    command += ["--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer"]
    with open(tmp_path / "console.log", "wb") as log:
        console = subprocess.Popen(command, env={**os.environ, "LTM_API_URL": api.url}, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(f"{url}/_stcore/health"), timeout=60, message="the console to answer")
        yield api, url
    finally:
        console.terminate()
        console.wait(timeout=30)


def test_the_resources_page_shows_hosts_and_the_queue(gpu_console, page):
    api_process, console_url = gpu_console
    api = Client(api_process.url)
    api.register_host("gpu-browser", parse_declared("A100:1", "gpu-browser"))
    project = api.create_project(name="浏览器 GPU 项目", owner="平台组")
    held = api.create_run(project.id, "llama-2-7b", "语料", name="占卡的运行", resources={"gpu_type": "A100"})
    api.report(project.id, held.id, status="运行中")
    waiting = api.create_run(project.id, "llama-2-7b", "语料", name="排队的运行", resources={"gpu_type": "A100"})
    assert waiting.queue_position == 1

    page.goto(console_url)
    settled(page)
    page.get_by_role("link", name="资源").click()
    expect(page.get_by_role("heading", name="资源")).to_be_visible()
    expect(page.get_by_role("heading", name=re.compile("^gpu-browser"))).to_be_visible()
    expect(page.get_by_text("在线", exact=True)).to_be_visible()
    expect(page.get_by_text("占卡的运行").first).to_be_attached()  # a cell of the host's devices grid
    expect(page.get_by_text("排队的运行").first).to_be_attached()  # a cell of the queue grid
    expect(page.get_by_text(waiting.queue_reason).first).to_be_attached()
    shot(page, "9-resources")

    page.goto(f"{console_url}/run?project_id={project.id}&run_id={waiting.id}")
    expect(page.get_by_text("排队等待 GPU：第 1 位")).to_be_visible()
    shot(page, "10-run-waiting-for-gpu")

    api.send_metrics(project.id, held.id, MetricBatch(batch_id="gpu", points=device_points(held.devices)))
    page.goto(f"{console_url}/run?project_id={project.id}&run_id={held.id}")
    expect(page.get_by_role("heading", name="GPU 设备")).to_be_visible()
    expect(page.get_by_text(f"GPU 0：{held.devices[0]}")).to_be_visible()
    expect_charts_drawn(page, 2)  # utilisation and memory of its one device
    shot(page, "11-run-devices")


def device_points(devices: list[str]) -> list[MetricPoint]:
    now = datetime.now(timezone.utc)
    return [
        MetricPoint(name=f"gpu/{position}/{kind}", step=step, value=value, timestamp=now)
        for step in range(20)
        for position in range(len(devices))
        for kind, value in (("utilization", 0.6 + step / 100), ("memory_mb", 50000.0 + 100 * step))
    ]
