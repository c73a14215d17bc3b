"""Data lifecycle on a real API process and real files: retention policy and preview, the retention flow run
for real, deleting artifacts, runs and projects (preview first, files before rows)."""

import json
import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import httpx
import pytest

from ltm import ApiError, Client
from ltm.models import LogBatch, LogLine, MetricBatch, MetricPoint
from tests.conftest import ROOT, ApiProcess

APPLY_RETENTION = """
import json, sys
from ltm.flows.retention import apply_retention
print("RESULT " + json.dumps([apply_retention(project_id) for project_id in sys.argv[1:]], ensure_ascii=False))
"""


@pytest.fixture(scope="module")
def artifact_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="module")
def api(tmp_path_factory, artifact_root):
    server = ApiProcess(tmp_path_factory.mktemp("lifecycle") / "home", LTM_ARTIFACT_ROOT=str(artifact_root)).start()
    yield server
    if server.process.poll() is None:
        server.stop()


@pytest.fixture
def sdk(api):
    with Client(api.url) as client:
        yield client


@pytest.fixture
def http(api):
    with httpx.Client(base_url=api.url, timeout=30) as client:
        yield client


def new_project(sdk: Client) -> str:
    return sdk.create_project(name=f"生命周期-{uuid.uuid4().hex[:8]}", owner="小李").id


def new_run(sdk: Client, project_id: str) -> str:
    """A run in 运行中, as its flow starts it; `finish` ends it once its data is in."""
    run = sdk.create_run(project_id, model="m", dataset="d")
    sdk.report(project_id, run.id, status="运行中")
    return run.id


def finish(sdk: Client, project_id: str, run_id: str, status: str = "已完成") -> None:
    """End a run once its data is in: a finished run accepts no more artifacts, logs or metrics."""
    sdk.report(project_id, run_id, status=status)


def checkpoint(sdk: Client, root: Path, project_id: str, run_id: str, step: int, under: Path | None = None) -> dict:
    """A real checkpoint folder of two files (in the run's folder unless `under`), registered with its real size."""
    folder = (under or root / project_id / run_id) / f"step-{step:06d}.ckpt"
    folder.mkdir(parents=True)
    (folder / "state.json").write_bytes(b"s" * (step + 11))
    (folder / "optimizer.bin").write_bytes(b"o" * 97)
    size = sum(path.stat().st_size for path in folder.iterdir())
    artifact = sdk.register_artifact(
        project_id, run_id, type="checkpoint", name=folder.name, path=str(folder), size_bytes=size, step=step
    )
    return {"id": artifact.id, "path": folder, "size": size, "step": step}


def artifact_ids(sdk: Client, project_id: str, run_id: str) -> set[str]:
    return {artifact.id for artifact in sdk.list_artifacts(project_id, run_id)}


def status_of(call) -> int:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value.status_code


# Retention policy


def test_retention_policy_is_stored_per_project_and_validated(sdk, http):
    project_id = new_project(sdk)
    assert sdk.get_retention(project_id).model_dump() == {
        "project_id": project_id,
        "keep_last": None,
        "updated_at": None,
    }

    assert sdk.set_retention(project_id, 3).keep_last == 3
    stored = sdk.get_retention(project_id)
    assert stored.keep_last == 3 and stored.updated_at
    assert sdk.set_retention(project_id, 1000).keep_last == 1000
    assert sdk.set_retention(project_id, None).keep_last is None
    assert sdk.get_retention(new_project(sdk)).keep_last is None

    for body in (
        {"keep_last": 0},
        {"keep_last": 1001},
        {"keep_last": -1},
        {"keep_last": "三"},
        {"keep_last": 2.5},
        {},
        {"keep_last": 2, "keep_first": 1},
    ):
        response = http.put(f"/projects/{project_id}/retention", json=body)
        assert response.status_code == 422, (body, response.text)
        assert "keep" in response.json()["detail"]
    assert sdk.get_retention(project_id).keep_last is None

    for method, suffix in (("GET", ""), ("PUT", ""), ("GET", "/preview")):
        response = http.request(method, f"/projects/proj_000000000000/retention{suffix}", json={"keep_last": 1})
        assert response.status_code == 404 and "proj_000000000000" in response.json()["detail"]


