from typing import Annotated

from fastapi import APIRouter, Body, Depends
from fastapi.responses import JSONResponse

from ltm import artifact_paths
from ltm.api import examples
from ltm.api.auth import Caller, record_intervention, require_owner, require_project_member
from ltm.api.deps import CurrentSettings, Db, ProjectRow, RunRow, Runs, json_body_only
from ltm.api.errors import BODY_ERRORS, not_found, responses, unprocessable
from ltm.api.ids import ARTIFACT_KINDS, well_formed
from ltm.ids import new_id
from ltm.models import Artifact, ArtifactCreate, ArtifactList, ArtifactType, TagRequest, TagValue
from ltm.store import artifacts as artifact_store
from ltm.store import auth as auth_store
from ltm.store import runs as run_store
from ltm.store import utc_now

router = APIRouter(
    prefix="/projects/{project_id}/runs/{run_id}/artifacts", tags=["工件"], dependencies=[Depends(json_body_only)]
)


@router.get("", response_model=ArtifactList, summary="列出运行工件", responses=responses(404, 422))
def list_artifacts(db: Db, run: RunRow):
    return {"items": artifact_store.list_for_run(db, run["id"])}


@router.post(
    "",
    status_code=201,
    response_model=Artifact,
    summary="登记工件（供训练流程使用）",
    responses={
        200: {"model": Artifact, "description": "同一运行、类型和路径的工件已登记过，返回原工件"},
        **responses(404, 409, *BODY_ERRORS),
    },
)
def register_artifact(db: Db, runs: Runs, settings: CurrentSettings, caller: Caller, run: RunRow, body: ArtifactCreate):
    try:
        artifact_paths.checked(body.path, settings.artifact_root_url, run["project_id"], run["id"])
    except artifact_paths.OutsideRunFolder as exc:
        raise unprocessable(f"path：{exc}", "path") from None
    with db.writing():
        current = run_store.get(db, run["id"])  # a deletion or an end may have come first
        if current is None:
            raise not_found("运行", run["id"])
        runs.accepting(current, "工件")
        existing = artifact_store.find_by_path(db, run["id"], body.type.value, body.path)
        if existing:
            return JSONResponse(Artifact.model_validate(existing).model_dump(mode="json"), status_code=200)
        artifact = {
            **body.model_dump(mode="json"),
            "id": new_id(body.type.value),
            "run_id": run["id"],
            "project_id": run["project_id"],
            "created_at": utc_now(),
        }
        artifact_store.insert(db, artifact)
    record_intervention(db, caller, run, "登记工件", f"{artifact['id']}（{body.path}）")
    return artifact_store.get(db, artifact["id"])


@router.post(
    "/{artifact_id}/tag", response_model=Artifact, summary="为工件打标签", responses=responses(404, *BODY_ERRORS)
)
def tag_artifact(
    db: Db,
    caller: Caller,
    project: ProjectRow,
    run: RunRow,
    artifact_id: str,
    body: Annotated[TagRequest, Body(openapi_examples={"seed": {"value": examples.TAG}})],
):
    artifact = artifact_store.get(db, artifact_id) if well_formed(artifact_id, *ARTIFACT_KINDS) else None
    if artifact is None or artifact["run_id"] != run["id"]:
        raise not_found(f"运行 {run['id']} 的工件", artifact_id)
    if artifact["type"] != ArtifactType.CHECKPOINT.value:
        raise unprocessable(f"工件 {artifact_id} 的类型是 {artifact['type']}，只能为检查点打标签")
    if body.tag == TagValue.RELEASE:
        require_owner(caller, project, "标记发布")
    else:
        require_project_member(db, caller, project, "打标签")
    artifact_store.add_tag(db, artifact_id, body.tag.value, body.notes, utc_now(), caller.user)
    auth_store.record(
        db,
        caller.user,
        "打标签",
        project["id"],
        run["id"],
        target=artifact_id,
        details=f"{body.tag.value}：{body.notes or ''}",
    )
    return artifact_store.get(db, artifact_id)
