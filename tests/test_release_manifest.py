"""A checkpoint's manifest through the real API process, on real files: the checkpoint's SHA-256, the run, the lineage
back through resumed runs (a deleted parent listed as missing), the dataset fingerprint, the environment the flow
reported, the hyperparameters and the final evaluation metrics; downloadable as JSON, shown in the console, and the
environment reported by real training flows under `ltm up`."""

import hashlib
import json
import platform
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from importlib import metadata
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ltm import ApiError, Client
from ltm.api import release_manifest
from ltm.environment import describe
from ltm.models import MetricBatch, MetricPoint, RunStatus
from tests.conftest import ApiProcess, wait_until
from tests.helpers import stored_checkpoint, unique

CORPUS = b'{"text": "\xe7\xa5\x9e\xe7\xbb\x8f\xe7\xbd\x91\xe7\xbb\x9c"}\n' * 200
BASE = {"num_epochs": 3, "steps_per_epoch": 10, "learning_rate": 0.001, "seed": 7}


@dataclass
class Server:
    client: Client
    artifacts: Path
    datasets: Path


@dataclass
class Link:
    run: object
    checkpoint: object
    files: dict[str, bytes]
    environment: dict


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("manifest")
    artifacts, datasets = base / "artifacts", base / "datasets"
    datasets.mkdir()
    api = ApiProcess(base / "home", LTM_ARTIFACT_ROOT=str(artifacts), LTM_DATASET_ROOTS=str(datasets)).start()
    with Client(api.url) as client:
        yield Server(client, artifacts, datasets)
    api.stop()


def send_metrics(client: Client, run, points: list[tuple[str, int, float]]) -> None:
    now = datetime.now(timezone.utc)
    batch = MetricBatch(
        batch_id=uuid.uuid4().hex,
        points=[MetricPoint(name=name, step=step, value=value, timestamp=now) for name, step, value in points],
    )
    client.send_metrics(run.project_id, run.id, batch)


def checkpoint(server: Server, run, step: int, files: dict[str, bytes]):
    return stored_checkpoint(server.client, server.artifacts, run.project_id, run.id, step, files)


def finish(client: Client, run) -> None:
    client.report(run.project_id, run.id, status=RunStatus.RUNNING, flow_run_id=str(uuid.uuid4()))
    client.report(run.project_id, run.id, status=RunStatus.COMPLETED)


@pytest.fixture(scope="module")
def chain(server):
    """A run, a run resumed from its step-10 checkpoint, and a run resumed from that one's step-20 checkpoint, each
    reporting its environment, metrics and a checkpoint; the dataset is a file under the dataset root."""
    client = server.client
    corpus = server.datasets / "摘要语料" / "train.jsonl"
    corpus.parent.mkdir(parents=True, exist_ok=True)
    corpus.write_bytes(CORPUS)
    project = client.create_project(unique("清单"), owner="小李", task_type="文本摘要")
    first = client.create_run(project.id, "qwen-7b", str(corpus), name="基线", hyperparameters=BASE)
    environments = [describe([]), describe(["sim-host-1-A100-0"], "A100"), describe(["sim-host-1-A100-1"], "A100")]
    links = []
    for index, (step, environment) in enumerate(zip((10, 20, 25), environments)):
        if index == 0:
            run = first
        else:
            parent = links[-1]
            run = client.resume_run(
                project.id,
                parent.run.id,
                parent.checkpoint.id,
                name=f"续训 {index}",
                hyperparameters={"learning_rate": 0.001 / 2**index},
            )
        client.report(project.id, run.id, environment=environment)
        files = {"state.json": json.dumps({"step": step}).encode(), "weights.bin": bytes([index]) * 4096}
        links.append(Link(run, checkpoint(server, run, step, files), files, environment))
    last = links[-1].run
    send_metrics(
        client,
        last,
        [("loss", step, 3.0 - step / 100) for step in range(21, 31)]
        + [("eval_loss", 25, 2.41), ("eval_rouge_l", 25, 31.5), ("val_accuracy", 22, 0.61)]
        + [("eval_loss", 30, 2.37), ("eval_rouge_l", 30, 32.0)],
    )
    send_metrics(client, links[0].run, [("eval_loss", 10, 2.9)])
    return links


