"""Attacks that once worked on main, replayed against a real API process with auth on (issue 12).

Each test plays the attacker with a real token of the role the attack needs and asserts the safe outcome:
the refusal, and that nothing the attacker aimed at was read, removed or changed.
"""

import os

import httpx
import pyarrow as pa
import pytest

from ltm import Client, arrow_batches
from ltm.models import RunStatus
from tests.conftest import ApiProcess
from tests.helpers import cli_token, unique


class Site:
    def __init__(self, base) -> None:
        self.base = base
        self.home, self.root, self.datasets, self.victim = (
            base / name for name in ("home", "artifacts", "datasets", "victim")
        )
        for folder in (self.root, self.datasets, self.victim):
            folder.mkdir(parents=True)
        (self.victim / "important.txt").write_text("别人的数据", encoding="utf-8")
        (self.datasets / "corpus.txt").write_text("允许的语料" * 100, encoding="utf-8")
        admin_token = cli_token(self.home, "管理员", "admin")
        self.api = ApiProcess(
            self.home, LTM_AUTH="true", LTM_ARTIFACT_ROOT=str(self.root), LTM_DATASET_ROOTS=str(self.datasets)
        ).start()
        self.admin = self.user(admin_token)
        self.tokens = {
            name: Client(self.api.url, token=admin_token).create_token(name, role).token
            for name, role in [("甲", "member"), ("乙", "member")]
        }

    def user(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.api.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def member(self, name: str) -> httpx.Client:
        return self.user(self.tokens[name])

    def project_and_run(self, http: httpx.Client, owner: str) -> tuple[str, str]:
        project = http.post("/projects", json={"name": unique(), "owner": owner}).json()
        run = http.post(f"/projects/{project['id']}/runs", json={"model": "m", "dataset": "语料"})
        assert run.status_code == 201, run.text
        return project["id"], run.json()["id"]

    def runner(self, http: httpx.Client, project_id: str, run_id: str) -> httpx.Client:
        """The run's own token, as its flow holds it: only a run's flow (or an admin) registers its artifacts."""
        issued = http.post(f"/projects/{project_id}/runs/{run_id}/token")
        assert issued.status_code == 201, issued.text
        return self.user(issued.json()["token"])

    def run_folder(self, project_id: str, run_id: str):
        folder = self.root / project_id / run_id
        folder.mkdir(parents=True, exist_ok=True)
        return folder


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    site = Site(tmp_path_factory.mktemp("attack"))
    yield site
    site.api.stop()


def artifacts_url(project_id: str, run_id: str) -> str:
    return f"/projects/{project_id}/runs/{run_id}/artifacts"


def register(http: httpx.Client, project_id: str, run_id: str, path: str, **fields) -> httpx.Response:
    return http.post(
        artifacts_url(project_id, run_id), json={"type": "checkpoint", "name": "c", "step": 1, "path": path, **fields}
    )


def test_chained_foreign_and_escaping_paths_are_refused_and_nothing_is_removed(site):
    """Item 1: `/folder::/../<root>/<project>/<run>/x` passed the old check and deleting it removed /folder."""
    http = site.member("甲")
    project_id, run_id = site.project_and_run(http, "甲")
    _, other_run = site.project_and_run(http, "甲")
    runner = site.runner(http, project_id, run_id)
    inside = f"{site.root}/{project_id}/{run_id}"
    (site.run_folder(project_id, run_id) / "link").symlink_to(site.victim)
    for path in [
        f"{site.victim}::/../../{inside}/x",
        f"{site.home}::{inside}/x",
        f"simplecache::{inside}/x",
        f"simplecache::file://{site.victim}",
        f"file://{site.victim}",
        f"{inside}/../../../victim",
        f"{site.root}/{project_id}/{other_run}/c.ckpt",
        f"{inside}/*",
        f"{inside}/link",
        f"{inside}/link/important.txt",
        f"file://localhost{inside}/x",
        "~/x",
    ]:
        response = register(runner, project_id, run_id, path)
        assert response.status_code == 422, (path, response.text)
        assert "path" in response.json()["detail"] and inside in response.json()["detail"]
    assert http.get(artifacts_url(project_id, run_id)).json()["items"] == []
    assert (site.victim / "important.txt").read_text(encoding="utf-8") == "别人的数据"
    assert (site.home / "ltm.duckdb").exists() and http.get(f"/projects/{project_id}").status_code == 200


def test_a_path_swapped_for_a_link_after_registering_is_not_removed(site):
    """Item 1: the path is checked again right before the files are removed, on what fsspec would open."""
    http = site.member("甲")
    project_id, run_id = site.project_and_run(http, "甲")
    checkpoint = site.run_folder(project_id, run_id) / "c.ckpt"
    checkpoint.mkdir()
    artifact = register(site.runner(http, project_id, run_id), project_id, run_id, str(checkpoint)).json()
    http.post(f"/projects/{project_id}/runs/{run_id}/cancel")
    checkpoint.rmdir()
    checkpoint.symlink_to(site.victim)

    response = http.delete(f"{artifacts_url(project_id, run_id)}/{artifact['id']}", params={"dry_run": "false"})
    assert response.status_code == 409, response.text
    assert "不在所属运行的目录" in response.json()["detail"]
    deleted = http.delete(f"/projects/{project_id}/runs/{run_id}", params={"dry_run": "false"})
    assert deleted.status_code == 409, deleted.text
    assert (site.victim / "important.txt").exists()
    assert [a["id"] for a in http.get(artifacts_url(project_id, run_id)).json()["items"]] == [artifact["id"]]


def test_another_projects_checkpoint_cannot_be_registered_or_resumed(site):
    """Item 3: a member took another project's checkpoint by registering its path on their own run."""
    owner, thief = site.member("甲"), site.member("乙")
    victim_project, victim_run = site.project_and_run(owner, "甲")
    victim_checkpoint = site.run_folder(victim_project, victim_run) / "c.ckpt"
    victim_checkpoint.mkdir()
    victim_runner = site.runner(owner, victim_project, victim_run)
    assert register(victim_runner, victim_project, victim_run, str(victim_checkpoint)).status_code == 201

    own_project, own_run = site.project_and_run(thief, "乙")
    own_runner = site.runner(thief, own_project, own_run)
    assert register(own_runner, own_project, own_run, str(victim_checkpoint)).status_code == 422
    swapped = site.run_folder(own_project, own_run) / "c.ckpt"
    swapped.mkdir()
    own = register(own_runner, own_project, own_run, str(swapped)).json()
    swapped.rmdir()
    swapped.symlink_to(victim_checkpoint)
    resumed = thief.post(f"/projects/{own_project}/runs/{own_run}/resume", params={"source_artifact_id": own["id"]})
    assert resumed.status_code == 409, resumed.text
    assert len(thief.get(f"/projects/{own_project}/runs").json()) == 1
    trail = site.admin.get(f"/projects/{victim_project}/audit").json()
    assert {entry["actor"] for entry in trail} == {"甲"}


def test_flow_run_id_is_claimed_once_and_cannot_be_pointed_elsewhere(site):
    """Item 4: copying another run's flow_run_id onto one's own run and cancelling it cancelled the other."""
    owner = site.member("甲")
    project_id, run_id = site.project_and_run(owner, "甲")
    http = site.runner(owner, project_id, run_id)
    url = f"/projects/{project_id}/runs/{run_id}"
    assert http.patch(url, json={"flow_run_id": "0f0e0d0c-0000-4000-8000-000000000001"}).status_code == 200
    assert http.patch(url, json={"flow_run_id": "0f0e0d0c-0000-4000-8000-000000000001"}).status_code == 200
    moved = http.patch(url, json={"flow_run_id": "0f0e0d0c-0000-4000-8000-000000000002"})
    assert moved.status_code == 409 and "flow_run_id 不能修改" in moved.json()["detail"]
    assert http.get(url).json()["flow_run_id"] == "0f0e0d0c-0000-4000-8000-000000000001"


def _vm_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def test_a_compressed_arrow_bomb_is_refused_before_it_is_decoded(site):
    """Item 5: ~10 KB of zstd-compressed Arrow decoded to hundreds of MB inside the API."""
    owner = site.member("甲")
    project_id, run_id = site.project_and_run(owner, "甲")
    http = site.runner(owner, project_id, run_id)
    rows = 30_000
    table = arrow_batches.log_table([0] * rows, ["INFO"] * rows, ["压" * 3000] * rows)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(
        sink, table.schema.with_metadata({b"batch_id": b"bomb"}), options=pa.ipc.IpcWriteOptions(compression="zstd")
    ) as writer:
        writer.write_table(table)
    bomb = sink.getvalue().to_pybytes()
    assert len(bomb) < 1024 * 1024 and table.nbytes > 250 * 1024 * 1024
    before = _vm_rss_mib(site.api.process.pid)

    response = http.post(
        f"/projects/{project_id}/runs/{run_id}/logs", content=bomb, headers={"Content-Type": arrow_batches.MEDIA_TYPE}
    )
    assert response.status_code == 413, response.text
    assert "解压后" in response.json()["detail"]
    assert _vm_rss_mib(site.api.process.pid) - before < 64

    small = arrow_batches.log_table([0], ["INFO"], ["压缩的小批次照常写入"])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(
        sink, small.schema.with_metadata({b"batch_id": b"small"}), options=pa.ipc.IpcWriteOptions(compression="lz4")
    ) as writer:
        writer.write_table(small)
    accepted = http.post(
        f"/projects/{project_id}/runs/{run_id}/logs",
        content=sink.getvalue().to_pybytes(),
        headers={"Content-Type": arrow_batches.MEDIA_TYPE},
    )
    assert accepted.status_code == 200, accepted.text
    logs = http.get(f"/projects/{project_id}/runs/{run_id}/logs").json()["items"]
    assert [line["message"] for line in logs] == ["压缩的小批次照常写入"]


def test_datasets_outside_the_roots_are_refused_at_creation(site):
    """Item 2: tiny-lm read any file or URL the worker could reach; now every trainer's run is checked."""
    http = site.member("甲")
    project_id, _ = site.project_and_run(http, "甲")
    for dataset in [
        "/proc/self/environ",
        f"{site.home}/ltm.duckdb",
        f"{site.datasets}/../victim/important.txt",
        f"file://{site.victim}/important.txt",
        f"simplecache::{site.datasets}/corpus.txt",
        f"{site.datasets}::{site.victim}/important.txt",
        "ftp://10.0.0.1:21/corpus.txt",
        "webhdfs://10.0.0.1:50070/corpus",
        f"{site.datasets}/*.txt",
        "../corpus.txt",
    ]:
        response = http.post(f"/projects/{project_id}/runs", json={"model": "m", "dataset": dataset})
        assert response.status_code == 422, (dataset, response.text)
        body = response.json()
        assert body["errors"][0]["field"] == "dataset" and str(site.datasets) in body["detail"]
        assert "No such file" not in body["detail"] and "Permission" not in body["detail"]
    for dataset in ["中文科技论文语料", "sample", f"{site.datasets}/corpus.txt", f"file://{site.datasets}/corpus.txt"]:
        response = http.post(f"/projects/{project_id}/runs", json={"model": "m", "dataset": dataset})
        assert response.status_code == 201, (dataset, response.text)
    for run in http.get(f"/projects/{project_id}/runs").json():
        assert run["status"] == RunStatus.QUEUED.value


def test_unauthorised_callers_learn_nothing_about_state(site):
    """Item 16: deleting an active run, its project or its artifact answered 409 (state) to a caller who may not
    delete at all."""
    owner, other = site.member("甲"), site.member("乙")
    project_id, run_id = site.project_and_run(owner, "甲")
    assert owner.put(f"/projects/{project_id}/members", json={"members": ["乙"]}).status_code == 200
    path = site.run_folder(project_id, run_id) / "c.ckpt"
    path.mkdir()
    artifact = register(site.runner(owner, project_id, run_id), project_id, run_id, str(path)).json()
    response = other.delete(f"{artifacts_url(project_id, run_id)}/{artifact['id']}", params={"dry_run": "false"})
    assert response.status_code == 403, response.text
    for url in (f"/projects/{project_id}/runs/{run_id}", f"/projects/{project_id}"):
        refused = other.delete(url, params={"dry_run": "false"})
        assert refused.status_code == 403 and "排队中" not in refused.text, refused.text
        told = owner.delete(url, params={"dry_run": "false"})  # the owner may delete, so learns why not now
        assert told.status_code == 409 and run_id in told.text, told.text
    assert path.exists() and os.listdir(path.parent) == ["c.ckpt"]
