"""The console's 发布 tab and the run page's trust marks, through AppTest against a real API with authentication on and
real checkpoint files: the current release with its frozen copy, download and manifest (also once its run is
deleted); a request made on the run page of a project that asks for a second person, approved or rejected by
another member and never offered to its requester for approval;
rollback after a confirmation; withdrawal offered to admins only; the approval setting; a corrupted checkpoint marked
已损坏 and reported by 校验; the resume-fidelity badge on a resumed run."""

import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ltm import Client
from ltm.console.client import TOKEN_KEY
from ltm.console.ui import fmt_size
from ltm.models import MetricBatch, MetricPoint
from tests.conftest import ApiProcess
from tests.console_helpers import APP, texts
from tests.helpers import cli_token, stored_checkpoint, unique

PEOPLE = (("管理员", "admin"), ("小李", "member"), ("小张", "member"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """An API with authentication on and a local artifact root it reads, so releases get real frozen copies."""
    home = tmp_path_factory.mktemp("console-releases") / "home"
    root = home.parent / "artifacts"
    tokens = {who: cli_token(home, who, role) for who, role in PEOPLE}
    api = ApiProcess(home, LTM_AUTH="true", LTM_ARTIFACT_ROOT=str(root)).start()
    clients = {who: Client(api.url, token=token) for who, token in tokens.items()}
    yield api, root, tokens, clients
    for client in clients.values():
        client.close()
    api.stop()


@pytest.fixture
def team(server, monkeypatch, fresh_cache):
    """A project owned by 小李 with 小张 as a member, the console pointed at the API."""
    api, root, tokens, clients = server
    monkeypatch.setenv("LTM_API_URL", api.url)
    monkeypatch.delenv("LTM_TOKEN", raising=False)
    project = clients["小李"].create_project(unique("发布"), task_type="文本摘要")
    clients["小李"].set_members(project.id, ["小张"])
    return root, tokens, clients, project


def finished_run(clients, root, project, name: str, steps=(200,), weights: bytes = b"\x01" * 4096):
    """A finished run of 小李's with one real checkpoint per step, registered as its flow would (by an admin)."""
    admin = clients["管理员"]
    run = clients["小李"].create_run(project.id, "qwen-7b", "语料", name=name)
    checkpoints = []
    for step in steps:
        files = {"state.json": b'{"step": %d}' % step, "weights.bin": weights}
        checkpoints.append(stored_checkpoint(admin, root, project.id, run.id, step, files))
    admin.report(project.id, run.id, status="运行中")
    admin.report(project.id, run.id, status="已完成")
    return run, checkpoints


def console(token: str, view: str, **params: str) -> AppTest:
    """A console session signed in with `token`, on `views/<view>.py` with these query parameters."""
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state[TOKEN_KEY] = token
    at.run()
    at.switch_page(f"views/{view}.py")
    at.query_params.update(params)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def releases_tab(token: str, project_id: str) -> AppTest:
    return console(token, "project", project_id=project_id, tab="发布")


def rerun(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def table_with(at: AppTest, column: str):
    for frame in at.dataframe:
        if column in frame.value.columns:
            return frame.value
    raise AssertionError(f"no table with a column {column!r}")


def keys(widgets) -> set[str]:
    return {w.key for w in widgets}


def test_the_current_release_shows_who_its_frozen_copy_a_download_and_the_manifest(team, tmp_path):
    root, tokens, clients, project = team
    li = clients["小李"]
    run, (checkpoint,) = finished_run(clients, root, project, "基线")
    release = li.create_release(project.id, checkpoint.id, notes="第一版")

    at = releases_tab(tokens["小李"], project.id)

    assert "**当前发布：第 200 步检查点**（运行 基线，第 200 步）" in texts(at.markdown)
    assert ":green-badge[生效]" in texts(at.markdown)
    assert any(c.startswith("#1 · 发布由 小李 于 ") and "申请：第一版 · 无需第二人批准" in c for c in texts(at.caption))
    assert any(s.startswith("已冻结：2 个文件复制到发布目录") for s in texts(at.success))
    assert f"run_id={run.id}" in " ".join(link.proto.query_string for link in at.page_link)

    at.button(key=f"prepare_{release.id}").click()
    rerun(at)
    (download,) = at.get("download_button")
    expected = li.download_release(project.id, release.id, tmp_path)
    assert download.label == f"保存 release-1-{expected.name}（{fmt_size(expected.stat().st_size)}）"
    assert expected.name.endswith(".tar")

    at.session_state[f"manifest_{release.id}"] = True  # the manifest expander, opened
    rerun(at)
    assert any(m.startswith("**检查点 第 200 步检查点**") for m in texts(at.markdown))
    digests = table_with(at, "SHA-256")
    assert dict(zip(digests["文件"], digests["SHA-256"])) == checkpoint.checksums


def test_once_the_run_is_deleted_the_release_shows_the_manifest_recorded_when_it_was_made(team):
    root, tokens, clients, project = team
    li = clients["小李"]
    run, (checkpoint,) = finished_run(clients, root, project, "基线")
    release = li.create_release(project.id, checkpoint.id)
    li.delete_run(project.id, run.id, dry_run=False)

    at = releases_tab(tokens["小李"], project.id)
    at.session_state[f"manifest_{release.id}"] = True
    rerun(at)

    assert "运行 基线 已删除；冻结副本和发布时记录的清单仍在。" in texts(at.caption)
    assert "运行已删除：以下是发布时记录的清单。" in texts(at.caption)
    assert any(m.startswith(f"**谱系**：**基线（{run.id}）**") for m in texts(at.markdown))
    digests = table_with(at, "SHA-256")
    assert dict(zip(digests["文件"], digests["SHA-256"])) == checkpoint.checksums
    assert f"prepare_{release.id}" in keys(at.button)  # the frozen copy is still there to download


def test_a_pending_request_is_approved_by_another_member_and_never_offered_to_its_requester(team):
    root, tokens, clients, project = team
    li, zhang = clients["小李"], clients["小张"]
    _, (first,) = finished_run(clients, root, project, "基线")
    later, (second,) = finished_run(clients, root, project, "加大学习率", weights=b"\x02" * 4096)

    owner = releases_tab(tokens["小李"], project.id)
    owner.toggle(key=f"release_approval_{project.id}_{project.version}").set_value(True)
    rerun(owner)
    assert li.list_releases(project.id).approval_required
    asked = li.create_release(project.id, first.id, notes="请复核")
    run_page = console(tokens["小李"], "run", project_id=project.id, run_id=later.id, run_tab="检查点标签")
    run_page.radio(key="tag_value").set_value("发布")
    run_page.text_input(key="tag_notes").set_value("学习率更大")
    run_page.button(key="tag_submit").click()
    rerun(run_page)
    assert any("项目要求第二人批准" in t for t in texts(run_page.info))
    run_page.button(key="release_confirm").click()
    rerun(run_page)
    assert "已提交发布申请 #2：第 200 步检查点 须由另一位项目成员批准后才成为当前发布" in texts(run_page.info)
    (doubtful,) = [r for r in li.list_releases(project.id).pending if r.id != asked.id]
    assert (doubtful.artifact_id, doubtful.notes) == (second.id, "学习率更大")

    requester = releases_tab(tokens["小李"], project.id)
    assert requester.button(key=f"approve_{asked.id}").disabled
    assert "你（小李）是这次申请的申请人，须由另一位项目成员批准" in texts(requester.caption)
    assert any("项目目前没有当前发布" in t for t in texts(requester.info))

    reviewer = releases_tab(tokens["小张"], project.id)
    assert reviewer.toggle(key=f"release_approval_{project.id}_{project.version + 1}").disabled
    assert not reviewer.button(key=f"approve_{asked.id}").disabled
    reviewer.text_input(key=f"decision_notes_{asked.id}").set_value("指标复核通过")
    reviewer.button(key=f"approve_{asked.id}").click()
    rerun(reviewer)

    current = zhang.list_releases(project.id).current
    assert (current.id, current.decided_by, current.decision_notes) == (asked.id, "小张", "指标复核通过")
    assert "已批准 #1：第 200 步检查点 成为项目的当前发布" in texts(reviewer.success)
    reviewer.text_input(key=f"decision_notes_{doubtful.id}").set_value("数据集不对")
    reviewer.button(key=f"reject_{doubtful.id}").click()
    rerun(reviewer)

    history = table_with(reviewer, "批准/拒绝")
    assert history[["序号", "状态", "申请人", "批准/拒绝", "批准/拒绝说明"]].values.tolist() == [
        ["#2", "已拒绝", "小李", "小张", "数据集不对"],
        ["#1", "生效", "小李", "小张", "指标复核通过"],
    ]
    assert zhang.list_releases(project.id).pending == []


def test_rollback_happens_only_after_a_confirmation_and_only_for_the_owner_or_an_admin(team):
    root, tokens, clients, project = team
    li = clients["小李"]
    _, (first,) = finished_run(clients, root, project, "基线")
    _, (second,) = finished_run(clients, root, project, "加大学习率", weights=b"\x02" * 4096)
    one = li.create_release(project.id, first.id)
    two = li.create_release(project.id, second.id, replaces=first.id)

    member = releases_tab(tokens["小张"], project.id)
    assert "rollback_submit" not in keys(member.button)
    assert "只有项目负责人（小李）或管理员可以回滚发布；你是 小张（member）。" in texts(member.caption)

    at = releases_tab(tokens["小李"], project.id)
    assert at.selectbox(key="rollback_target").value == one.id
    at.text_input(key="rollback_notes").set_value("新版本线上指标回退")
    at.button(key="rollback_submit").click()
    rerun(at)
    assert any(w.startswith("确认回滚到发布 #1 第 200 步检查点（运行 基线，第 200 步）？") for w in texts(at.warning))
    assert li.list_releases(project.id).current.id == two.id
    at.button(key="rollback_back").click()
    rerun(at)
    assert not at.warning and li.list_releases(project.id).current.id == two.id

    at.button(key="rollback_submit").click()
    rerun(at)
    at.button(key="rollback_confirm").click()
    rerun(at)

    current = li.list_releases(project.id).current
    assert (current.number, current.action, current.artifact_id, current.notes) == (
        3,
        "回滚",
        first.id,
        "新版本线上指标回退",
    )
    assert "已回滚：#3 第 200 步检查点 成为项目的当前发布" in texts(at.success)
    history = table_with(at, "操作")
    assert history[["序号", "操作", "状态"]].values.tolist() == [
        ["#3", "回滚", "生效"],
        ["#2", "发布", "已被取代"],
        ["#1", "发布", "已被取代"],
    ]


def test_only_an_admin_is_offered_withdrawal_and_it_needs_a_reason(team):
    root, tokens, clients, project = team
    li = clients["小李"]
    _, (checkpoint,) = finished_run(clients, root, project, "基线")
    release = li.create_release(project.id, checkpoint.id)

    owner = releases_tab(tokens["小李"], project.id)
    assert "withdraw_release" not in keys(owner.button)
    assert "撤销发布只有管理员可以操作；你是 小李（member）。" in texts(owner.caption)

    admin = releases_tab(tokens["管理员"], project.id)
    admin.button(key="withdraw_release").click()
    rerun(admin)
    assert any(w.startswith("确认撤销发布 #1 第 200 步检查点") for w in texts(admin.warning))
    admin.button(key="withdraw_confirm").click()
    rerun(admin)
    assert "请填写撤销原因" in texts(admin.error)
    assert li.list_releases(project.id).current.id == release.id
    admin.text_input(key="withdraw_notes").set_value("发现评估数据泄漏")
    admin.button(key="withdraw_confirm").click()
    rerun(admin)

    releases = li.list_releases(project.id)
    assert releases.current is None
    assert (releases.history[0].state, releases.history[0].withdrawn_by) == ("已撤销", "管理员")
    assert "已撤销发布 #1，项目目前没有当前发布" in texts(admin.success)
    history = table_with(admin, "撤销人")
    assert history[["状态", "撤销人", "冻结副本"]].values.tolist() == [["已撤销", "管理员", "是"]]
    assert admin.selectbox(key="rollback_target").value == release.id  # a withdrawn release can come back
    trail = [e for e in li.audit_trail(project.id) if e.action == "撤销发布"]
    assert len(trail) == 1 and "发现评估数据泄漏" in trail[0].details


def test_a_corrupted_checkpoint_is_marked_on_the_run_page_and_verify_reports_it(team):
    root, tokens, clients, project = team
    run, (healthy, damaged) = finished_run(clients, root, project, "基线", steps=(100, 200))
    at = console(tokens["小李"], "run", project_id=project.id, run_id=run.id, run_tab="检查点标签")
    assert set(table_with(at, "完整性")["完整性"]) == {"未发现损坏"}

    flipped = next(Path(damaged.path).rglob("weights.bin"))
    flipped.write_bytes(b"\x00" + flipped.read_bytes()[1:])
    assert at.selectbox(key="inspect_artifact").value == damaged.id  # the newest checkpoint first
    at.button(key="verify_checkpoint").click()
    rerun(at)

    (verdict,) = [e for e in texts(at.error) if e.startswith("校验未通过")]
    assert "已损坏" in verdict and "weights.bin" in verdict
    marks = dict(zip(*(table_with(at, "完整性")[column] for column in ("名称", "完整性"))))
    assert marks["第 100 步检查点"] == "未发现损坏"
    assert marks["第 200 步检查点"].startswith("已损坏：") and "weights.bin" in marks["第 200 步检查点"]
    (note,) = [e for e in texts(at.error) if e.startswith(f"检查点 第 200 步检查点（第 200 步，{damaged.id}）已损坏（")]
    assert "weights.bin" in note  # above the artifacts table at the top of the page

    at.session_state["checkpoint_manifest"] = True  # the checkpoint's manifest, opened
    rerun(at)
    assert any(m.startswith(f"**检查点 第 200 步检查点**（{damaged.id}") for m in texts(at.markdown))
    assert any(e.startswith("检查点已损坏（") for e in texts(at.error))

    at.selectbox(key="inspect_artifact").select(healthy.id)
    rerun(at)
    at.button(key="verify_checkpoint").click()
    rerun(at)
    assert "校验通过：2 个文件都与写入时记录的 SHA-256 一致" in texts(at.success)


T0 = datetime(2025, 3, 1, tzinfo=timezone.utc)


def train(admin: Client, run, steps: range) -> None:
    """What a training flow reports: train_loss at each step, the same values for the same steps."""
    points = [
        MetricPoint(name="train_loss", step=s, value=3.0 / (1 + 0.01 * s), timestamp=T0 + timedelta(seconds=s))
        for s in steps
    ]
    admin.send_metrics(run.project_id, run.id, MetricBatch(batch_id=uuid.uuid4().hex, points=points))
    admin.report(run.project_id, run.id, current_step=steps[-1])


def test_a_resumed_run_shows_its_fidelity_badge_near_the_top(team):
    root, tokens, clients, project = team
    li, admin = clients["小李"], clients["管理员"]
    parent = li.create_run(project.id, "qwen-7b", "语料", name="基线")
    admin.report(project.id, parent.id, status="运行中")
    train(admin, parent, range(1, 11))
    source = admin.register_artifact(
        project.id, parent.id, "checkpoint", "第 10 步检查点", f"{root}/{project.id}/{parent.id}/step-10", step=10
    )
    train(admin, parent, range(11, 21))
    admin.report(project.id, parent.id, status="已完成")
    resumed = li.resume_run(project.id, parent.id, source.id, name="续训")
    admin.report(project.id, resumed.id, status="运行中")
    train(admin, resumed, range(11, 21))
    admin.report(project.id, resumed.id, status="已完成")

    child = console(tokens["小李"], "run", project_id=project.id, run_id=resumed.id)
    original = console(tokens["小李"], "run", project_id=project.id, run_id=parent.id)

    badges = [m for m in texts(child.markdown) if "恢复保真度" in m]
    assert badges and badges[0].startswith(":green-badge[") and "恢复保真度：一致" in badges[0]
    assert "与原运行逐步一致（第 11–20 步）" in texts(child.caption)
    assert not any("恢复保真度" in m for m in texts(original.markdown))
