"""A checkpoint's manifest: what it is and what produced it, as one JSON document (models.CheckpointManifest).

It names the checkpoint's files with the SHA-256 recorded as they were written, the run (model, dataset, trainer or
script, hyperparameters, code version, the environment its flow reported), the lineage back to the first run through
the checkpoints each run resumed from, a fingerprint of the dataset, and the final evaluation metrics. Nothing here
writes: a release stores the document it is given, and the manifest endpoint answers a fresh one.
"""

import hashlib
import posixpath
from datetime import datetime, timezone

from ltm import artifact_paths, checksums, datasets
from ltm.api.errors import not_found, unprocessable
from ltm.api.ids import ARTIFACT_KINDS, well_formed
from ltm.environment import package_version
from ltm.models import ArtifactType, CheckpointManifest
from ltm.settings import Settings
from ltm.store import artifacts as artifact_store
from ltm.store import lineage as lineage_store
from ltm.store import runs as run_store
from ltm.store import sweeps as sweep_store

MAX_DATASET_BYTES = 512 * 2**20  # hashed per manifest, in the API process; files beyond it are listed unhashed
MAX_DATASET_FILES = 1000
MAX_LINEAGE = 1000
EVALUATION_PREFIXES = ("eval_", "eval/", "val_", "val/", "validation_", "test_", "test/")


def checkpoint_of(db, run: dict, artifact_id: str) -> dict:
    """Artifact `artifact_id` of `run`; 404 when it is not the run's, 422 when it is not a checkpoint."""
    artifact = artifact_store.get(db, artifact_id) if well_formed(artifact_id, *ARTIFACT_KINDS) else None
    if artifact is None or artifact["run_id"] != run["id"]:
        raise not_found(f"运行 {run['id']} 的工件", artifact_id)
    if artifact["type"] != ArtifactType.CHECKPOINT.value:
        raise unprocessable(f"工件 {artifact_id} 的类型是 {artifact['type']}，只有检查点（checkpoint）有清单")
    return artifact


def manifest(db, root_url: str, artifact: dict, dataset_roots: list[str] | None = None) -> dict:
    """The manifest of checkpoint `artifact`, JSON-ready and checked against models.CheckpointManifest.

    `root_url` is the artifact root: the checkpoint's files are not read again, their SHA-256 are the ones recorded
    as written (api.integrity compares them). `dataset_roots` default to the configured ones (LTM_DATASET_ROOTS)."""
    run = run_store.get(db, artifact["run_id"])
    roots = Settings().dataset_root_urls if dataset_roots is None else dataset_roots
    document = {
        "created_at": datetime.now(timezone.utc),
        "ltm_version": package_version("ltm") or "unknown",
        "project_id": artifact["project_id"],
        "checkpoint": _checkpoint(artifact),
        "run": _run(run),
        "lineage": lineage(db, run),
        "dataset": dataset_fingerprint(run["dataset"], roots),
        "final_metrics": final_metrics(db, run, artifact["step"]),
    }
    return CheckpointManifest.model_validate(document).model_dump(mode="json")


def _checkpoint(artifact: dict) -> dict:
    keys = ("id", "name", "step", "path", "size_bytes", "created_at", "checksums", "corrupted_at", "corruption")
    return {key: artifact[key] for key in keys}


def _run(run: dict) -> dict:
    keys = (
        "id",
        "name",
        "status",
        "model",
        "dataset",
        "trainer",
        "entrypoint",
        "source",
        "processes",
        "hyperparameters",
        "resources",
        "code_version",
        "environment",
        "start_step",
        "current_step",
        "created_at",
        "finished_at",
    )
    return {key: run[key] for key in keys}


# Lineage


def lineage(db, run: dict) -> list[dict]:
    """`run`, then each parent run with the checkpoint its child resumed from, back to the first run; a parent that
    was deleted is listed as missing and ends the chain."""
    chain, seen = [], set()
    current = run
    while current is not None and current["id"] not in seen and len(chain) < MAX_LINEAGE:
        seen.add(current["id"])
        chain.append(_lineage_entry(db, current))
        parent_id = current["parent_run_id"]
        if parent_id is None:
            break
        current = run_store.get(db, parent_id)
        if current is None:
            chain.append({"run_id": parent_id, "missing": True})
    return chain


def _lineage_entry(db, run: dict) -> dict:
    keys = ("name", "status", "model", "dataset", "trainer", "start_step", "current_step", "code_version")
    return {"run_id": run["id"], **{key: run[key] for key in keys}, "resumed_from": _resumed_from(db, run)}


