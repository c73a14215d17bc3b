from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Response
from fastapi.responses import JSONResponse

from ltm.api import examples
from ltm.api.auth import Caller, record_intervention, require_project_member
from ltm.api.deps import ProjectRow, RunById, RunRow, Runs, json_body_only
from ltm.api.errors import BODY_ERRORS, responses, unprocessable
from ltm.api.run_service import run_config
from ltm.api.trainer_catalog import checked_trainer
from ltm.limits import MAX_NAME_LENGTH, MAX_PATH_LENGTH
from ltm.models import Run, RunCreate, RunDraft, RunOverview, RunPreview, RunResume, RunStatus, RunUpdate, TagValue
from ltm.store import auth as auth_store
from ltm.store import runs as run_store

router = APIRouter(tags=["运行"], dependencies=[Depends(json_body_only)])
RUN = "/projects/{project_id}/runs/{run_id}"


MERGE_RULE = (
    "超参数合并规则：运行给出的值覆盖项目默认超参数中的同名值；运行中把某个键设为 null 会去掉这个项目默认值，"
    "改用训练器默认值。训练器声明了超参数时，未声明的键、超出范围或类型不符的值都以 422 拒绝并指出键名与来源"
    "（运行或项目默认超参数）；超参数里不能写 trainer，训练器用请求体的 trainer 字段选择。脚本运行不检查超参数的键。"
)


@router.post(
    "/projects/{project_id}/runs",
    status_code=201,
    response_model=Run,
    summary="创建训练运行",
    description=MERGE_RULE,
    responses=responses(404, 409, *BODY_ERRORS, 503),
)
def create_run(
    runs: Runs,
    caller: Caller,
    project: ProjectRow,
    body: Annotated[RunCreate, Body(openapi_examples={"seed": {"value": examples.RUN_CREATE}})],
):
    config = run_config(project, body)
    require_project_member(runs.db, caller, project, "创建运行")
    run = runs.create(project, config, caller.user)
    auth_store.record(runs.db, caller.user, "创建运行", project["id"], run["id"], target=run["name"])
    return runs.with_artifacts(run)


@router.post(
    "/projects/{project_id}/runs/preview",
    response_model=RunPreview,
    summary="预览运行的生效配置（不创建运行）",
    description="请求体与创建运行相同（model、dataset 可省略），答复这个请求体将以什么训练器、超参数"
    "（逐个给出取值与来源：运行、项目默认、训练器默认）和资源运行，不保存任何内容；出错时与创建运行给出相同的 4xx。"
    + MERGE_RULE,
    responses=responses(404, 409, *BODY_ERRORS),
)
def preview_run(runs: Runs, project: ProjectRow, body: RunDraft):
    config = run_config(project, body)
    return runs.plan(project, config)


SORT_HELP = (
    "排序：列名 created_at、started_at、updated_at、finished_at、name、status、progress、priority，"
    "或 metric:<指标名>[:last|min|max]；前加 - 为降序，例如 -created_at、metric:eval_loss:min。缺省 created_at"
)


def _sort(value: str) -> tuple[str, tuple[str, str] | None, bool]:
    descending = value.startswith("-")
    body = value.removeprefix("-")
    if body in run_store.SORTABLE:
        return body, None, descending
    if body.startswith("metric:") and len(body) > len("metric:"):
        name, _, stat = body.removeprefix("metric:").rpartition(":")
        if stat not in run_store.METRIC_STATS or not name:
            name, stat = body.removeprefix("metric:"), "last"
        return "created_at", (name, stat), descending
    raise unprocessable(f"sort：不支持的排序 {value!r}。{SORT_HELP}", "sort")


def _hyperparameter_filters(values: list[str]) -> dict[str, str]:
    filters = {}
    for value in values:
        key, equals, wanted = value.partition("=")
        if not equals or not key.strip():
            raise unprocessable(f"hp：{value!r} 应写成 名称=值，例如 hp=learning_rate=0.001", "hp")
        filters[key.strip()] = wanted.strip()
    return filters


