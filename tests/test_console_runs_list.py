"""The project page's runs list at scale, driven by AppTest against the real API: newest first, the name as the
link, — for missing values, filters, sort by any metric, pages served by the API, deletion with a dry-run
confirmation, the view in the address (bad values fall back with a note), tabs that a link or a save keeps open,
the name and owner in the edit form, the run page's project and 404 pages. The checkpoint-tag filter is also proven
over HTTP, and one browser test sees the grid's links and the refresh of an active run."""

import os
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote

import pytest
from playwright.sync_api import expect, sync_playwright
from streamlit.testing.v1 import AppTest

from ltm import Client
from ltm.models import MetricBatch, MetricPoint
from tests.conftest import ROOT, answers, free_port, wait_until
from tests.console_helpers import APP, labelled, open_console, open_tab, texts
from tests.helpers import unique

pytestmark = pytest.mark.usefixtures("fresh_cache")


def runs_grid(at: AppTest):
    [grid] = [d.value for d in at.dataframe if "进度" in d.value.columns]
    return grid


def shown_names(at: AppTest) -> list[str]:
    return [unquote(link.partition("#")[2]) for link in runs_grid(at)["名称"]]


def param(at: AppTest, key: str) -> list[str]:
    value = at.query_params.get(key, [])
    return [value] if isinstance(value, str) else list(value)


def send_losses(client, project_id: str, run_id: str, losses: list[float]) -> None:
    now = datetime.now(timezone.utc)
    points = [MetricPoint(name="eval_loss", step=step, value=v, timestamp=now) for step, v in enumerate(losses)]
    client.send_metrics(project_id, run_id, MetricBatch(batch_id=f"{run_id}-loss", points=points))


@pytest.fixture(scope="module")
def many_runs(shared_api):
    """25 runs `运行-00` … `运行-24` (created in that order); 运行-03 failed, 运行-01/02/04 have eval_loss; the
    tests that use them only read."""
    with Client(shared_api.url) as client:
        project = client.create_project(unique("大量运行"), "小李")
        runs = [
            client.create_run(project.id, "m", "d", name=f"运行-{index:02d}", hyperparameters={"seed": index % 3})
            for index in range(25)
        ]
        client.report(project.id, runs[3].id, status="失败")
        for run, losses in zip((runs[1], runs[2], runs[4]), ([3.0, 0.5, 2.0], [1.0, 1.5], [4.0, 0.8])):
            send_losses(client, project.id, run.id, losses)
        for run in runs:
            if run is not runs[3]:
                client.cancel_run(project.id, run.id)  # settled: the page does not refresh itself
        yield client, project, runs


def test_runs_tab_lists_newest_first_one_page_at_a_time_with_the_name_as_the_link(console_env, many_runs):
    client, project, runs = many_runs
    at = open_console("project", project_id=project.id, tab="运行", size="20")
    grid = runs_grid(at)
    assert list(grid.columns[:3]) == ["名称", "状态", "进度"]
    assert shown_names(at) == [f"运行-{index:02d}" for index in range(24, 4, -1)], "newest first, 20 a page"
    assert grid["名称"][0].startswith(f"run?project_id={project.id}&run_id={runs[24].id}#")
    assert any("共 25 个运行 · 第 1 / 2 页" in caption for caption in texts(at.caption))
    assert [d.proto.placeholder for d in at.dataframe if "进度" in d.value.columns] == ["—"]

    labelled(at.number_input, "页码").set_value(2).run()
    assert shown_names(at) == [f"运行-{index:02d}" for index in range(4, -1, -1)]
    assert param(at, "page") == ["2"]
    grid = runs_grid(at)
    failed_row = grid.iloc[1]
    assert failed_row["状态"] == "失败" and failed_row["eval_loss"] != failed_row["eval_loss"], "missing: NaN, shown —"


def test_filters_and_metric_sort_are_done_by_the_api_and_kept_in_the_address(console_env, many_runs):
    client, project, runs = many_runs
    at = open_console("project", project_id=project.id, tab="运行")
    labelled(at.multiselect, "状态").set_value(["失败"]).run()
    assert shown_names(at) == ["运行-03"]
    assert param(at, "status") == ["失败"]
    labelled(at.multiselect, "状态").set_value([]).run()

    labelled(at.text_input, "名称包含").set_value("运行-1").run()
    assert shown_names(at) == [f"运行-{index}" for index in range(19, 9, -1)]
    assert param(at, "q") == ["运行-1"]
    labelled(at.text_input, "超参数（名称=值）").set_value("seed=1").run()
    assert shown_names(at) == ["运行-19", "运行-16", "运行-13", "运行-10"]
    labelled(at.text_input, "超参数（名称=值）").set_value("seed").run()
    assert any("应写成 名称=值" in error for error in texts(at.error))
    labelled(at.text_input, "超参数（名称=值）").set_value("").run()
    labelled(at.text_input, "名称包含").set_value("").run()

    labelled(at.selectbox, "排序依据").select("metric:eval_loss").run()
    labelled(at.selectbox, "指标取值").select("min").run()
    labelled(at.selectbox, "顺序").select(False).run()
    assert shown_names(at)[:3] == ["运行-01", "运行-04", "运行-02"], "min eval_loss 0.5, 0.8, 1.0; the rest after"
    assert param(at, "sort") == ["metric:eval_loss:min"]
    assert list(runs_grid(at).columns[3:4]) == ["eval_loss"]


