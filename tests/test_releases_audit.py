"""One current release per project (a new 发布 archives the old one, by the same person), the releases view, and an
audit trail that names runs and checkpoints, labels project fields in Chinese and records cancels made in Prefect."""

import uuid
from datetime import datetime

import duckdb
import pytest

from ltm import ApiError
from ltm.store import Database
from ltm.store.migrations import apply
from tests.helpers import unique

LOCAL = "本地用户"


def checkpoint(client, project_id: str, run_id: str, step: int, name: str | None = None):
    return client.register_artifact(
        project_id,
        run_id,
        type="checkpoint",
        name=name or f"第 {step} 步检查点",
        path=f"s3://artifacts/{project_id}/{run_id}/step_{step}-{uuid.uuid4().hex[:6]}.ckpt",
        step=step,
    )


@pytest.fixture
def two_runs(shared_client):
    project = shared_client.create_project(unique(), unique("负责人"))
    first = shared_client.create_run(project.id, "qwen-7b", "语料", name="基线")
    second = shared_client.create_run(project.id, "qwen-7b", "语料", name="加大学习率")
    return project, first, second


def latest_tag(client, project_id: str, run_id: str, artifact_id: str):
    found = next(a for a in client.list_artifacts(project_id, run_id) if a.id == artifact_id)
    return found.tags[-1]


def test_a_new_release_archives_the_current_one_and_the_view_shows_both(shared_client, two_runs):
    project, first, second = two_runs
    old = checkpoint(shared_client, project.id, first.id, 500)
    new = checkpoint(shared_client, project.id, second.id, 800)
    shared_client.tag_artifact(project.id, first.id, old.id, "候选")
    shared_client.tag_artifact(project.id, first.id, old.id, "发布", notes="第一版")
    assert shared_client.list_releases(project.id).current.artifact_id == old.id

    shared_client.tag_artifact(project.id, second.id, new.id, "发布", notes="BLEU 33.1", replaces=old.id)

    retired = latest_tag(shared_client, project.id, first.id, old.id)
    assert (retired.value.value, retired.notes, retired.applied_by) == (
        "归档",
        "被 加大学习率 的 第 800 步检查点 取代",
        LOCAL,
    )
    releases = shared_client.list_releases(project.id)
    assert releases.current.artifact_id == new.id
    assert [
        (r.run_name, r.artifact_name, r.step, r.tagged_by, r.notes, r.latest_tag.value) for r in releases.history
    ] == [
        ("加大学习率", "第 800 步检查点", 800, LOCAL, "BLEU 33.1", "发布"),
        ("基线", "第 500 步检查点", 500, LOCAL, "第一版", "归档"),
    ]


def test_a_confirmation_of_another_release_than_the_current_is_refused_and_writes_nothing(shared_client, two_runs):
    project, first, second = two_runs
    shown = checkpoint(shared_client, project.id, first.id, 100)
    meanwhile = checkpoint(shared_client, project.id, first.id, 200)
    wanted = checkpoint(shared_client, project.id, second.id, 300)
    shared_client.tag_artifact(project.id, first.id, shown.id, "发布")
    shared_client.tag_artifact(project.id, first.id, meanwhile.id, "发布")

    with pytest.raises(ApiError) as refused:
        shared_client.tag_artifact(project.id, second.id, wanted.id, "发布", replaces=shown.id)

    assert refused.value.status_code == 409
    assert "当前发布已是 基线 的 第 200 步检查点" in refused.value.detail
    assert next(a for a in shared_client.list_artifacts(project.id, second.id) if a.id == wanted.id).tags == []
    assert shared_client.list_releases(project.id).current.artifact_id == meanwhile.id


def test_releasing_the_current_release_again_archives_nothing_and_archiving_it_leaves_none(shared_client, two_runs):
    project, first, _ = two_runs
    only = checkpoint(shared_client, project.id, first.id, 100)
    shared_client.tag_artifact(project.id, first.id, only.id, "发布")
    shared_client.tag_artifact(project.id, first.id, only.id, "发布", replaces=only.id)
    assert [t.value.value for t in latest_tag_history(shared_client, project.id, first.id, only.id)] == ["发布", "发布"]

    shared_client.tag_artifact(project.id, first.id, only.id, "归档")

    releases = shared_client.list_releases(project.id)
    assert releases.current is None
    assert len(releases.history) == 2


def latest_tag_history(client, project_id, run_id, artifact_id):
    return next(a for a in client.list_artifacts(project_id, run_id) if a.id == artifact_id).tags