@router.get(
    "/projects/{project_id}/runs",
    response_model=list[RunOverview],
    summary="列出项目的运行（可筛选、排序、分页）",
    description="响应头 X-Total-Count 给出符合筛选条件的运行总数。不带参数时按创建时间从早到晚列出全部运行。",
    responses=responses(404, 422),
)
def list_runs(
    runs: Runs,
    project: ProjectRow,
    response: Response,
    status: Annotated[list[RunStatus] | None, Query(description="只列出这些状态的运行，可重复")] = None,
    q: Annotated[str | None, Query(max_length=MAX_NAME_LENGTH, description="名称包含的文字（不区分大小写）")] = None,
    hp: Annotated[
        list[str] | None, Query(max_length=MAX_PATH_LENGTH, description="超参数等于某值：名称=值，可重复")
    ] = None,
    tag: Annotated[TagValue | None, Query(description="只列出有检查点带此标签（候选、发布、归档）的运行")] = None,
    parent: Annotated[
        str | None, Query(max_length=MAX_NAME_LENGTH, description="只列出从这个运行的检查点恢复的运行（子运行）")
    ] = None,
    sort: Annotated[str, Query(max_length=MAX_NAME_LENGTH + 20, description=SORT_HELP)] = "created_at",
    limit: Annotated[int | None, Query(ge=1, le=1000, description="每页条数；缺省为全部")] = None,
    offset: Annotated[int, Query(ge=0, description="跳过的条数")] = 0,
):
    column, metric, descending = _sort(sort)
    found, total = run_store.search(
        runs.db,
        project["id"],
        statuses=[value.value for value in status or []],
        name=q,
        hyperparameters=_hyperparameter_filters(hp or []),
        checkpoint_tag=tag.value if tag else None,
        parent_run_id=parent,
        sort=column,
        metric=metric,
        descending=descending,
        limit=limit,
        offset=offset,
    )
    response.headers["X-Total-Count"] = str(total)
    return [runs.shown(run) for run in found]


@router.get(RUN, response_model=Run, summary="获取运行详情", responses=responses(404, 422))
def get_run(runs: Runs, run: RunRow):
    return runs.with_artifacts(run)


@router.get(
    "/runs/{run_id}", response_model=Run, summary="按 ID 获取运行（供训练流程使用）", responses=responses(404, 422)
)
def get_run_by_id(runs: Runs, run: RunById):
    return runs.with_artifacts(run)


@router.patch(
    RUN, response_model=Run, summary="上报运行状态与进度（供训练流程使用）", responses=responses(404, 409, *BODY_ERRORS)
)
def report_run(runs: Runs, caller: Caller, run: RunRow, body: RunUpdate):
    values = body.model_dump(exclude_unset=True, mode="json")
    reported = runs.report(run["project_id"], run["id"], values)
    changes = "，".join(f"{key}={value}" for key, value in values.items())
    record_intervention(runs.db, caller, run, "上报运行状态", changes)
    return runs.with_artifacts(reported)


@router.post(
    RUN + "/cancel",
    response_model=Run,
    summary="取消运行",
    responses={
        202: {"model": Run, "description": "已请求取消，运行仍在保存检查点（取消中）"},
        **responses(404, 409, 422, 503),
    },
)
def cancel_run(runs: Runs, caller: Caller, project: ProjectRow, run: RunRow):
    require_project_member(runs.db, caller, project, "取消运行")
    status_code, body = runs.cancel(run["project_id"], run["id"])
    auth_store.record(
        runs.db, caller.user, "取消运行", project["id"], run["id"], target=run["name"], details=body["status"]
    )
    if status_code == 200:
        return body
    return JSONResponse(Run.model_validate(body).model_dump(mode="json"), status_code=status_code)


@router.post(
    RUN + "/resume",
    status_code=201,
    response_model=Run,
    summary="从检查点恢复运行",
    description="覆盖的超参数按创建运行的规则合并到原运行的超参数上（null 去掉原运行的值，改用训练器默认值）。"
    "检查点已达到训练总步数而恢复后的总步数没有增加时以 422 拒绝：请调高训练轮数（num_epochs）。",
    responses=responses(404, 409, *BODY_ERRORS, 503),
)
def resume_run(
    runs: Runs,
    caller: Caller,
    project: ProjectRow,
    run: RunRow,
    source_artifact_id: Annotated[str, Query(min_length=1, max_length=100, description="要恢复的检查点工件 ID")],
    body: Annotated[RunResume | None, Body(openapi_examples={"seed": {"value": examples.RUN_RESUME}})] = None,
):
    overrides = (body or RunResume()).model_dump(exclude_none=True)
    if "trainer" in overrides:
        checked_trainer(overrides["trainer"])
    if body is not None and body.resources is not None:
        overrides["resources"] = body.resources.model_dump(exclude_none=True)
    require_project_member(runs.db, caller, project, "恢复运行")
    resumed = runs.resume(project, run, source_artifact_id, overrides, caller.user)
    auth_store.record(
        runs.db,
        caller.user,
        "恢复运行",
        project["id"],
        resumed["id"],
        target=resumed["name"],
        details=f"从 {run['id']} 的检查点 {source_artifact_id}",
    )
    return runs.with_artifacts(resumed)