def test_the_view_survives_a_visit_to_a_run_page(console_env, many_runs):
    client, project, runs = many_runs
    at = open_console("project", project_id=project.id, tab="运行")
    labelled(at.multiselect, "状态").set_value(["失败"]).run()
    at.switch_page("views/run.py")
    at.query_params["run_id"] = runs[3].id
    at.run()
    assert at.title[0].value == "运行 运行-03"
    at.switch_page("views/project.py")
    at.query_params.clear()
    at.query_params["project_id"] = project.id
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert shown_names(at) == ["运行-03"] and param(at, "status") == ["失败"], "the view and its address come back"


def test_a_copied_address_opens_the_same_view_and_bad_values_fall_back_with_a_note(console_env, many_runs):
    client, project, runs = many_runs
    at = open_console(
        "project", project_id=project.id, tab="运行", q="运行-2", sort="name", size="20", page="1", status=["已取消"]
    )
    assert shown_names(at) == ["运行-20", "运行-21", "运行-22", "运行-23", "运行-24"]
    assert labelled(at.selectbox, "排序依据").value == "name" and labelled(at.selectbox, "顺序").value is False
    assert at.session_state["tab"] == "运行"

    at = open_console(
        "project",
        project_id=project.id,
        tab="乱写",
        sort="bogus",
        size="7",
        page="abc",
        status=["飞行中"],
        tag="金标",
        hp="seed",
    )
    notes = " ".join(texts(at.info))
    for expected in ("tab=乱写", "sort=bogus", "size=7", "page=abc", "status=飞行中", "tag=金标", "hp=seed"):
        assert expected in notes, notes
    assert at.session_state["tab"] == "概览"
    assert shown_names(open_tab(at, "运行"))[:2] == ["运行-24", "运行-23"], "the default view"
    assert not at.error

    at = open_console("project", project_id=project.id, tab="运行", page="9")
    assert "地址中的页码 9 超出范围（共 1 页），已显示第 1 页" in texts(at.info)
    assert shown_names(at)[0] == "运行-24"


def test_selected_runs_are_compared_or_deleted_after_a_dry_run_confirmation(console_env, shared_client):
    client = shared_client
    project = client.create_project(unique("删除运行"), "小李")
    runs = [client.create_run(project.id, "m", "d", name=f"运行-{index:02d}") for index in range(3)]
    for run in runs:
        client.cancel_run(project.id, run.id)
    at = open_console("project", project_id=project.id, tab="运行")
    labelled(at.multiselect, "选择本页的运行（对比或删除）").set_value([runs[2].id, runs[1].id]).run()
    assert f"project_id={project.id}&runs={runs[2].id}%2C{runs[1].id}" in [
        link.proto.query_string for link in at.page_link
    ]
    at.button(key="runs_delete").click().run()
    preview = [d.value for d in at.dataframe if "日志行" in d.value.columns][0]
    assert sorted(preview["名称"]) == ["运行-01", "运行-02"]
    assert client.search_runs(project.id).total == 3, "a dry run deletes nothing"

    at.button(key="runs_delete_confirm").click().run()
    assert [run.name for run in client.search_runs(project.id).items] == ["运行-00"]
    assert any("已删除 2 个运行" in message for message in texts(at.success))
    assert shown_names(at) == ["运行-00"]
    assert any("运行 1 个" in caption for caption in texts(at.caption)), "the header counts again"
    assert labelled(at.multiselect, "选择本页的运行（对比或删除）").value == []


def test_an_active_run_refuses_deletion_and_the_failure_is_shown(console_env, shared_client):
    project = shared_client.create_project(unique("进行中"), "小李")
    run = shared_client.create_run(project.id, "m", "d", name="还在跑")
    shared_client.report(project.id, run.id, status="运行中")
    at = open_console("project", project_id=project.id, tab="运行")
    assert any("自动刷新" in caption for caption in texts(at.caption))
    labelled(at.multiselect, "选择本页的运行（对比或删除）").set_value([run.id]).run()
    at.button(key="runs_delete").click().run()
    assert any(f"不能删除 {run.id}" in error for error in texts(at.error))
    assert at.button(key="runs_delete_confirm").disabled
    assert shared_client.search_runs(project.id).total == 1