def test_releases_of_an_unknown_project_are_404_in_chinese(shared_http):
    response = shared_http.get("/projects/proj_000000000000/releases")
    assert response.status_code == 404 and "不存在" in response.json()["detail"]


def test_the_tag_endpoint_documents_the_one_current_release(shared_http):
    operation = shared_http.get("/openapi.json").json()["paths"][
        "/projects/{project_id}/runs/{run_id}/artifacts/{artifact_id}/tag"
    ]["post"]
    assert "一个项目只有一个当前发布" in operation["description"]
    assert "归档" in operation["description"]


def trail(client, project_id: str):
    return client.audit_trail(project_id, limit=50)


def test_audit_entries_name_runs_and_checkpoints_and_label_project_fields_in_chinese(shared_client, two_runs):
    project, first, _ = two_runs
    ckpt = checkpoint(shared_client, project.id, first.id, 200)
    shared_client.tag_artifact(project.id, first.id, ckpt.id, "候选", notes="复核中")
    shared_client.cancel_run(project.id, first.id)
    resumed = shared_client.resume_run(project.id, first.id, ckpt.id, name="续训")
    shared_client.update_project(project.id, description="新描述", tags=["科研"])
    shared_client.update_project(project.id, status="已归档")

    events = trail(shared_client, project.id)
    by_action = {e.action: e for e in reversed(events)}

    tagged = by_action["打标签"]
    assert (tagged.target, tagged.run_name, tagged.details) == ("第 200 步检查点", "基线", "候选：复核中")
    resume = by_action["恢复运行"]
    assert resume.run_name == "续训" and resume.run_id == resumed.id
    assert "基线" in resume.details and "第 200 步检查点" in resume.details
    assert first.id not in resume.details and ckpt.id not in resume.details
    assert by_action["修改项目"].details.endswith("描述、标签")
    assert by_action["归档项目"].details.endswith("已归档")
    assert not any("description" in (e.details or "") or "archived" in (e.details or "") for e in events)


def test_a_cancel_made_in_prefect_is_audited_with_prefect_as_the_actor(shared_client, shared_http, two_runs):
    project, first, second = two_runs
    flow_run = str(uuid.uuid4())
    shared_client.report(project.id, first.id, status="运行中", flow_run_id=flow_run)
    shared_client.report(project.id, first.id, status="已取消")
    shared_client.report(project.id, second.id, status="运行中")
    shared_client.cancel_run(project.id, second.id)
    shared_client.report(project.id, second.id, status="已取消")

    cancels = [e for e in trail(shared_client, project.id) if e.action == "取消运行"]

    assert [(e.actor, e.run_name) for e in cancels] == [(LOCAL, "加大学习率"), ("Prefect", "基线")]
    assert flow_run in cancels[1].details and "已取消" in cancels[1].details


def test_a_cancel_the_flow_itself_reports_without_prefect_names_the_flow(shared_client, two_runs):
    project, first, _ = two_runs
    shared_client.report(project.id, first.id, status="运行中")
    shared_client.report(project.id, first.id, status="取消中")
    shared_client.report(project.id, first.id, status="已取消")

    cancels = [e for e in trail(shared_client, project.id) if e.action == "取消运行"]

    assert [(e.actor, e.target) for e in cancels] == [("训练流程", "基线")]


def test_an_entry_keeps_the_run_name_after_the_run_is_deleted(shared_client, two_runs):
    project, first, _ = two_runs
    shared_client.cancel_run(project.id, first.id)
    shared_client.delete_run(project.id, first.id, dry_run=False)

    created = next(e for e in trail(shared_client, project.id) if e.action == "创建运行" and e.run_id == first.id)

    assert created.run_name == "基线"


def test_migration_13_names_the_runs_of_entries_recorded_before_it(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    apply(con, applied_at=datetime(2026, 1, 1), up_to=12)
    con.execute(
        "INSERT INTO runs (id, project_id, name, status, progress, model, dataset, hyperparameters, resources, "
        "metrics, created_at, updated_at, start_step, current_step, project_version) VALUES "
        "('run_aaaaaaaaaaaa', 'proj_old', '旧运行', '已完成', 1.0, 'm', 'd', '{}', '{}', '{}', now(), now(), 0, 10, 1)"
    )
    con.execute(
        "INSERT INTO audit_events VALUES (now(), '小李', '取消运行', 'proj_old', 'run_aaaaaaaaaaaa', NULL, NULL)"
    )
    con.close()

    db = Database(path)
    try:
        assert db.fetch_one("SELECT run_name FROM audit_events") == ("旧运行",)
    finally:
        db.close()