def test_preview_keeps_the_newest_n_and_every_tagged_checkpoint_of_finished_runs_only(sdk, artifact_root):
    project_id = new_project(sdk)
    done, failed, running = (new_run(sdk, project_id) for _ in range(3))
    done_ckpts = {step: checkpoint(sdk, artifact_root, project_id, done, step) for step in range(100, 900, 100)}
    for step, tag in ((100, "发布"), (300, "归档"), (700, "候选")):
        sdk.tag_artifact(project_id, done, done_ckpts[step]["id"], tag)
    failed_ckpts = [checkpoint(sdk, artifact_root, project_id, failed, step) for step in (5, 15, 10)]
    for step in (10, 20, 30, 40):
        checkpoint(sdk, artifact_root, project_id, running, step)
    sdk.register_artifact(
        project_id, done, type="config", name="运行配置", path=str(artifact_root / project_id / done / "config.json")
    )
    finish(sdk, project_id, done)
    finish(sdk, project_id, failed, "失败")

    assert sdk.retention_preview(project_id).model_dump() == {
        "project_id": project_id,
        "keep_last": None,
        "items": [],
        "count": 0,
        "total_bytes": 0,
    }
    sdk.set_retention(project_id, 2)
    preview = sdk.retention_preview(project_id)

    expected = [done_ckpts[step] for step in (200, 400, 500, 600)] + [failed_ckpts[0]]
    assert [item.artifact_id for item in preview.items] == [c["id"] for c in expected]
    assert [item.run_id for item in preview.items] == [done] * 4 + [failed]
    assert [item.path for item in preview.items] == [str(c["path"]) for c in expected]
    assert [item.size_bytes for item in preview.items] == [c["size"] for c in expected]
    assert preview.count == 5 and preview.total_bytes == sum(c["size"] for c in expected)
    assert all(item.type == "checkpoint" and item.tags == [] for item in preview.items)

    sdk.set_retention(project_id, 1)
    one = {item.artifact_id for item in sdk.retention_preview(project_id).items}
    assert one == {done_ckpts[step]["id"] for step in (200, 400, 500, 600)} | {
        failed_ckpts[0]["id"],
        failed_ckpts[2]["id"],
    }


# Deleting one artifact


def test_deleting_an_artifact_refuses_tagged_checkpoints_and_active_runs(sdk, http, artifact_root):
    project_id = new_project(sdk)
    done, running = new_run(sdk, project_id), new_run(sdk, project_id)
    tagged, plain, other = (checkpoint(sdk, artifact_root, project_id, done, step) for step in (1, 2, 3))
    live = checkpoint(sdk, artifact_root, project_id, running, 1)
    finish(sdk, project_id, done)
    sdk.tag_artifact(project_id, done, tagged["id"], "发布")

    for dry_run in (True, False):
        with pytest.raises(ApiError) as refused:
            sdk.delete_artifact(project_id, done, tagged["id"], dry_run=dry_run)
        assert refused.value.status_code == 409 and "标签" in refused.value.detail
        with pytest.raises(ApiError) as busy:
            sdk.delete_artifact(project_id, running, live["id"], dry_run=dry_run)
        assert busy.value.status_code == 409 and running in busy.value.detail and "运行中" in busy.value.detail
    assert tagged["path"].is_dir() and live["path"].is_dir()

    preview = http.delete(f"/projects/{project_id}/runs/{done}/artifacts/{plain['id']}")
    assert preview.status_code == 200 and preview.json()["dry_run"] is True and preview.json()["deleted"] is False
    assert plain["path"].is_dir() and plain["id"] in artifact_ids(sdk, project_id, done)

    answer = sdk.delete_artifact(project_id, done, plain["id"], dry_run=False)
    assert answer.deleted is True and answer.artifact.size_bytes == plain["size"]
    assert not plain["path"].exists()
    assert artifact_ids(sdk, project_id, done) == {tagged["id"], other["id"]}

    assert status_of(lambda: sdk.delete_artifact(project_id, done, plain["id"], dry_run=False)) == 404
    assert status_of(lambda: sdk.delete_artifact(project_id, running, other["id"], dry_run=False)) == 404
    assert status_of(lambda: sdk.delete_artifact(project_id, done, "ckpt_../../etc", dry_run=False)) == 404
    assert other["path"].is_dir()

    with pytest.raises(ApiError) as elsewhere:
        sdk.register_artifact(
            project_id, done, type="checkpoint", name="别处", step=9, path=str(artifact_root / project_id / running)
        )
    assert elsewhere.value.status_code == 422 and "运行自己的目录" in elsewhere.value.detail
    assert live["path"].is_dir() and artifact_ids(sdk, project_id, done) == {tagged["id"], other["id"]}