def test_edit_form_renames_and_hands_over_and_the_page_stays_on_the_edit_tab(console_env, shared_client):
    project = shared_client.create_project(unique("改名"), "小李")
    at = open_console("project", project_id=project.id, tab="编辑")
    new_name = unique("新名字")
    labelled(at.text_input, "项目名称").set_value(new_name)
    labelled(at.text_input, "负责人").set_value("小张")
    at.button(key="edit_project_submit").click().run()
    updated = shared_client.get_project(project.id)
    assert (updated.name, updated.owner, updated.version) == (new_name, "小张", 2)
    assert at.title[0].value == new_name
    assert at.session_state["tab"] == "编辑"
    assert "已保存，当前为版本 2" in texts(at.success)

    labelled(at.text_input, "项目名称").set_value("  ")
    at.button(key="edit_project_submit").click().run()
    assert "请填写项目名称" in texts(at.error)
    taken = shared_client.create_project(unique("已占用"), "小李")
    labelled(at.text_input, "项目名称").set_value(taken.name)
    at.button(key="edit_project_submit").click().run()
    assert any("已存在" in error for error in texts(at.error))
    assert labelled(at.text_input, "项目名称").value == taken.name, "the typed value is kept"
    assert shared_client.get_project(project.id).version == 2


def test_run_page_names_its_project_and_unknown_ids_get_a_way_back(console_env, shared_client):
    project = shared_client.create_project(unique("归属"), "小李")
    run = shared_client.create_run(project.id, "m", "d")
    at = open_console("run", project_id=project.id, run_id=run.id)
    assert f"项目：{project.name}" in [link.label for link in at.page_link]

    at = open_console("project", project_id="proj_missing")
    assert at.title[0].value == "未找到"
    assert texts(at.error) == ["未找到（404）：项目 proj_missing 不存在"]
    assert any("找不到项目 proj_missing" in caption for caption in texts(at.caption))
    assert [link.label for link in at.page_link] == ["返回项目列表"]

    at = open_console("run", project_id=project.id, run_id="run_missing")
    assert texts(at.error) == ["未找到（404）：运行 run_missing 不存在"]
    assert [link.label for link in at.page_link] == ["返回所属项目", "返回项目列表"]


def test_runs_filter_by_the_tag_of_their_checkpoints(shared_client, shared_http):
    client = shared_client
    project = client.create_project(unique("标签筛选"), "小李")
    released, archived, untagged = (client.create_run(project.id, "m", "d", name=n) for n in ("发布的", "归档的", "无"))
    for run, tags in ((released, ["发布"]), (archived, ["候选", "归档"]), (untagged, [])):
        checkpoint = client.register_artifact(
            project.id, run.id, type="checkpoint", name="c", step=1, path=f"s3://artifacts/{project.id}/{run.id}/c.pt"
        )
        for tag in tags:
            client.tag_artifact(project.id, run.id, checkpoint.id, tag)
    assert [r.name for r in client.search_runs(project.id, tag="发布").items] == ["发布的"]
    assert [r.name for r in client.search_runs(project.id, tag="候选").items] == ["归档的"]
    page = client.search_runs(project.id, tag="归档", status=["排队中"])
    assert ([r.name for r in page.items], page.total) == (["归档的"], 1)
    refused = shared_http.get(f"/projects/{project.id}/runs", params={"tag": "金标"})
    assert refused.status_code == 422 and "tag" in refused.text


@pytest.fixture
def own_console(shared_api, tmp_path):
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", APP, "--server.address", "127.0.0.1"]
    command += ["--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    with open(tmp_path / "console.log", "wb") as log:
        console = subprocess.Popen(command, env={**os.environ, "LTM_API_URL": shared_api.url}, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(f"{url}/_stcore/health"), timeout=60, message="the console to answer")
        yield url
    finally:
        console.terminate()
        console.wait(timeout=30)


SHOTS = Path(os.environ.get("LTM_SHOTS", ROOT / "test-output" / "screenshots"))


def test_browser_shows_names_as_links_and_refreshes_an_active_run(own_console, shared_client):
    client = shared_client
    project = client.create_project(unique("浏览器运行列表"), "小李")
    done = client.create_run(project.id, "m", "d", name="已结束 #1 & 对照")
    client.report(project.id, done.id, status="失败")
    waiting = client.create_run(project.id, "m", "d", name="等待中的运行")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu", "--no-first-run"]
        )
        page = browser.new_page(viewport={"width": 1440, "height": 1000}, locale="zh-CN")
        page.set_default_timeout(30_000)
        page.goto(f"{own_console}/project?project_id={project.id}&tab=运行")
        first_row = page.locator('[data-testid="stDataFrame"]').first.locator('[role="gridcell"][aria-colindex="1"]')
        expect(first_row.first).to_have_text(
            re.compile(f"run_id={waiting.id}#"), timeout=30_000
        )  # the grid draws the name after #
        status = page.locator('[data-testid="glide-cell-1-0"]')
        expect(status).to_have_text("排队中")
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "runs-list-project.png"), full_page=True)

        client.report(project.id, waiting.id, status="运行中", progress=0.5)
        expect(status).to_have_text("运行中", timeout=20_000)  # no reload: the list refreshes itself
        assert "tab=%E8%BF%90%E8%A1%8C" in page.url
        client.report(project.id, waiting.id, status="已完成", progress=1.0)
        expect(status).to_have_text("已完成", timeout=20_000)
        expect(page.get_by_text("自动刷新")).to_have_count(0)  # nothing active: the refresh stops
        browser.close()