def manifest_of(client: Client, link: Link):
    return client.checkpoint_manifest(link.run.project_id, link.run.id, link.checkpoint.id)


def test_the_manifest_names_the_checkpoint_and_its_run(server, chain):
    last = chain[-1]
    before = datetime.now(timezone.utc)
    manifest = manifest_of(server.client, last)
    run = server.client.get_run(last.run.project_id, last.run.id)

    assert before - timedelta(seconds=1) <= manifest.created_at <= datetime.now(timezone.utc)
    assert manifest.ltm_version == metadata.version("ltm") and manifest.project_id == run.project_id
    ckpt = manifest.checkpoint
    assert (ckpt.id, ckpt.name, ckpt.step, ckpt.path) == (
        last.checkpoint.id,
        "第 25 步检查点",
        25,
        last.checkpoint.path,
    )
    assert ckpt.size_bytes == sum(f.stat().st_size for f in Path(last.checkpoint.path).iterdir())  # manifest included
    assert ckpt.checksums == {name: hashlib.sha256(data).hexdigest() for name, data in last.files.items()}
    assert ckpt.corrupted_at is None

    assert (manifest.run.id, manifest.run.name, manifest.run.model) == (run.id, "续训 2", "qwen-7b")
    assert manifest.run.dataset == run.dataset and manifest.run.trainer == "simulated"
    assert manifest.run.entrypoint is None and manifest.run.code_version is None
    assert manifest.run.hyperparameters == run.hyperparameters
    assert manifest.run.hyperparameters["learning_rate"] == 0.00025 and manifest.run.hyperparameters["seed"] == 7
    assert manifest.run.start_step == 20


def test_the_environment_is_the_one_the_run_reported(server, chain):
    manifest = manifest_of(server.client, chain[-1])
    environment = manifest.run.environment
    assert environment == chain[-1].environment
    assert environment["python"] == {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
    }
    assert environment["ltm"] == metadata.version("ltm")
    assert environment["device_type"] == "A100" and environment["devices"] == ["A100"]
    assert environment["packages"]["pydantic"] == metadata.version("pydantic")
    assert list(environment["packages"]) == sorted(environment["packages"], key=str.lower)


def test_the_lineage_goes_back_through_each_resumed_checkpoint_to_the_first_run(server, chain):
    lineage = manifest_of(server.client, chain[-1]).lineage
    first, second, third = chain

    assert [entry.run_id for entry in lineage] == [third.run.id, second.run.id, first.run.id]
    assert [entry.name for entry in lineage] == ["续训 2", "续训 1", "基线"]
    assert [entry.start_step for entry in lineage] == [20, 10, 0]
    assert [(e.resumed_from.id, e.resumed_from.name, e.resumed_from.step) for e in lineage[:2]] == [
        (second.checkpoint.id, "第 20 步检查点", 20),
        (first.checkpoint.id, "第 10 步检查点", 10),
    ]
    assert lineage[2].resumed_from is None
    assert not any(entry.missing for entry in lineage)

    assert [entry.run_id for entry in manifest_of(server.client, first).lineage] == [first.run.id]


def test_the_dataset_file_under_a_dataset_root_is_fingerprinted(server, chain):
    dataset = manifest_of(server.client, chain[-1]).dataset
    digest = hashlib.sha256(CORPUS).hexdigest()

    assert dataset.kind == "files" and dataset.dataset == chain[-1].run.dataset
    assert dataset.location == str((server.datasets / "摘要语料" / "train.jsonl").resolve())
    assert [(f.path, f.size_bytes, f.sha256) for f in dataset.files] == [("train.jsonl", len(CORPUS), digest)]
    assert dataset.sha256 == hashlib.sha256(f"{digest}  train.jsonl\n".encode()).hexdigest()
    assert (dataset.file_count, dataset.total_bytes, dataset.hashed_bytes) == (1, len(CORPUS), len(CORPUS))
    assert dataset.complete and dataset.note is None