# The retention flow, run for real


def read_only_mount(folder: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)


def test_retention_flow_deletes_exactly_the_files_and_rows_the_policy_frees(sdk, api, artifact_root, ltm_system):
    project_id = new_project(sdk)
    done, running = new_run(sdk, project_id), new_run(sdk, project_id)
    ckpts = [checkpoint(sdk, artifact_root, project_id, done, step) for step in (10, 20, 30, 40, 50)]
    live = [checkpoint(sdk, artifact_root, project_id, running, step) for step in (10, 20, 30)]
    finish(sdk, project_id, done)
    sdk.tag_artifact(project_id, done, ckpts[0]["id"], "候选")
    sdk.set_retention(project_id, 2)
    for path in ckpts[1]["path"].iterdir():  # files someone already removed count as deleted
        path.unlink()
    ckpts[1]["path"].rmdir()

    stuck_project = new_project(sdk)
    stuck_run = new_run(sdk, stuck_project)
    disk = artifact_root / stuck_project
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], check=True)
    try:
        stuck = [checkpoint(sdk, artifact_root, stuck_project, stuck_run, step) for step in (1, 2, 3)]
        finish(sdk, stuck_project, stuck_run)
        sdk.set_retention(stuck_project, 1)
        read_only_mount(disk)
        env = {
            **os.environ,
            "LTM_API_URL": api.url,
            "LTM_ARTIFACT_ROOT": str(artifact_root),
            "PREFECT_API_URL": ltm_system.prefect_api_url,
        }
        flow = subprocess.run(
            [sys.executable, "-c", APPLY_RETENTION, project_id, stuck_project],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert flow.returncode == 0, flow.stderr[-3000:]
        freed, refused = json.loads(next(line for line in flow.stdout.splitlines() if line.startswith("RESULT "))[7:])
        assert all(c["path"].is_dir() for c in stuck)
        assert artifact_ids(sdk, stuck_project, stuck_run) == {c["id"] for c in stuck}
    finally:
        subprocess.run(["umount", str(disk)], check=True)

    deleted = [ckpts[1], ckpts[2]]
    assert freed["deleted"] == 2 and freed["errors"] == []
    assert freed["deleted_artifacts"] == [c["id"] for c in deleted]
    assert freed["bytes_freed"] == sum(c["size"] for c in deleted)
    assert not any(c["path"].exists() for c in deleted)
    assert all(c["path"].is_dir() for c in [ckpts[0], ckpts[3], ckpts[4], *live])
    assert artifact_ids(sdk, project_id, done) == {ckpts[0]["id"], ckpts[3]["id"], ckpts[4]["id"]}
    assert artifact_ids(sdk, project_id, running) == {c["id"] for c in live}
    assert sdk.retention_preview(project_id).count == 0

    assert refused["deleted"] == 0 and refused["bytes_freed"] == 0
    assert [e["artifact_id"] for e in refused["errors"]] == [stuck[0]["id"], stuck[1]["id"]]
    assert all("删除文件失败，记录保留" in e["error"] for e in refused["errors"])


# Deleting runs and projects


def record_activity(sdk: Client, project_id: str, run_id: str, lines: int, points: int) -> None:
    start = datetime.now(timezone.utc)
    sdk.send_logs(
        project_id,
        run_id,
        LogBatch(
            batch_id=uuid.uuid4().hex,
            lines=[LogLine(timestamp=start + timedelta(milliseconds=i), message=f"第 {i} 行") for i in range(lines)],
        ),
    )
    sdk.send_metrics(
        project_id,
        run_id,
        MetricBatch(
            batch_id=uuid.uuid4().hex,
            points=[
                MetricPoint(name="train_loss", step=i, value=1.0 / (i + 1), timestamp=start) for i in range(points)
            ],
        ),
    )


def test_deleting_a_run_previews_by_default_then_removes_its_files_and_rows_only(sdk, http, artifact_root):
    project_id = new_project(sdk)
    doomed, kept, running = (new_run(sdk, project_id) for _ in range(3))
    doomed_ckpts = [checkpoint(sdk, artifact_root, project_id, doomed, step) for step in (1, 2, 3)]
    sdk.tag_artifact(project_id, doomed, doomed_ckpts[0]["id"], "发布")
    (artifact_root / project_id / doomed / ".leftover.tmp").write_bytes(b"x")
    kept_ckpt = checkpoint(sdk, artifact_root, project_id, kept, 1)
    checkpoint(sdk, artifact_root, project_id, running, 1)
    record_activity(sdk, project_id, doomed, lines=30, points=50)
    record_activity(sdk, project_id, kept, lines=7, points=9)
    finish(sdk, project_id, doomed)
    finish(sdk, project_id, kept, "已取消")

    preview = http.delete(f"/projects/{project_id}/runs/{doomed}").json()
    assert preview["dry_run"] is True and preview["deleted"] is False
    assert [run["id"] for run in preview["runs"]] == [doomed]
    assert {a["artifact_id"] for a in preview["artifacts"]} == {c["id"] for c in doomed_ckpts}
    assert preview["artifact_bytes"] == sum(c["size"] for c in doomed_ckpts)
    assert (preview["log_lines"], preview["metric_points"]) == (30, 50)
    assert ["发布"] in [a["tags"] for a in preview["artifacts"]]
    assert all(c["path"].is_dir() for c in doomed_ckpts)
    assert sdk.get_logs(project_id, doomed).total == 30

    busy = sdk.delete_run(project_id, running)
    assert busy.dry_run is True
    with pytest.raises(ApiError) as refused:
        sdk.delete_run(project_id, running, dry_run=False)
    assert refused.value.status_code == 409 and running in refused.value.detail
    assert sdk.get_run(project_id, running).artifacts

    freed = sdk.delete_run(project_id, doomed, dry_run=False)
    assert freed.deleted is True and freed.artifact_bytes == preview["artifact_bytes"]
    assert (freed.log_lines, freed.metric_points) == (30, 50)
    assert not (artifact_root / project_id / doomed).exists()
    for call in (
        lambda: sdk.get_run(project_id, doomed),
        lambda: sdk.get_logs(project_id, doomed),
        lambda: sdk.find_run(doomed),
        lambda: sdk.delete_run(project_id, doomed),
    ):
        assert status_of(call) == 404
    assert [run.id for run in sdk.list_runs(project_id)] == [kept, running]

    assert artifact_ids(sdk, project_id, kept) == {kept_ckpt["id"]} and kept_ckpt["path"].is_dir()
    assert sdk.get_logs(project_id, kept).total == 7
    assert sdk.get_metrics(project_id, kept).series[0].total_points == 9
    assert status_of(lambda: sdk.delete_run(new_project(sdk), kept, dry_run=False)) == 404
    assert status_of(lambda: sdk.delete_run(project_id, "run_000000000000")) == 404


def test_a_failed_file_delete_keeps_the_run_and_every_row_whose_files_remain(sdk, artifact_root):
    project_id = new_project(sdk)
    run_id = new_run(sdk, project_id)
    movable = checkpoint(sdk, artifact_root, project_id, run_id, 1)
    disk = artifact_root / project_id / run_id / "read-only"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], check=True)
    try:
        stuck = checkpoint(sdk, artifact_root, project_id, run_id, 2, under=disk)
        finish(sdk, project_id, run_id, "失败")
        read_only_mount(disk)
        with pytest.raises(ApiError) as failed:
            sdk.delete_run(project_id, run_id, dry_run=False)
        assert failed.value.status_code == 503 and stuck["id"] in failed.value.detail
        assert stuck["path"].is_dir() and not movable["path"].exists()
        assert artifact_ids(sdk, project_id, run_id) == {stuck["id"]}
    finally:
        subprocess.run(["umount", str(disk)], check=True)

    assert not stuck["path"].exists()  # the files went with the unmounted disk: already gone counts as deleted
    assert sdk.delete_run(project_id, run_id, dry_run=False).artifacts[0].artifact_id == stuck["id"]
    assert status_of(lambda: sdk.get_run(project_id, run_id)) == 404


