"""Checkpoint retention: the per-project policy and a preview of the checkpoints it would delete."""

from fastapi import APIRouter, Depends

from ltm.api import deletion_service as deletion
from ltm.api.auth import Caller, require_owner
from ltm.api.deps import Db, ProjectRow, json_body_only
from ltm.api.errors import BODY_ERRORS, responses
from ltm.models import RetentionPolicy, RetentionPreview, RetentionUpdate
from ltm.store import auth as auth_store
from ltm.store import lifecycle as lifecycle_store

router = APIRouter(tags=["数据生命周期"], dependencies=[Depends(json_body_only)])
PROJECT = "/projects/{project_id}"


@router.get(
    PROJECT + "/retention", response_model=RetentionPolicy, summary="检查点保留策略", responses=responses(404, 422)
)
def get_retention(db: Db, caller: Caller, project: ProjectRow):
    return lifecycle_store.get_policy(db, project["id"])


@router.put(
    PROJECT + "/retention",
    response_model=RetentionPolicy,
    summary="设置检查点保留策略（负责人或管理员）",
    responses=responses(404, *BODY_ERRORS),
)
def set_retention(db: Db, caller: Caller, project: ProjectRow, body: RetentionUpdate):
    require_owner(caller, project, "设置检查点保留策略")
    with db.writing():
        policy = lifecycle_store.set_policy(db, project["id"], body.keep_last)
    kept = "全部保留" if body.keep_last is None else f"每个运行保留最新 {body.keep_last} 个"
    auth_store.record(db, caller.user, "设置保留策略", project["id"], None, details=kept)
    return policy


@router.get(
    PROJECT + "/retention/preview",
    response_model=RetentionPreview,
    summary="预览保留策略将删除的检查点",
    responses=responses(404, 422),
)
def preview_retention(db: Db, caller: Caller, project: ProjectRow):
    keep_last = lifecycle_store.get_policy(db, project["id"])["keep_last"]
    found = [] if keep_last is None else lifecycle_store.retention_candidates(db, project["id"], keep_last)
    items = [deletion.artifact_item(artifact) for artifact in found]
    return {
        "project_id": project["id"],
        "keep_last": keep_last,
        "items": items,
        "count": len(items),
        "total_bytes": deletion.total_bytes(items),
    }