def test_a_dataset_folder_a_bare_name_and_a_vanished_file(server):
    client = server.client
    project = client.create_project(unique("数据集指纹"), owner="小李")
    folder = server.datasets / unique("语料目录")
    (folder / "part").mkdir(parents=True)
    contents = {"b.txt": b"second", "a.txt": b"first", "part/c.txt": b"third"}
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    lone = server.datasets / unique("单个文件")
    lone.write_bytes(b"lonely")

    def fingerprint(dataset: str):
        run = client.create_run(project.id, "qwen-7b", dataset)
        ckpt = checkpoint(server, run, 1, {"state.json": b"{}"})
        return client.checkpoint_manifest(project.id, run.id, ckpt.id).dataset

    listed = fingerprint(str(folder))
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in sorted(contents.items())}
    assert [(f.path, f.sha256) for f in listed.files] == list(digests.items())
    listing = "".join(f"{digest}  {name}\n" for name, digest in digests.items())
    assert listed.sha256 == hashlib.sha256(listing.encode()).hexdigest() and listed.file_count == 3

    named = fingerprint("中文科技论文语料")
    assert named.model_dump() == {"kind": "name", "name": "中文科技论文语料"}

    run = client.create_run(project.id, "qwen-7b", str(lone))
    ckpt = checkpoint(server, run, 1, {"state.json": b"{}"})
    lone.unlink()
    gone = client.checkpoint_manifest(project.id, run.id, ckpt.id).dataset
    assert (gone.kind, gone.dataset, gone.reason) == ("unavailable", str(lone), "数据集文件已不存在")


def test_hashing_a_dataset_stops_at_the_byte_and_file_caps_and_says_so(tmp_path):
    root = tmp_path / "datasets"
    (root / "big").mkdir(parents=True)
    for name in ("a.bin", "b.bin", "c.bin"):
        (root / "big" / name).write_bytes(name.encode() * 4)  # 20 bytes each

    capped = release_manifest.dataset_fingerprint(str(root / "big"), [str(root)], max_bytes=45)
    assert [f["sha256"] is not None for f in capped["files"]] == [True, True, False]
    assert capped["hashed_bytes"] == 40 and capped["total_bytes"] == 60
    assert not capped["complete"] and capped["sha256"] is None and "SHA-256" in capped["note"]

    few = release_manifest.dataset_fingerprint(str(root / "big"), [str(root)], max_files=2)
    assert [f["path"] for f in few["files"]] == ["a.bin", "b.bin"] and few["file_count"] == 3
    assert not few["complete"] and few["sha256"] is None

    whole = release_manifest.dataset_fingerprint(str(root / "big"), [str(root)])
    assert whole["complete"] and whole["sha256"] is not None and whole["note"] is None


def test_final_metrics_are_the_evaluation_values_as_of_the_checkpoint_step(server, chain):
    metrics = manifest_of(server.client, chain[-1]).final_metrics
    assert metrics.step == 25
    assert metrics.values == {"eval_loss": 2.41, "eval_rouge_l": 31.5, "val_accuracy": 0.61}  # not step 30, no loss
    assert "eval_" in metrics.rule and "第 25 步" in metrics.rule and metrics.objective is None

    assert manifest_of(server.client, chain[0]).final_metrics.values == {"eval_loss": 2.9}
    assert manifest_of(server.client, chain[1]).final_metrics.values == {}


def test_the_manifest_downloads_as_a_json_attachment(server, chain):
    last = chain[-1]
    path = f"/projects/{last.run.project_id}/runs/{last.run.id}/artifacts/{last.checkpoint.id}/manifest"
    plain = server.client.http.get(path)
    download = server.client.http.get(path, params={"download": "true"})

    assert download.status_code == 200 and download.headers["content-type"].startswith("application/json")
    assert download.headers["content-disposition"] == f"attachment; filename=manifest-{last.checkpoint.id}.json"
    assert "content-disposition" not in plain.headers
    saved, answered = download.json(), plain.json()
    assert saved.pop("created_at") and answered.pop("created_at")
    assert saved == answered and saved["checkpoint"]["checksums"] == last.checkpoint.checksums


