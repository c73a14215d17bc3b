"""Checkpoint content hashes through the real API: recorded as written, checked before a resume, a 发布 and a
download; a flipped byte is refused in Chinese, marks the checkpoint 已损坏 and deletes nothing."""

import hashlib
from pathlib import Path

import pytest

from ltm import ApiError, Client
from ltm.flows.artifact_io import ArtifactWriter
from tests.conftest import ApiProcess
from tests.helpers import stored_checkpoint, unique

FILES = {"state.json": b'{"step": 20}', "weights.bin": bytes(range(256)) * 64}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("integrity") / "home"
    root = home.parent / "artifacts"
    api = ApiProcess(home, LTM_ARTIFACT_ROOT=str(root)).start()
    with Client(api.url) as client:
        yield client, root
    api.stop()


@pytest.fixture
def checkpoint(server):
    client, root = server
    project = client.create_project(unique("校验"), owner="小李")
    run = client.create_run(project.id, "qwen-7b", "语料", hyperparameters={"num_epochs": 2, "steps_per_epoch": 10})
    artifact = stored_checkpoint(client, root, project.id, run.id, 20, FILES)
    return client, run, artifact, Path(artifact.path)


def flip_a_byte(path: Path) -> bytes:
    original = path.read_bytes()
    changed = bytearray(original)
    changed[1000] ^= 0x01
    path.write_bytes(bytes(changed))
    return original


def refusal(call) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value


def test_the_checksums_written_with_a_checkpoint_are_stored_and_verify(checkpoint):
    client, run, artifact, _ = checkpoint
    assert artifact.checksums == {name: hashlib.sha256(data).hexdigest() for name, data in FILES.items()}
    verified = client.verify_artifact(run.project_id, run.id, artifact.id)
    assert verified.corrupted_at is None and verified.corruption is None


def test_a_flipped_byte_refuses_resume_release_and_download_and_marks_the_checkpoint(checkpoint):
    client, run, artifact, folder = checkpoint
    original = flip_a_byte(folder / "weights.bin")

    resumed = refusal(lambda: client.resume_run(run.project_id, run.id, artifact.id, hyperparameters={"num_epochs": 3}))
    assert resumed.status_code == 409
    assert "已损坏" in resumed.detail and "weights.bin 的 SHA-256 与写入时不同" in resumed.detail
    assert [r.id for r in client.list_runs(run.project_id)] == [run.id]  # no run was created

    released = refusal(lambda: client.tag_artifact(run.project_id, run.id, artifact.id, "发布", "上线"))
    assert released.status_code == 409 and "weights.bin" in released.detail
    assert client.list_releases(run.project_id).current is None

    download = client.http.get(f"/projects/{run.project_id}/runs/{run.id}/artifacts/{artifact.id}/download")
    assert download.status_code == 409 and "已损坏" in download.json()["detail"]

    marked = next(a for a in client.list_artifacts(run.project_id, run.id) if a.id == artifact.id)
    assert marked.corrupted_at is not None and "weights.bin" in marked.corruption
    assert (folder / "weights.bin").exists() and (folder / "state.json").read_bytes() == FILES["state.json"]
    trail = [e for e in client.audit_trail(run.project_id) if e.action == "发现检查点损坏"]
    assert len(trail) == 1 and "weights.bin" in trail[0].details  # found three times, recorded once

    (folder / "weights.bin").write_bytes(original)
    repaired = client.verify_artifact(run.project_id, run.id, artifact.id)
    assert repaired.corrupted_at is None and repaired.corruption is None
    assert client.resume_run(run.project_id, run.id, artifact.id, hyperparameters={"num_epochs": 3}).resumed_from


def test_a_missing_or_added_file_is_named_and_a_gone_checkpoint_is_410(checkpoint):
    client, run, artifact, folder = checkpoint
    (folder / "extra.bin").write_bytes(b"x")
    added = refusal(lambda: client.verify_artifact(run.project_id, run.id, artifact.id))
    assert added.status_code == 409 and "多了写入时没有的文件 extra.bin" in added.detail

    (folder / "extra.bin").unlink()
    (folder / "state.json").unlink()
    missing = refusal(lambda: client.verify_artifact(run.project_id, run.id, artifact.id))
    assert missing.status_code == 409 and "文件 state.json 不见了" in missing.detail

    for file in folder.iterdir():
        file.unlink()
    folder.rmdir()
    gone = refusal(lambda: client.verify_artifact(run.project_id, run.id, artifact.id))
    assert gone.status_code == 410 and "已不存在" in gone.detail


def test_a_checkpoint_registered_without_checksums_has_nothing_to_compare(server):
    client, root = server
    project = client.create_project(unique("旧检查点"), owner="小李")
    run = client.create_run(project.id, "qwen-7b", "语料")
    written = ArtifactWriter(str(root), project.id, run.id).write_checkpoint("old", FILES)
    artifact = client.register_artifact(project.id, run.id, "checkpoint", "旧检查点", written.path, step=1)
    flip_a_byte(Path(written.path) / "weights.bin")
    assert artifact.checksums is None
    assert client.verify_artifact(project.id, run.id, artifact.id).corrupted_at is None


def test_bad_checksums_are_a_422_naming_the_field(server):
    client, root = server
    project = client.create_project(unique("坏校验和"), owner="小李")
    run = client.create_run(project.id, "qwen-7b", "语料")
    path = str(root / project.id / run.id / "c.ckpt")
    answer = client.http.post(
        f"/projects/{project.id}/runs/{run.id}/artifacts",
        json={"type": "checkpoint", "name": "c", "path": path, "checksums": {"state.json": "不是十六进制"}},
    )
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "checksums.state.json"
