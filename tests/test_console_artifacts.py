"""The console's artifact views through AppTest against the real API: the newest checkpoint is the default of the
tag and resume forms (also once a cancel checkpoint arrives), 发布 is confirmed naming the release it replaces, tags
show in full with who set them, each artifact has a download link, and the releases and audit sections."""

import uuid
from pathlib import Path

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from tests.console_helpers import APP, texts
from tests.helpers import unique

pytestmark = pytest.mark.usefixtures("console_env")

CONSOLE = Path(__file__).resolve().parent.parent / "console"


def run_page(project_id: str, run_id: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.switch_page("views/run.py")
    at.query_params.update(project_id=project_id, run_id=run_id)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


DRIVER = """
import streamlit as st
from ltm import Client
from ltm.console.client import get_client
from ltm.console.{module} import {function}


def section():
    {function}(Client.get_project(get_client(), st.query_params["project_id"]))


st.navigation([st.Page(section, default=True), st.Page("views/run.py", url_path="run")]).run()
"""


def section(tmp_path: Path, module: str, project_id: str) -> AppTest:
    """A project page section on its own, in a navigation that also knows the run page it links to."""
    driver = tmp_path / f"{module}_driver.py"
    driver.write_text(DRIVER.format(module=module, function=f"{module}_section"))
    if not (tmp_path / "views").exists():
        (tmp_path / "views").symlink_to(CONSOLE / "views")
    at = AppTest.from_file(str(driver), default_timeout=30)
    at.query_params["project_id"] = project_id
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def table_with(at: AppTest, column: str):
    for frame in at.dataframe:
        if column in frame.value.columns:
            return frame.value
    raise AssertionError(f"no table with a column {column!r}")


def checkpoint(client, run, step: int, name: str | None = None):
    return client.register_artifact(
        run.project_id,
        run.id,
        type="checkpoint",
        name=name or f"第 {step} 步检查点",
        path=f"s3://artifacts/{run.project_id}/{run.id}/step_{step}-{uuid.uuid4().hex[:6]}.ckpt",
        step=step,
        size_bytes=1024,
    )


@pytest.fixture
def run(shared_client):
    project = shared_client.create_project(unique(), unique("负责人"))
    return shared_client.create_run(project.id, "qwen-7b", "语料", name="基线")


def test_both_forms_default_to_the_newest_checkpoint_and_follow_a_cancel_checkpoint(shared_client, run):
    checkpoint(shared_client, run, 50)
    at = run_page(run.project_id, run.id)
    assert at.selectbox(key="resume_artifact").value == at.selectbox(key="tag_artifact").value

    shared_client.report(run.project_id, run.id, status="运行中", current_step=80)
    cancel = checkpoint(shared_client, run, 80, name="取消时检查点")
    shared_client.report(run.project_id, run.id, status="已取消")
    at.run()

    assert at.selectbox(key="resume_artifact").value == cancel.id
    assert at.selectbox(key="tag_artifact").value == cancel.id
    assert at.selectbox(key="resume_artifact").options[0].startswith("取消时检查点（第 80 步")


def test_among_equal_steps_the_latest_registered_is_the_default(shared_client, run):
    checkpoint(shared_client, run, 100, name="较早")
    later = checkpoint(shared_client, run, 100, name="较晚")
    checkpoint(shared_client, run, 40)

    at = run_page(run.project_id, run.id)

    assert at.selectbox(key="tag_artifact").value == later.id
    assert at.selectbox(key="resume_artifact").value == later.id


def test_release_asks_for_confirmation_naming_the_release_it_replaces(shared_client, run):
    current = checkpoint(shared_client, run, 100)
    shared_client.tag_artifact(run.project_id, run.id, current.id, "发布")
    newer = checkpoint(shared_client, run, 200)
    at = run_page(run.project_id, run.id)

    at.radio(key="tag_value").set_value("发布")
    at.text_input(key="tag_notes").set_value("BLEU 33")
    at.button(key="tag_submit").click().run()

    assert any("取代当前发布 运行 基线 的 第 100 步检查点（第 100 步）" in w for w in texts(at.warning))
    assert [t.value.value for t in shared_client.list_artifacts(run.project_id, run.id)[1].tags] == []

    at.button(key="release_confirm").click().run()

    artifacts = {a.id: a for a in shared_client.list_artifacts(run.project_id, run.id)}
    assert [(t.value.value, t.notes) for t in artifacts[newer.id].tags] == [("发布", "BLEU 33")]
    assert artifacts[current.id].tags[-1].value.value == "归档"
    assert "已为 第 200 步检查点 打上“发布”标签" in texts(at.success)


def test_declining_the_release_writes_nothing(shared_client, run):
    only = checkpoint(shared_client, run, 100)
    at = run_page(run.project_id, run.id)

    at.radio(key="tag_value").set_value("发布")
    at.button(key="tag_submit").click().run()
    assert any("项目目前没有发布的检查点" in w for w in texts(at.warning))
    at.button(key="release_back").click().run()

    assert shared_client.list_artifacts(run.project_id, run.id)[0].tags == []
    assert at.selectbox(key="tag_artifact").value == only.id


def test_a_candidate_is_tagged_without_confirmation(shared_client, run):
    only = checkpoint(shared_client, run, 100)
    at = run_page(run.project_id, run.id)

    at.text_input(key="tag_notes").set_value("复核中")
    at.button(key="tag_submit").click().run()

    assert [(t.value.value, t.notes) for t in shared_client.list_artifacts(run.project_id, run.id)[0].tags] == [
        ("候选", "复核中")
    ]
    assert only.name in texts(at.success)[0]


def test_tags_show_in_full_with_who_and_each_artifact_links_to_its_download(shared_client, shared_api, run):
    ckpt = checkpoint(shared_client, run, 300)
    shared_client.tag_artifact(run.project_id, run.id, ckpt.id, "候选", notes="待复核")
    shared_client.tag_artifact(run.project_id, run.id, ckpt.id, "发布", notes="通过复核，BLEU 32.5，部署到线上")

    at = run_page(run.project_id, run.id)

    table = table_with(at, "标签历史")
    row = table[table["名称"] == "第 300 步检查点"].iloc[0]
    assert (row["当前标签"], row["标签历史"]) == ("发布", "候选 → 发布")
    assert row["下载"].startswith(f"{shared_api.url}/projects/{run.project_id}/runs/{run.id}/artifacts/{ckpt.id}")
    assert "grant=" in row["下载"]
    history = table_with(at, "操作人")
    assert history[["标签", "操作人", "备注"]].values.tolist() == [
        ["发布", "本地用户", "通过复核，BLEU 32.5，部署到线上"],
        ["候选", "本地用户", "待复核"],
    ]
    followed = httpx.get(row["下载"])
    assert followed.status_code == 409 and "s3fs" in followed.json()["detail"]  # s3 has no backend in this API


def _artifacts(project_id: str, run_id: str) -> None:
    from ltm import Client
    from ltm.console import run_actions
    from ltm.console.client import get_client

    run_actions.artifacts_section(Client.get_run(get_client(), project_id, run_id))


def test_the_artifacts_section_lists_every_artifact_with_its_link(shared_client, run):
    checkpoint(shared_client, run, 10)
    shared_client.register_artifact(
        run.project_id, run.id, type="config", name="训练配置", path=f"s3://artifacts/{run.project_id}/{run.id}/c.json"
    )

    at = AppTest.from_function(_artifacts, args=(run.project_id, run.id), default_timeout=30).run()

    assert not at.exception, [e.message for e in at.exception]
    table = table_with(at, "下载")
    assert sorted(table["类型"]) == ["检查点", "配置文件"]
    assert all("/download?grant=" in url for url in table["下载"])


def test_the_releases_section_shows_the_current_release_and_the_history(shared_client, run, tmp_path):
    first = checkpoint(shared_client, run, 100)
    second = checkpoint(shared_client, run, 200)
    empty = section(tmp_path, "releases", run.project_id)
    assert any("项目目前没有当前发布" in t for t in texts(empty.info))
    shared_client.tag_artifact(run.project_id, run.id, first.id, "发布", notes="第一版")
    shared_client.tag_artifact(run.project_id, run.id, second.id, "发布", notes="第二版")

    at = section(tmp_path, "releases", run.project_id)

    assert "**当前发布：第 200 步检查点**（运行 基线，第 200 步）" in texts(at.markdown)
    history = table_with(at, "现在的标签")
    assert history[["序号", "状态", "运行", "检查点", "步数", "申请人", "备注", "现在的标签"]].values.tolist() == [
        ["#2", "生效", "基线", "第 200 步检查点", "200", "本地用户", "第二版", "发布"],
        ["#1", "已被取代", "基线", "第 100 步检查点", "100", "本地用户", "第一版", "归档"],
    ]
    assert f"run_id={run.id}" in at.page_link[0].proto.query_string


def test_the_audit_section_names_runs_and_checkpoints_and_shows_prefect_cancels(shared_client, run, tmp_path):
    ckpt = checkpoint(shared_client, run, 100)
    shared_client.tag_artifact(run.project_id, run.id, ckpt.id, "候选")
    shared_client.update_project(run.project_id, description="改过的描述")
    shared_client.report(run.project_id, run.id, status="运行中", flow_run_id=str(uuid.uuid4()))
    shared_client.report(run.project_id, run.id, status="已取消")

    at = section(tmp_path, "audit", run.project_id)

    trail = table_with(at, "操作者")
    rows = {row["操作"]: row for _, row in trail.iterrows()}
    assert (rows["打标签"]["运行"], rows["打标签"]["对象"]) == ("基线", "第 100 步检查点")
    assert (rows["取消运行"]["操作者"], rows["取消运行"]["运行"]) == ("Prefect", "基线")
    assert rows["修改项目"]["详情"].endswith("描述")
    assert not trail.isin([run.id, ckpt.id]).any().any()

    at.multiselect(key="audit_actions").select("打标签").run()
    assert list(table_with(at, "操作者")["操作"]) == ["打标签"]
