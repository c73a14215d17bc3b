"""`apply_retention`: delete the checkpoints a project's retention policy no longer keeps (files, then rows)."""

import httpx
from prefect import flow, get_run_logger

from ltm import artifact_paths
from ltm.client import ApiError, Client
from ltm.models import DeletableArtifact, RetentionPreview
from ltm.settings import Settings


def remove_files(project_id: str, item: DeletableArtifact) -> None:
    """Remove a checkpoint folder (or a file) inside its run's folder; one already gone counts as removed."""
    artifact_paths.checked(item.path, Settings().artifact_root_url, project_id, item.run_id).remove()


def _failure(item: DeletableArtifact, message: str) -> dict:
    return {"artifact_id": item.artifact_id, "run_id": item.run_id, "path": item.path, "error": message}


def delete_checkpoint(client: Client, project_id: str, item: DeletableArtifact) -> dict | None:
    """Delete one checkpoint; None when done, else what went wrong. The row goes only after its files."""
    label = (project_id, item.run_id, item.artifact_id)
    try:
        client.delete_artifact(*label, dry_run=True)
    except (ApiError, httpx.HTTPError) as exc:
        return _failure(item, f"未删除（API 不允许或不可达）：{exc}")
    try:
        remove_files(project_id, item)
    except Exception as exc:  # any fsspec backend error: the row stays and still points at the files
        return _failure(item, f"删除文件失败，记录保留：{exc}")
    try:
        client.delete_artifact(*label, dry_run=False)
    except (ApiError, httpx.HTTPError) as exc:
        return _failure(item, f"文件已删除，但记录未能删除：{exc}")
    return None


def summarise(project_id: str, preview: RetentionPreview, failures: list[dict]) -> dict:
    failed = {failure["artifact_id"] for failure in failures}
    deleted = [item for item in preview.items if item.artifact_id not in failed]
    return {
        "project_id": project_id,
        "keep_last": preview.keep_last,
        "deleted": len(deleted),
        "bytes_freed": sum(item.size_bytes or 0 for item in deleted),
        "deleted_artifacts": [item.artifact_id for item in deleted],
        "errors": failures,
    }


@flow(name="checkpoint-retention", flow_run_name="retention-{project_id}", persist_result=False)
def apply_retention(project_id: str) -> dict:
    """Apply project `project_id`'s retention policy as the API previews it (LTM_API_URL, or the embedded store)."""
    logger = get_run_logger()
    with Client.from_env() as client:
        preview = client.retention_preview(project_id)
        logger.info(
            "项目 %s 保留策略：每个运行保留 %s 个检查点，待删除 %s 个（%s 字节）",
            project_id,
            preview.keep_last or "全部",
            preview.count,
            preview.total_bytes,
        )
        failures = [f for item in preview.items if (f := delete_checkpoint(client, project_id, item))]
    for failure in failures:
        logger.error("检查点 %s 未能删除：%s", failure["artifact_id"], failure["error"])
    summary = summarise(project_id, preview, failures)
    logger.info(
        "已删除 %s 个检查点，释放 %s 字节，%s 个失败", summary["deleted"], summary["bytes_freed"], len(failures)
    )
    return summary
