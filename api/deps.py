from typing import Annotated

from fastapi import Depends, Request

from store import Database
from store import projects as project_store

from api.errors import not_found
from api.run_service import RunService
from ltm.settings import Settings


def get_db(request: Request) -> Database:
    return request.app.state.db


def get_runs(request: Request) -> RunService:
    return request.app.state.runs


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_project(project_id: str, db: Annotated[Database, Depends(get_db)]) -> dict:
    project = project_store.get(db, project_id)
    if project is None:
        raise not_found("项目", project_id)
    return project


def get_run(project_id: str, run_id: str, runs: Annotated[RunService, Depends(get_runs)]) -> dict:
    return runs.get(project_id, run_id)


Db = Annotated[Database, Depends(get_db)]
Runs = Annotated[RunService, Depends(get_runs)]
CurrentSettings = Annotated[Settings, Depends(get_settings)]
ProjectRow = Annotated[dict, Depends(get_project)]
RunRow = Annotated[dict, Depends(get_run)]
