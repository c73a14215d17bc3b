"""A project's release through the real API with authentication on and real checkpoint files: one current release
with its history, rollback, a frozen copy that outlives the run, the compaction and the original files, a manifest
recorded at release time, approval by a second person, and withdrawal by admins only."""

import io
import tarfile
from pathlib import Path

import pytest

from ltm import ApiError, Client
from tests.conftest import ApiProcess
from tests.helpers import cli_token, stored_checkpoint, unique


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("releases") / "home"
    root = home.parent / "artifacts"
    tokens = {
        who: cli_token(home, who, role) for who, role in (("管理员", "admin"), ("小李", "member"), ("小张", "member"))
    }
    api = ApiProcess(home, LTM_AUTH="true", LTM_ARTIFACT_ROOT=str(root)).start()
    clients = {who: Client(api.url, token=token) for who, token in tokens.items()}
    yield clients, root
    for client in clients.values():
        client.close()
    api.stop()


@pytest.fixture
def team(server):
    """A project owned by 小李 with 小张 as a member, and two finished runs each with one real checkpoint."""
    clients, root = server
    li, admin = clients["小李"], clients["管理员"]  # only a run's flow or an admin writes its artifacts
    project = li.create_project(unique("发布"), task_type="文本摘要")
    li.set_members(project.id, ["小张"])
    checkpoints = []
    for name, weights in (("基线", b"\x01" * 4096), ("加大学习率", b"\x02" * 4096)):
        run = li.create_run(project.id, "qwen-7b", "语料", name=name)
        files = {"state.json": b'{"step": 200}', "weights.bin": weights}
        checkpoints.append(stored_checkpoint(admin, root, project.id, run.id, 200, files))
        admin.report(project.id, run.id, status="运行中")
        admin.report(project.id, run.id, status="已完成")
    return clients, root, project, checkpoints


def post(client: Client, path: str, body: dict | None = None):
    return client.http.post(path, json=body, headers=client.headers)


def refused(call) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value


def test_one_current_release_moves_forward_and_rolls_back_with_its_history(team):
    clients, _, project, (first, second) = team
    li = clients["小李"]
    base = f"/projects/{project.id}/releases"

    one = post(li, base, {"artifact_id": first.id, "notes": "第一版"})
    two = post(li, base, {"artifact_id": second.id, "notes": "BLEU 33.1", "replaces": first.id})
    assert (one.status_code, two.status_code) == (201, 201)
    assert one.json()["frozen"] and one.json()["checksums"] == first.checksums

    back = post(li, base + "/rollback", {"release_id": one.json()["id"], "notes": "新版本回归"})
    assert back.status_code == 201 and back.json()["action"] == "回滚" and back.json()["artifact_id"] == first.id

    releases = li.list_releases(project.id)
    assert releases.current.id == back.json()["id"] and releases.current.state == "生效"
    assert [(r.number, r.action, r.state, r.artifact_id) for r in releases.history] == [
        (3, "回滚", "生效", first.id),
        (2, "发布", "已被取代", second.id),
        (1, "发布", "已被取代", first.id),
    ]
    tags = {a.id: [t.value.value for t in a.tags] for a in li.list_artifacts(project.id, second.run_id)}
    assert tags[second.id] == ["发布", "归档"]
    stale = post(li, base, {"artifact_id": second.id, "replaces": second.id})
    assert stale.status_code == 409 and "当前发布已是" in stale.json()["detail"]
    actions = [e.action for e in li.audit_trail(project.id) if e.action in ("发布", "回滚")]
    assert actions == ["回滚", "发布", "发布"]


def test_the_frozen_copy_outlives_the_run_the_compaction_and_the_original_files(team):
    clients, root, project, (first, _) = team
    li, admin = clients["小李"], clients["管理员"]
    release = post(li, f"/projects/{project.id}/releases", {"artifact_id": first.id}).json()
    original = Path(first.path)
    expected = {p.name: p.read_bytes() for p in original.iterdir()}
    frozen = root / "releases" / project.id / release["id"]
    assert frozen.is_dir() and not frozen.is_relative_to(root / project.id)

    li.delete_run(project.id, first.run_id, dry_run=False)
    admin.compact()
    assert not original.exists()

    download = li.http.get(f"/projects/{project.id}/releases/{release['id']}/download", headers=li.headers)
    assert download.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(download.content)) as archive:
        files = {Path(m.name).name: archive.extractfile(m).read() for m in archive.getmembers()}
    assert files == expected
    manifest = li.http.get(f"/projects/{project.id}/releases/{release['id']}/manifest", headers=li.headers).json()
    assert manifest["run"]["id"] == first.run_id and manifest["checkpoint"]["checksums"] == first.checksums
    assert li.list_releases(project.id).current.id == release["id"]

    flipped = next(frozen.rglob("weights.bin"))
    flipped.write_bytes(b"\x00" + flipped.read_bytes()[1:])
    broken = li.http.get(f"/projects/{project.id}/releases/{release['id']}/download", headers=li.headers)
    assert broken.status_code == 409 and "冻结副本已损坏" in broken.json()["detail"]


