"""Artifact downloads over HTTP: streamed files and folder checkpoints (as tar), byte ranges that resume, 404/410
in Chinese, paths kept inside the run's folder, tokens and short-lived signed links; the SDK resumes a partial file.

One API process of this module's own, with authentication on and a local artifact root."""

import io
import os
import tarfile
from pathlib import Path

import httpx
import pytest

from flows.artifact_io import ArtifactWriter
from ltm import ApiError, Client, checksums
from tests.conftest import ApiProcess
from tests.helpers import cli_token, unique


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("download") / "home"
    root = home.parent / "artifacts"
    admin_token = cli_token(home, "管理员", "admin")
    api = ApiProcess(home, LTM_AUTH="true", LTM_ARTIFACT_ROOT=str(root)).start()
    admin = Client(api.url, token=admin_token)
    yield api, admin, root
    admin.close()
    api.stop()


@pytest.fixture
def admin(server) -> Client:
    return server[1]


@pytest.fixture
def run(server):
    _, admin, root = server
    project = admin.create_project(unique(), "小李")
    run = admin.create_run(project.id, "qwen-7b", "语料")
    return run, ArtifactWriter(str(root), project.id, run.id)


def register(admin: Client, run, path: str, name: str = "第 200 步检查点", type: str = "checkpoint"):
    return admin.register_artifact(run.project_id, run.id, type=type, name=name, path=path, step=200)


def url(run, artifact_id: str) -> str:
    return f"/projects/{run.project_id}/runs/{run.id}/artifacts/{artifact_id}/download"


def get(admin: Client, path: str, **kwargs) -> httpx.Response:
    headers = {**admin.headers, **kwargs.pop("headers", {})}
    return admin.http.get(path, headers=headers, **kwargs)