def test_unknown_ids_are_404_and_other_artifacts_422(server, chain):
    client = server.client
    first, _, last = chain
    project_id = last.run.project_id

    def status(run_id: str, artifact_id: str, project: str = project_id) -> tuple[int, str]:
        with pytest.raises(ApiError) as caught:
            client.checkpoint_manifest(project, run_id, artifact_id)
        return caught.value.status_code, caught.value.detail

    assert status(last.run.id, "ckpt_doesnotexist")[0] == 404
    assert status(last.run.id, first.checkpoint.id)[0] == 404  # another run's checkpoint
    assert status("run_doesnotexist", last.checkpoint.id)[0] == 404
    assert status(last.run.id, last.checkpoint.id, "proj_doesnotexist")[0] == 404

    config = client.register_artifact(
        project_id, last.run.id, "config", "运行配置", f"{server.artifacts}/{project_id}/{last.run.id}/config.json"
    )
    code, detail = status(last.run.id, config.id)
    assert code == 422 and "只有检查点" in detail


def test_a_deleted_parent_run_is_listed_as_missing(server):
    client = server.client
    project = client.create_project(unique("断链"), owner="小李")
    parent = client.create_run(project.id, "qwen-7b", "语料", name="原运行")
    parent_checkpoint = checkpoint(server, parent, 10, {"state.json": b"{}"})
    child = client.resume_run(project.id, parent.id, parent_checkpoint.id, name="续训")
    child_checkpoint = checkpoint(server, child, 20, {"state.json": b"{}"})
    for run in (parent, child):
        finish(client, run)
    client.delete_run(project.id, parent.id, dry_run=False)

    lineage = client.checkpoint_manifest(project.id, child.id, child_checkpoint.id).lineage

    assert [(entry.run_id, entry.missing) for entry in lineage] == [(child.id, False), (parent.id, True)]
    assert lineage[0].resumed_from.model_dump() == {
        "id": parent_checkpoint.id,
        "name": None,
        "step": 10,
        "missing": True,
    }
    assert lineage[1].name is None and lineage[1].resumed_from is None


def test_describe_names_devices_and_drops_the_package_list_beyond_the_limit():
    cpu = describe([])
    assert cpu["device_type"] == "cpu" and cpu["devices"] == []
    assert cpu["torch"] == _installed("torch") and cpu["platform"]["system"] == platform.system()
    assert describe(["sim-gpu-host-2-A100-0", "sim-gpu-host-2-A100-1"], "A100")["devices"] == ["A100", "A100"]
    assert describe(["sim-h-H100-0", "sim-h-A10-1"], None)["device_type"] == "H100, A10"

    small = describe([], max_bytes=2048)
    assert small["packages"] is None and f"共 {len(cpu['packages'])} 个" in small["packages_note"]
    assert len(json.dumps(small, ensure_ascii=False).encode()) <= 2048


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


# Console


def _show(api_url: str, project_id: str, run_id: str, artifact_id: str) -> None:
    from ltm import Client
    from ltm.console.manifest import show_manifest

    with Client(api_url) as client:
        show_manifest(client, project_id, run_id, artifact_id)


def _frame(at: AppTest, column: str):
    return next(frame.value for frame in at.dataframe if column in frame.value.columns)