def _resumed_from(db, run: dict) -> dict | None:
    """The checkpoint `run` started from; one deleted since is missing, its step the run's start step."""
    if run["resumed_from"] is None:
        return None
    checkpoint = artifact_store.get(db, run["resumed_from"])
    if checkpoint is None:
        return {"id": run["resumed_from"], "step": run["start_step"], "missing": True}
    return {"id": checkpoint["id"], "name": checkpoint["name"], "step": checkpoint["step"]}


# Dataset


def dataset_fingerprint(
    dataset: str, roots: list[str], max_bytes: int = MAX_DATASET_BYTES, max_files: int = MAX_DATASET_FILES
) -> dict:
    """The dataset as runs resolve it (ltm.datasets): a plain name is only a name; a file or folder under a dataset
    root gets the SHA-256 of each file, at most `max_files` files and `max_bytes` bytes hashed, and a combined hash."""
    if datasets.is_name(dataset):
        return {"kind": "name", "name": dataset}
    try:
        location = datasets.checked(dataset, roots)
        return _files(dataset, location, max_bytes, max_files)
    except datasets.DatasetRefused as exc:
        return _unavailable(dataset, str(exc))
    except FileNotFoundError:
        return _unavailable(dataset, "数据集文件已不存在")
    except (OSError, ImportError, ValueError) as exc:  # any fsspec backend: unreachable, not installed, refused
        return _unavailable(dataset, f"无法读取数据集：{exc}")


def _unavailable(dataset: str, reason: str) -> dict:
    return {"kind": "unavailable", "dataset": dataset, "reason": reason}


def _listing(location: artifact_paths.Location) -> list[tuple[str, str, int]]:
    """(path relative to the dataset, path, size) of each file, sorted; a single file is named by its base name."""
    fs = location.filesystem()
    info = fs.info(location.path)
    if info["type"] != "directory":
        return [(posixpath.basename(location.path), location.path, int(info["size"]))]
    found = fs.find(location.path, detail=True)
    return sorted((posixpath.relpath(path, location.path), path, int(item["size"])) for path, item in found.items())


def _files(dataset: str, location: artifact_paths.Location, max_bytes: int, max_files: int) -> dict:
    fs = location.filesystem()
    listing = _listing(location)
    files, hashed = [], 0
    for relative, path, size in listing[:max_files]:
        fits = hashed + size <= max_bytes and (not files or files[-1]["sha256"] is not None)
        files.append({"path": relative, "size_bytes": size, "sha256": checksums.of_file(fs, path) if fits else None})
        hashed += size if fits else 0
    complete = len(listing) <= max_files and all(file["sha256"] is not None for file in files)
    return {
        "kind": "files",
        "dataset": dataset,
        "location": location.url,
        "files": files,
        "file_count": len(listing),
        "total_bytes": sum(size for _, _, size in listing),
        "hashed_bytes": hashed,
        "sha256": _combined(files) if complete else None,
        "complete": complete,
        "note": None if complete else _cap_note(len(listing), max_files, max_bytes),
    }


def _combined(files: list[dict]) -> str:
    """SHA-256 of the `sha256sum`-style listing: one `<sha256>  <relative path>` line per file, sorted by path."""
    listing = "".join(f"{file['sha256']}  {file['path']}\n" for file in files)
    return hashlib.sha256(listing.encode()).hexdigest()


def _cap_note(count: int, max_files: int, max_bytes: int) -> str:
    return (
        f"为控制生成清单的时间，只按路径顺序为前 {min(count, max_files)} 个文件中的前 {max_bytes // 2**20} MiB "
        f"计算了 SHA-256（数据集共 {count} 个文件）；未计算的文件 sha256 为空，因此没有合并哈希"
    )


# Metrics


def final_metrics(db, run: dict, step: int | None) -> dict:
    """The evaluation metrics as of the checkpoint: each one's last value at or before `step` (the run's last values
    when the checkpoint has no step), for names starting eval_/val_/test_ and the run's sweep objective."""
    objective = _sweep_objective(db, run)
    values = run["metrics"] if step is None else lineage_store.metrics_up_to(db, run["id"], step)
    chosen = {name: value for name, value in sorted(values.items()) if name.startswith(EVALUATION_PREFIXES)}
    if objective in values:
        chosen[objective] = values[objective]
    return {"step": step, "values": chosen, "objective": objective, "rule": _rule(step, objective)}


def _sweep_objective(db, run: dict) -> str | None:
    sweep = sweep_store.get(db, run["sweep_id"]) if run["sweep_id"] else None
    return sweep["spec"]["objective"]["metric"] if sweep else None


def _rule(step: int | None, objective: str | None) -> str:
    when = "运行最后记录的值" if step is None else f"第 {step} 步（检查点所在步）或之前最后记录的值"
    names = "名称以 eval_、val_、test_ 开头的评估指标"
    if objective:
        names += f"，以及调参目标指标 {objective}"
    return f"{names}；取{when}"