def test_a_project_that_asks_for_approval_needs_a_second_person(team):
    clients, _, project, (first, second) = team
    li, zhang = clients["小李"], clients["小张"]
    base = f"/projects/{project.id}/releases"
    assert refused(lambda: zhang.update_project(project.id, release_approval=True)).status_code == 403
    li.update_project(project.id, release_approval=True)

    asked = post(li, base, {"artifact_id": first.id, "notes": "请复核"}).json()
    assert asked["state"] == "待批准" and li.list_releases(project.id).current is None
    tagged = li.http.post(
        f"/projects/{project.id}/runs/{second.run_id}/artifacts/{second.id}/tag",
        json={"tag": "发布"},
        headers=li.headers,
    )
    assert tagged.status_code == 202 and [t["value"] for t in tagged.json()["tags"]] == []

    own = post(li, f"{base}/{asked['id']}/approve")
    assert own.status_code == 403 and "另一位" in own.json()["detail"]
    approved = post(zhang, f"{base}/{asked['id']}/approve", {"notes": "指标复核通过"}).json()
    assert (approved["state"], approved["decided_by"], approved["decision_notes"]) == ("生效", "小张", "指标复核通过")

    releases = li.list_releases(project.id)
    assert releases.approval_required and releases.current.id == asked["id"]
    pending = releases.pending[0]
    rejected = post(zhang, f"{base}/{pending.id}/reject", {"notes": "数据集不对"}).json()
    assert rejected["state"] == "已拒绝" and li.list_releases(project.id).current.id == asked["id"]
    again = post(zhang, f"{base}/{pending.id}/approve")
    assert again.status_code == 409 and "不在等待批准" in again.json()["detail"]
    actions = [e.action for e in li.audit_trail(project.id) if "发布" in e.action]
    assert actions == ["拒绝发布", "批准发布", "申请发布", "申请发布"]


def test_only_an_admin_withdraws_the_current_release_and_it_stays_in_the_history(team):
    clients, _, project, (first, _) = team
    li, admin = clients["小李"], clients["管理员"]
    release = post(li, f"/projects/{project.id}/releases", {"artifact_id": first.id}).json()

    by_owner = post(li, f"/projects/{project.id}/releases/withdraw")
    assert by_owner.status_code == 403 and "管理员" in by_owner.json()["detail"]
    archive = refused(lambda: li.tag_artifact(project.id, first.run_id, first.id, "归档"))
    assert archive.status_code == 403
    candidate = refused(lambda: li.tag_artifact(project.id, first.run_id, first.id, "候选"))
    assert candidate.status_code == 409 and "当前发布" in candidate.detail

    withdrawn = post(admin, f"/projects/{project.id}/releases/withdraw", {"notes": "发现数据泄漏"}).json()
    assert (withdrawn["id"], withdrawn["state"], withdrawn["withdrawn_by"]) == (release["id"], "已撤销", "管理员")
    releases = li.list_releases(project.id)
    assert releases.current is None and releases.history[0].frozen
    assert post(admin, f"/projects/{project.id}/releases/withdraw").status_code == 409
    trail = [e for e in li.audit_trail(project.id) if e.action == "撤销发布"]
    assert len(trail) == 1 and "发现数据泄漏" in trail[0].details


def test_what_cannot_be_released_is_refused_in_chinese(team):
    clients, root, project, (first, _) = team
    li = clients["小李"]
    base = f"/projects/{project.id}/releases"
    live = li.create_run(project.id, "qwen-7b", "语料")
    config = clients["管理员"].register_artifact(
        project.id, live.id, "config", "运行配置", str(root / project.id / live.id / "config.json")
    )
    not_a_checkpoint = post(li, base, {"artifact_id": config.id})
    assert not_a_checkpoint.status_code == 422 and "只能发布检查点" in not_a_checkpoint.json()["detail"]
    assert post(li, base, {"artifact_id": "ckpt_000000000000"}).status_code == 404
    assert post(li, base + "/rollback", {"release_id": "rel_000000000000"}).status_code == 404
    assert post(clients["小张"], base, {"artifact_id": first.id}).status_code == 403  # a member is not the owner
    assert li.list_releases(project.id).history == []


def test_retention_never_reaches_a_released_checkpoint_or_its_frozen_copy(team):
    clients, root, project, _ = team
    li, admin = clients["小李"], clients["管理员"]
    run = li.create_run(project.id, "qwen-7b", "语料", name="保留策略")
    checkpoints = {}
    for step in (50, 100, 200):
        files = {"state.json": f'{{"step": {step}}}'.encode()}
        checkpoints[step] = stored_checkpoint(admin, root, project.id, run.id, step, files)
    admin.report(project.id, run.id, status="运行中")
    admin.report(project.id, run.id, status="已完成")
    release = post(li, f"/projects/{project.id}/releases", {"artifact_id": checkpoints[100].id}).json()
    li.set_retention(project.id, 1)

    preview = li.retention_preview(project.id)
    assert [item.artifact_id for item in preview.items] == [checkpoints[50].id]  # the released one is never a candidate
    for item in preview.items:  # what the retention flow does with each candidate
        admin.delete_artifact(project.id, run.id, item.artifact_id, dry_run=False)

    assert not Path(checkpoints[50].path).exists() and Path(checkpoints[100].path).is_dir()
    frozen = root / "releases" / project.id / release["id"]
    assert next(frozen.rglob("state.json")).read_bytes() == b'{"step": 100}'
    assert li.list_releases(project.id).current.id == release["id"]