def test_the_console_shows_the_manifest_readably_with_a_download(server, chain):
    first, second, last = chain
    args = (server.client.base_url, last.run.project_id, last.run.id, last.checkpoint.id)

    at = AppTest.from_function(_show, args=args, default_timeout=30).run()

    assert not at.exception, [e.message for e in at.exception]
    markdown = [str(m.value) for m in at.markdown]
    assert (
        f"基线（{first.run.id}） → （第 10 步检查点，第 10 步） → 续训 1（{second.run.id}） → "
        f"（第 20 步检查点，第 20 步） → **续训 2（{last.run.id}）**"
    ) in markdown
    digest = hashlib.sha256(CORPUS).hexdigest()
    combined = hashlib.sha256(f"{digest}  train.jsonl\n".encode()).hexdigest()
    assert any(m.endswith(f"1 个文件，共 4.9 KB；合并 SHA-256 `{combined}`") for m in markdown), markdown
    assert "**代码版本**：未记录（训练器运行没有代码版本），训练器 simulated" in markdown
    assert [e.label for e in at.expander] == ["运行环境"]
    facts = _frame(at, "项目").set_index("项目")["取值"]
    assert facts["设备类型"] == "A100" and facts["ltm"] == metadata.version("ltm")
    packages = _frame(at, "包").set_index("包")["版本"]
    assert packages["pydantic"] == metadata.version("pydantic")
    assert _frame(at, "超参数").set_index("超参数")["取值"]["learning_rate"] == "0.00025"
    assert _frame(at, "指标").set_index("指标")["取值"].to_dict() == {
        "eval_loss": "2.41",
        "eval_rouge_l": "31.5",
        "val_accuracy": "0.61",
    }
    files = _frame(at, "大小")
    assert files["SHA-256"].tolist() == [digest]
    buttons = at.get("download_button")
    assert [button.proto.label for button in buttons] == ["下载清单（JSON）"]


def test_the_console_says_why_when_there_is_no_manifest(server, chain):
    last = chain[-1]
    args = (server.client.base_url, last.run.project_id, last.run.id, "ckpt_doesnotexist")
    at = AppTest.from_function(_show, args=args, default_timeout=30).run()
    assert not at.exception and [str(e.value) for e in at.error] == [
        f"未找到（404）：运行 {last.run.id} 的工件 ckpt_doesnotexist 不存在"
    ]


# Real flows under `ltm up`


@pytest.fixture(scope="module")
def system_client(ltm_system):
    with Client(ltm_system.api_url) as client:
        yield client


def wait_done(client: Client, run, timeout: float = 120):
    return wait_until(
        lambda: (r := client.get_run(run.project_id, run.id)).status.is_terminal and r,
        timeout=timeout,
        message=f"run {run.id} to end",
    )


def test_a_training_flow_reports_its_environment_and_its_checkpoint_has_a_manifest(system_client):
    project = system_client.create_project(unique("环境上报"), owner="测试", task_type="文本摘要")
    run = system_client.create_run(
        project.id, "m-7b", "语料", hyperparameters={"num_epochs": 1, "steps_per_epoch": 3, "step_seconds": 0}
    )

    done = wait_done(system_client, run)

    assert done.status == RunStatus.COMPLETED, done.message
    environment = done.environment
    assert environment["python"]["version"] == platform.python_version()
    assert environment["ltm"] == metadata.version("ltm") and environment["device_type"] == "cpu"
    assert environment["packages"]["prefect"] == metadata.version("prefect")
    final = next(a for a in done.artifacts if a.type.value == "checkpoint")
    manifest = system_client.checkpoint_manifest(project.id, run.id, final.id)
    assert manifest.run.environment == environment and manifest.checkpoint.checksums == final.checksums
    assert manifest.final_metrics.step == 3 and manifest.final_metrics.values == {
        name: value for name, value in done.metrics.items() if name.startswith("eval_")
    }
    assert manifest.dataset.model_dump() == {"kind": "name", "name": "语料"}


def test_a_script_run_reports_its_environment_and_code_version(system_client):
    project = system_client.create_project(unique("脚本环境"), owner="测试")
    run = system_client.create_run(
        project.id,
        "linear-8",
        "合成数据",
        entrypoint="python ddp_linear.py --steps 3 --save-every 3",
        source="tests/scripts",
        processes=1,
        hyperparameters={"seed": 5, "step_seconds": 0},
    )

    done = wait_done(system_client, run, timeout=180)

    assert done.status == RunStatus.COMPLETED, done.message
    assert done.environment["torch"] == metadata.version("torch") and done.environment["device_type"] == "cpu"
    final = next(a for a in done.artifacts if a.type.value == "checkpoint")
    manifest = system_client.checkpoint_manifest(project.id, run.id, final.id)
    assert manifest.run.code_version == done.code_version and manifest.run.code_version
    assert manifest.run.entrypoint == "python ddp_linear.py --steps 3 --save-every 3"
    assert manifest.run.environment == done.environment