def rows_mentioning(db_path: Path, project_id: str, run_ids: list[str], artifact_ids_: list[str]) -> dict[str, int]:
    """Rows of every table that still name the project, its runs or its artifacts (audit history aside)."""
    checks = {
        "projects": ("id", [project_id]),
        "project_versions": ("project_id", [project_id]),
        "project_members": ("project_id", [project_id]),
        "retention_policies": ("project_id", [project_id]),
        "runs": ("id", run_ids),
        "logs": ("run_id", run_ids),
        "metrics": ("run_id", run_ids),
        "ingest_batches": ("run_id", run_ids),
        "artifacts": ("run_id", run_ids),
        "artifact_tags": ("artifact_id", artifact_ids_),
    }
    with duckdb.connect(str(db_path), read_only=True) as con:
        return {
            table: con.execute(f"SELECT count(*) FROM {table} WHERE list_contains(?, {column})", [values]).fetchone()[0]
            for table, (column, values) in checks.items()
        }


def test_deleting_a_project_refuses_active_runs_then_removes_everything_it_owns(tmp_path):
    root = tmp_path / "artifacts"
    api = ApiProcess(tmp_path / "home", LTM_ARTIFACT_ROOT=str(root)).start()
    sdk = Client(api.url)
    name = "待删除的项目"
    project_id = sdk.create_project(name=name, owner="小李").id
    sdk.update_project(project_id, description="第二版")
    sdk.set_retention(project_id, 3)
    done, running = new_run(sdk, project_id), new_run(sdk, project_id)
    ckpts = [checkpoint(sdk, root, project_id, run_id, step) for run_id in (done, running) for step in (1, 2)]
    sdk.tag_artifact(project_id, done, ckpts[0]["id"], "发布")
    record_activity(sdk, project_id, done, lines=12, points=20)
    finish(sdk, project_id, done)
    neighbour = new_project(sdk)
    neighbour_run = new_run(sdk, neighbour)
    neighbour_ckpt = checkpoint(sdk, root, neighbour, neighbour_run, 1)
    finish(sdk, neighbour, neighbour_run)

    with pytest.raises(ApiError) as refused:
        sdk.delete_project(project_id, dry_run=False)
    assert refused.value.status_code == 409 and running in refused.value.detail
    assert all(c["path"].is_dir() for c in ckpts) and sdk.get_project(project_id).run_count == 2

    sdk.report(project_id, running, status="已完成")
    with pytest.raises(ApiError) as released:
        sdk.delete_project(project_id, dry_run=False)
    assert released.value.status_code == 409 and "当前发布" in released.value.detail
    frozen = root / "releases" / project_id
    assert frozen.is_dir()
    sdk.tag_artifact(project_id, done, ckpts[0]["id"], "归档", notes="项目下线")  # an admin withdraws the release
    preview = sdk.delete_project(project_id)
    assert (preview.dry_run, preview.deleted) == (True, False)
    assert [run.id for run in preview.runs] == [done, running]
    assert preview.project_versions == 2 and preview.artifact_count == 4
    assert (preview.log_lines, preview.metric_points) == (12, 20)
    assert preview.artifact_bytes == sum(c["size"] for c in ckpts)

    freed = sdk.delete_project(project_id, dry_run=False)
    assert freed.deleted is True and freed.model_dump(exclude={"dry_run", "deleted"}) == preview.model_dump(
        exclude={"dry_run", "deleted"}
    )
    assert not (root / project_id).exists() and not frozen.exists()
    assert status_of(lambda: sdk.get_project(project_id)) == 404
    assert status_of(lambda: sdk.get_run(project_id, done)) == 404
    assert status_of(lambda: sdk.delete_project(project_id)) == 404
    assert neighbour_ckpt["path"].is_dir() and artifact_ids(sdk, neighbour, neighbour_run) == {neighbour_ckpt["id"]}
    assert sdk.create_project(name=name, owner="小王").name == name
    api.stop()

    left = rows_mentioning(api.home / "ltm.duckdb", project_id, [done, running], [c["id"] for c in ckpts])
    assert left == dict.fromkeys(left, 0)
