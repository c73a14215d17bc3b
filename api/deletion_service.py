"""Deleting artifacts, runs and projects, shared by the deletion and retention routers.

Deleting always removes files before rows: a failed file delete leaves its row, so no record silently points
to a missing file. Only files inside the artifact's own run folder (<artifact root>/<project>/<run>/) are ever
deleted, so a stray registered path cannot take other runs' files with it."""

import posixpath
from collections.abc import Callable

from ltm import artifact_paths
from ltm.api.errors import Refusal, conflict, not_found
from ltm.api.ids import ARTIFACT_KINDS, well_formed
from ltm.models import RunStatus, SweepStatus
from ltm.store import lifecycle as lifecycle_store
from ltm.store import releases as release_store
from ltm.store import runs as run_store
from ltm.store import sweeps as sweep_store

# Artifact files


class ArtifactFiles:
    """Deletes artifact files and folders under the configured artifact root (fsspec)."""

    def __init__(self, root_url: str) -> None:
        self.root_url = root_url

    def located(self, project_id: str, artifact: dict) -> artifact_paths.Location:
        """The artifact's files as fsspec opens them; OutsideRunFolder unless inside the artifact's run folder."""
        return artifact_paths.checked(artifact["path"], self.root_url, project_id, artifact["run_id"])

    def remove(self, project_id: str, artifact: dict) -> None:
        """Checked again right before removing; only the checked location is removed."""
        self.located(project_id, artifact).remove()

    def remove_folder(self, *parts: str) -> list[str]:
        """Clear what is left of a project's or run's folder (flows.artifact_io layout: root/project/run)."""
        try:
            root = artifact_paths.locate(self.root_url)
            fs, folder = root.filesystem(), posixpath.join(root.path, *parts)
            if fs.exists(folder):
                fs.rm(folder, recursive=True)
        except Exception as exc:  # the rows are gone either way; report what could not be tidied
            return [f"未能清理目录 {'/'.join(parts)}：{exc}"]
        return []


def _remove_all(files: ArtifactFiles, project_id: str, artifacts: list[dict]) -> tuple[list[str], list[str]]:
    """Remove each artifact's files; returns the ids removed and a message per failure."""
    removed, failures = [], []
    for artifact in artifacts:
        try:
            files.remove(project_id, artifact)
        except Exception as exc:  # any fsspec backend error: keep the row, name the artifact
            failures.append(f"{artifact['artifact_id']}（{artifact['path']}）：{exc}")
        else:
            removed.append(artifact["artifact_id"])
    return removed, failures


def _refuse_outside_run_folder(files: ArtifactFiles, project_id: str, artifacts: list[dict]) -> None:
    outside = []
    for artifact in artifacts:
        try:
            files.located(project_id, artifact)
        except artifact_paths.OutsideRunFolder:
            outside.append(artifact)
    if outside:
        shown = "、".join(f"{a['artifact_id']}（{a['path']}）" for a in outside[:5])
        folder = artifact_paths.run_folder(files.root_url, project_id, "<运行 ID>").url
        raise conflict(f"工件 {shown} 的文件不在所属运行的目录 {folder} 之下，为免误删其他数据，不能删除")


def _storage_failed(failures: list[str], removed: list[str]) -> Refusal:
    done = f"；已删除文件的 {len(removed)} 个工件记录已一并删除" if removed else ""
    return Refusal(503, f"删除工件文件失败，未删除的记录保持不变：{'；'.join(failures[:5])}{done}")


# Shapes

_ITEM_KEYS = ("run_id", "type", "name", "path", "step", "size_bytes", "tags")


def artifact_item(artifact: dict) -> dict:
    """An artifact row as a DeletableArtifact."""
    return {"artifact_id": artifact["id"], **{key: artifact[key] for key in _ITEM_KEYS}}


def total_bytes(items: list[dict]) -> int:
    return sum(item["size_bytes"] or 0 for item in items)


def _described(runs: list[dict]) -> str:
    return "、".join(f"{run['name']}（{run['id']}，{run['status']}）" for run in runs[:10])


def report(db, project_id: str, runs: list[dict], dry_run: bool, versions: int = 0) -> dict:
    """What deleting `runs` removes, as a DeletionReport (not yet deleted)."""
    run_ids = [run["id"] for run in runs]
    artifacts = [artifact_item(a) for a in lifecycle_store.artifacts_of_runs(db, run_ids)]
    return {
        "dry_run": dry_run,
        "deleted": False,
        "project_id": project_id,
        "runs": [{k: run[k] for k in ("id", "name", "status")} for run in runs],
        "artifacts": artifacts,
        "artifact_count": len(artifacts),
        "artifact_bytes": total_bytes(artifacts),
        **lifecycle_store.footprint(db, run_ids),
        "project_versions": versions,
        "notes": [],
    }


# One artifact


def artifact_of(db, run: dict, artifact_id: str) -> dict:
    """The run's artifact as a DeletableArtifact; 404 when the run has no such artifact."""
    rows = lifecycle_store.artifacts_of_runs(db, [run["id"]]) if well_formed(artifact_id, *ARTIFACT_KINDS) else []
    artifact = next((row for row in rows if row["id"] == artifact_id), None)
    if artifact is None:
        raise not_found(f"运行 {run['id']} 的工件", artifact_id)
    return artifact_item(artifact)


