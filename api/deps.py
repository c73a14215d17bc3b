from typing import Annotated

from fastapi import Depends, Request

from ltm.api import media_types
from ltm.api.auth import Caller
from ltm.api.errors import Refusal, not_found
from ltm.api.ids import well_formed
from ltm.api.release_service import ReleaseService
from ltm.api.run_service import RunService
from ltm.api.visibility import can_see
from ltm.settings import Settings
from ltm.store import Database
from ltm.store import projects as project_store
from ltm.store import runs as run_store


async def get_db(request: Request) -> Database:
    return request.app.state.db


async def get_runs(request: Request) -> RunService:
    return request.app.state.runs


async def get_releases(request: Request) -> ReleaseService:
    return request.app.state.releases


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def json_body_only(request: Request) -> None:
    """415 for a body that is not JSON, where FastAPI would otherwise validate the raw bytes."""
    route = request.scope.get("route")
    if getattr(route, "body_field", None) is None:
        return
    if media_types.media_type(request) == media_types.JSON:
        return
    if await request.body():
        raise Refusal(415, f"请求体必须是 JSON，Content-Type 应为 application/json{media_types.received(request)}")


Db = Annotated[Database, Depends(get_db)]
Runs = Annotated[RunService, Depends(get_runs)]
Releases = Annotated[ReleaseService, Depends(get_releases)]
CurrentSettings = Annotated[Settings, Depends(get_settings)]


def get_project(project_id: str, db: Db, caller: Caller) -> dict:
    """The project of a project-scoped route; one the caller may not see is answered as not existing."""
    project = project_store.get_row(db, project_id) if well_formed(project_id, "project") else None
    if project is None or not can_see(db, caller, project):
        raise not_found("项目", project_id)
    return project


ProjectRow = Annotated[dict, Depends(get_project)]


def get_run(project: ProjectRow, run_id: str, runs: Runs) -> dict:
    return runs.get(project["id"], run_id)


def get_run_by_id(run_id: str, db: Db, caller: Caller) -> dict:
    """A run found by its id alone, under the same rule as its project."""
    run = run_store.get(db, run_id) if well_formed(run_id, "run") else None
    project = project_store.get_row(db, run["project_id"]) if run else None
    if project is None or not can_see(db, caller, project):
        raise not_found("运行", run_id)
    return run


RunRow = Annotated[dict, Depends(get_run)]
RunById = Annotated[dict, Depends(get_run_by_id)]