def single_file(
    run, writer: ArtifactWriter, size: int = 3 * 1024 * 1024 + 7, name: str = "model.safetensors"
) -> tuple[str, bytes]:
    payload = os.urandom(size)
    path = Path(writer.run_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return str(path), payload


def test_a_file_streams_whole_with_length_etag_and_range_support(admin, run):
    run, writer = run
    path, payload = single_file(run, writer)
    artifact = register(admin, run, path)

    whole = get(admin, url(run, artifact.id))

    assert whole.status_code == 200
    assert whole.content == payload
    assert whole.headers["content-length"] == str(len(payload))
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["etag"].startswith('"')
    assert "model.safetensors" in whole.headers["content-disposition"]


def test_ranges_give_206_slices_and_416_past_the_end(admin, run):
    run, writer = run
    path, payload = single_file(run, writer, size=10_000)
    target = url(run, register(admin, run, path).id)

    middle = get(admin, target, headers={"Range": "bytes=100-199"})
    tail = get(admin, target, headers={"Range": "bytes=-10"})
    rest = get(admin, target, headers={"Range": "bytes=9990-"})
    beyond = get(admin, target, headers={"Range": "bytes=10000-"})

    assert (middle.status_code, middle.content) == (206, payload[100:200])
    assert middle.headers["content-range"] == "bytes 100-199/10000"
    assert middle.headers["content-length"] == "100"
    assert (tail.status_code, tail.content) == (206, payload[-10:])
    assert (rest.status_code, rest.content) == (206, payload[9990:])
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == "bytes */10000"
    assert "超出了工件" in beyond.json()["detail"]


def test_if_range_with_another_etag_sends_the_whole_file(admin, run):
    run, writer = run
    path, payload = single_file(run, writer, size=5_000)
    target = url(run, register(admin, run, path).id)

    changed = get(admin, target, headers={"Range": "bytes=100-", "If-Range": '"not-the-etag"'})

    assert (changed.status_code, changed.content) == (200, payload)


def test_a_folder_checkpoint_downloads_as_a_tar_of_its_files_and_resumes_by_ranges(admin, run):
    run, writer = run
    files = {"model.bin": os.urandom(70_001), "optimizer.bin": os.urandom(513), "state.json": b'{"step": 200}'}
    written = writer.write_checkpoint("step_200", files)
    target = url(run, register(admin, run, written.path).id)

    whole = get(admin, target)
    pieces = [get(admin, target, headers={"Range": f"bytes={a}-{b}"}) for a, b in ((0, 999), (1000, 50_000))]
    pieces.append(get(admin, target, headers={"Range": "bytes=50001-"}))

    assert whole.status_code == 200
    assert whole.headers["content-type"] == "application/x-tar"
    assert whole.headers["content-length"] == str(len(whole.content))
    assert "step_200.ckpt.tar" in whole.headers["content-disposition"]
    with_manifest = {**files, checksums.MANIFEST: checksums.manifest_bytes(written.checksums)}
    with tarfile.open(fileobj=io.BytesIO(whole.content)) as archive:
        assert {m.name: archive.extractfile(m).read() for m in archive.getmembers()} == {
            f"step_200.ckpt/{name}": data for name, data in with_manifest.items()
        }
    assert [p.status_code for p in pieces] == [206, 206, 206]
    assert b"".join(p.content for p in pieces) == whole.content
    assert len({p.headers["etag"] for p in pieces} | {whole.headers["etag"]}) == 1


def test_one_file_of_a_folder_and_an_unknown_one(admin, run):
    run, writer = run
    written = writer.write_checkpoint("step_300", {"model.bin": b"weights", "state.json": b"{}"})
    target = url(run, register(admin, run, written.path).id)

    one = get(admin, target, params={"file": "model.bin"})
    missing = get(admin, target, params={"file": "../secrets"})

    assert (one.status_code, one.content) == (200, b"weights")
    assert missing.status_code == 404
    assert "不在工件" in missing.json()["detail"] and "model.bin" in missing.json()["detail"]


def test_gone_files_answer_410_and_unknown_artifacts_404_in_chinese(admin, run):
    run, writer = run
    written = writer.write_checkpoint("step_400", {"model.bin": b"x"})
    artifact = register(admin, run, written.path)
    for entry in Path(written.path).iterdir():
        entry.unlink()
    Path(written.path).rmdir()

    gone = get(admin, url(run, artifact.id))
    unknown = get(admin, url(run, "ckpt_000000000000"))

    assert gone.status_code == 410
    assert "文件已不存在" in gone.json()["detail"]
    assert unknown.status_code == 404
    assert "不存在" in unknown.json()["detail"]


def test_a_symlink_out_of_the_run_folder_is_not_served(admin, run, tmp_path):
    run, writer = run
    secret = tmp_path / "secret.txt"
    secret.write_text("机密")
    folder = Path(writer.run_dir) / "linked.ckpt"
    folder.mkdir(parents=True)
    (folder / "model.bin").write_bytes(b"ok")
    (folder / "leak.txt").symlink_to(secret)
    target = url(run, register(admin, run, str(folder)).id)

    whole = get(admin, target)
    one = get(admin, target, params={"file": "leak.txt"})

    assert whole.status_code == one.status_code == 409
    assert "不能下载" in whole.json()["detail"]
    assert "机密".encode() not in whole.content + one.content


def test_tokens_and_signed_links_decide_who_downloads(server, admin, run):
    api, _, _ = server
    run, writer = run
    path, payload = single_file(run, writer, size=2_000)
    artifact = register(admin, run, path)
    other = register(admin, run, single_file(run, writer, size=10, name="other.bin")[0], name="其他")

    anonymous = httpx.get(api.url + url(run, artifact.id))
    links = {link.artifact_id: link.url for link in admin.download_links(run.project_id, run.id).items}
    signed = httpx.get(api.url + links[artifact.id])
    tampered = httpx.get(api.url + links[artifact.id][:-3] + "abc")
    borrowed = httpx.get(api.url + url(run, other.id) + "?" + links[artifact.id].split("?")[1])

    assert anonymous.status_code == 401
    assert (signed.status_code, signed.content) == (200, payload)
    assert tampered.status_code == borrowed.status_code == 403
    assert "下载链接" in tampered.json()["detail"]


def test_private_projects_stay_hidden_from_downloads(server, admin, run):
    api, _, _ = server
    run, writer = run
    path, _ = single_file(run, writer, size=100)
    artifact = register(admin, run, path)
    admin.update_project(run.project_id, visibility="私有")
    outsider = Client(api.url, token=admin.create_token(unique("路人"), "member").token)

    with pytest.raises(ApiError) as refused:
        outsider.download_links(run.project_id, run.id)
    direct = get(outsider, url(run, artifact.id))

    assert refused.value.status_code == 404
    assert direct.status_code == 404


def test_the_sdk_resumes_a_partial_download(server, admin, run, tmp_path):
    api, _, _ = server
    run, writer = run
    path, payload = single_file(run, writer, size=1_500_000)
    artifact = register(admin, run, path)
    statuses = []
    counting = Client(
        http=httpx.Client(base_url=api.url, event_hooks={"response": [lambda r: statuses.append(r.status_code)]}),
        token=admin.headers["Authorization"].split()[1],
    )
    first = counting.download_artifact(run.project_id, run.id, artifact.id, tmp_path / "first.bin")
    etag = get(admin, url(run, artifact.id), headers={"Range": "bytes=0-0"}).headers["etag"]
    target = tmp_path / "resumed.bin"
    (tmp_path / "resumed.bin.part").write_bytes(payload[:600_000])
    (tmp_path / "resumed.bin.part.etag").write_text(etag)

    resumed = counting.download_artifact(run.project_id, run.id, artifact.id, target)

    assert first.read_bytes() == payload
    assert resumed == target and target.read_bytes() == payload
    assert statuses == [200, 206]
    assert not (tmp_path / "resumed.bin.part").exists() and not (tmp_path / "resumed.bin.part.etag").exists()


def test_the_sdk_starts_over_when_the_artifact_changed(admin, run, tmp_path):
    run, writer = run
    path, payload = single_file(run, writer, size=50_000)
    artifact = register(admin, run, path)
    (tmp_path / "x.bin.part").write_bytes(b"stale bytes of an older file")
    (tmp_path / "x.bin.part.etag").write_text('"older"')

    done = admin.download_artifact(run.project_id, run.id, artifact.id, tmp_path / "x.bin")

    assert done.read_bytes() == payload


def test_the_sdk_raises_the_chinese_refusal(admin, run, tmp_path):
    run, _ = run
    with pytest.raises(ApiError) as refused:
        admin.download_artifact(run.project_id, run.id, "ckpt_000000000000", tmp_path / "none.bin")
    assert refused.value.status_code == 404 and "不存在" in refused.value.detail
    assert not (tmp_path / "none.bin").exists()