def _refuse_artifact_delete(db, run_id: str, artifact: dict) -> None:
    run = run_store.get(db, run_id)
    if RunStatus(run["status"]).is_active:
        raise conflict(f"运行 {run['name']}（{run_id}）仍在进行（{run['status']}），不能删除它的工件")
    if lifecycle_store.is_tagged(db, artifact["artifact_id"]):
        raise conflict(f"检查点 {artifact['artifact_id']} 带有标签（候选/发布/归档），带标签的检查点不能删除")
    resuming = lifecycle_store.active_runs_resuming_from(db, [artifact["artifact_id"]])
    if resuming:
        raise conflict(f"运行 {_described(resuming)} 正从检查点 {artifact['artifact_id']} 恢复训练，不能删除")


def refuse_artifact_delete(db, files: ArtifactFiles, project_id: str, run_id: str, artifact: dict) -> None:
    """409 when the artifact may not be deleted (active run, tagged, resumed from, outside its run folder)."""
    _refuse_artifact_delete(db, run_id, artifact)
    _refuse_outside_run_folder(files, project_id, [artifact])


def delete_artifact(db, files: ArtifactFiles, project_id: str, run_id: str, artifact: dict) -> None:
    """Remove the artifact's files, then, inside db.writing() and after rechecking, its row."""
    removed, failures = _remove_all(files, project_id, [artifact])
    if failures:
        raise _storage_failed(failures, [])
    with db.writing():
        _refuse_artifact_delete(db, run_id, artifact)
        lifecycle_store.delete_artifacts(db, removed)


# Runs and projects


def _run_blockers(db, run_id: str) -> None:
    run = run_store.get(db, run_id)
    if RunStatus(run["status"]).is_active:
        raise conflict(f"运行 {_described([run])} 仍在进行，请先取消或等待其结束再删除")
    checkpoint_ids = [a["id"] for a in lifecycle_store.artifacts_of_runs(db, [run_id])]
    resuming = lifecycle_store.active_runs_resuming_from(db, checkpoint_ids)
    if resuming:
        raise conflict(f"运行 {_described(resuming)} 正从运行 {run_id} 的检查点恢复训练，请等其结束再删除")


def _project_blockers(db, project_id: str, planned_run_ids: list[str]) -> None:
    active = lifecycle_store.active_runs(db, project_id)
    if active:
        raise conflict(f"项目 {project_id} 还有进行中的运行：{_described(active)}，请先取消或等待其结束再删除")
    released = release_store.current(db, project_id)
    if released:
        raise conflict(
            f"项目 {project_id} 有当前发布（#{released['number']} {released['run_name']} 的 "
            f"{released['artifact_name']}），发布的文件受保护：请先由管理员撤销发布再删除项目"
        )
    sweeps = [s for s in sweep_store.list_for_project(db, project_id) if s["status"] == SweepStatus.RUNNING.value]
    if sweeps:
        names = "、".join(f"{s['name']}（{s['id']}）" for s in sweeps)
        raise conflict(f"项目 {project_id} 还有进行中的调参：{names}，请先停止调参再删除")
    if lifecycle_store.run_ids_of_project(db, project_id) != planned_run_ids:
        raise conflict(f"项目 {project_id} 在删除过程中新增了运行，未删除项目，请重新预览后再删除")


def _refuse_new_artifacts(db, report: dict) -> None:
    now = {a["id"] for a in lifecycle_store.artifacts_of_runs(db, [run["id"] for run in report["runs"]])}
    if now != {a["artifact_id"] for a in report["artifacts"]}:
        raise conflict("删除过程中登记了新的工件，未删除运行，请重新预览后再删除")


def _delete_files_then_rows(
    db, files: ArtifactFiles, report: dict, recheck: Callable[[], None], delete_rows: Callable[[], None]
) -> None:
    """Files first; then, inside db.writing() and after `recheck`, the rows. A failure keeps every row
    whose files are still there, and drops only the rows of artifacts whose files are gone."""
    _refuse_outside_run_folder(files, report["project_id"], report["artifacts"])
    removed, failures = _remove_all(files, report["project_id"], report["artifacts"])
    with db.writing():
        try:
            recheck()
            _refuse_new_artifacts(db, report)
        except Refusal:
            lifecycle_store.delete_artifacts(db, removed)
            raise
        if failures:
            lifecycle_store.delete_artifacts(db, removed)
            raise _storage_failed(failures, removed)
        delete_rows()


def delete_run(db, files: ArtifactFiles, project_id: str, run_id: str, report: dict) -> None:
    """Delete the run that `report` previewed: files, then rows; fills the report's notes."""
    with db.writing():
        _run_blockers(db, run_id)
    _delete_files_then_rows(
        db, files, report, lambda: _run_blockers(db, run_id), lambda: lifecycle_store.delete_runs(db, [run_id])
    )
    report["notes"] = files.remove_folder(project_id, run_id)


def delete_project(db, files: ArtifactFiles, project_id: str, run_ids: list[str], report: dict) -> None:
    """Delete the project whose runs `report` previewed: files, then rows; fills the report's notes."""
    with db.writing():
        _project_blockers(db, project_id, run_ids)
    _delete_files_then_rows(
        db,
        files,
        report,
        lambda: _project_blockers(db, project_id, run_ids),
        lambda: lifecycle_store.delete_project(db, project_id, run_ids),
    )
    report["notes"] = files.remove_folder(project_id) + files.remove_folder(artifact_paths.RELEASES_FOLDER, project_id)
