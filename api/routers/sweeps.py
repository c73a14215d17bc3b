from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from ltm.api.auth import Caller, require_project_member
from ltm.api.deps import ProjectRow, json_body_only
from ltm.api.errors import BODY_ERRORS, responses
from ltm.api.sweep_service import SweepService
from ltm.models import (
    JournalAppend,
    JournalEntries,
    JournalPosition,
    Run,
    Sweep,
    SweepCreate,
    SweepSummary,
    SweepUpdate,
    TrialCreate,
    TrialOutcome,
    TrialPromote,
    TrialUpdate,
)
from ltm.store import auth as auth_store

router = APIRouter(tags=["调参"], dependencies=[Depends(json_body_only)])
SWEEPS = "/projects/{project_id}/sweeps"
SWEEP = SWEEPS + "/{sweep_id}"
CONTROLLER = "（供调参控制器使用）"


async def get_sweeps(request: Request) -> SweepService:
    return request.app.state.sweeps


Sweeps = Annotated[SweepService, Depends(get_sweeps)]


def get_sweep(project: ProjectRow, sweep_id: str, sweeps: Sweeps) -> dict:
    return sweeps.get(project["id"], sweep_id)


SweepRow = Annotated[dict, Depends(get_sweep)]


@router.post(
    SWEEPS,
    status_code=201,
    response_model=Sweep,
    summary="创建调参",
    description="按搜索空间对运行模板的超参数做搜索：每个试验是一个普通运行（排队等 GPU、可比较、可打标签）。"
    "剪枝器 asha、hyperband、median 让试验在 min_epochs × reduction_factorᵏ 轮处暂停，由控制器决定剪枝（保留检查点）"
    "或晋升（从检查点续训下一段）。模板与搜索空间的每个取值都按创建运行的规则检查，出错时 422 指出字段。",
    responses=responses(404, 409, *BODY_ERRORS, 503),
)
def create_sweep(sweeps: Sweeps, caller: Caller, project: ProjectRow, body: SweepCreate):
    require_project_member(sweeps.db, caller, project, "创建调参")
    sweep = sweeps.create(project, body, caller.user)
    auth_store.record(sweeps.db, caller.user, "创建调参", project["id"], target=sweep["name"], details=sweep["id"])
    return sweeps.shown(sweep)


@router.get(
    SWEEPS, response_model=list[SweepSummary], summary="列出项目的调参（新的在前）", responses=responses(404, 422)
)
def list_sweeps(sweeps: Sweeps, project: ProjectRow):
    return sweeps.summaries(project["id"])


@router.get(
    SWEEP,
    response_model=Sweep,
    summary="获取调参详情：试验（按目标从好到差）、最佳试验、节省的步数",
    responses=responses(404, 422),
)
def get_sweep_detail(sweeps: Sweeps, sweep: SweepRow):
    return sweeps.shown(sweep)


@router.post(
    SWEEP + "/cancel",
    response_model=Sweep,
    summary="停止调参",
    description="不再开始新试验；进行中的试验的运行被取消，各自保存检查点。",
    responses=responses(404, 409, 422, 503),
)
def cancel_sweep(sweeps: Sweeps, caller: Caller, project: ProjectRow, sweep: SweepRow):
    require_project_member(sweeps.db, caller, project, "停止调参")
    cancelled = sweeps.cancel(sweep)
    auth_store.record(sweeps.db, caller.user, "停止调参", project["id"], target=sweep["name"], details=sweep["id"])
    return sweeps.shown(cancelled)


@router.patch(
    SWEEP, response_model=Sweep, summary="上报调参状态" + CONTROLLER, responses=responses(404, 409, *BODY_ERRORS)
)
def update_sweep(sweeps: Sweeps, caller: Caller, project: ProjectRow, sweep: SweepRow, body: SweepUpdate):
    require_project_member(sweeps.db, caller, project, "上报调参状态")
    return sweeps.shown(sweeps.update(sweep, body.model_dump(exclude_unset=True, mode="json")))


@router.get(
    SWEEP + "/journal",
    response_model=JournalEntries,
    summary="读取调参日志" + CONTROLLER,
    description="Optuna 研究的全部状态：按顺序追加的日志条目，从第 start 条（0 起）读起。",
    responses=responses(404, 422),
)
def read_journal(sweeps: Sweeps, sweep: SweepRow, start: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0):
    return sweeps.journal(sweep, start)


@router.post(
    SWEEP + "/journal",
    response_model=JournalPosition,
    summary="追加调参日志" + CONTROLLER,
    responses=responses(404, 409, *BODY_ERRORS),
)
def append_journal(sweeps: Sweeps, caller: Caller, project: ProjectRow, sweep: SweepRow, body: JournalAppend):
    require_project_member(sweeps.db, caller, project, "写入调参日志")
    return sweeps.append_journal(sweep, body.entries)


@router.post(
    SWEEP + "/trials",
    response_model=Run,
    summary="开始试验" + CONTROLLER,
    description="为试验 number 创建第一段运行；同一试验再次请求时答复已有的运行（控制器重启后不会重复创建）。",
    responses=responses(404, 409, *BODY_ERRORS, 503),
)
def create_trial(sweeps: Sweeps, caller: Caller, project: ProjectRow, sweep: SweepRow, body: TrialCreate):
    require_project_member(sweeps.db, caller, project, "开始试验")
    return sweeps.create_trial(project, sweep, body.number, body.params)


@router.post(
    SWEEP + "/trials/{number}/promote",
    response_model=Run,
    summary="晋升试验" + CONTROLLER,
    description="从上一层运行停下时的检查点续训下一层；同一层再次请求时答复已有的运行。",
    responses=responses(404, 409, *BODY_ERRORS, 503),
)
def promote_trial(
    sweeps: Sweeps, caller: Caller, project: ProjectRow, sweep: SweepRow, number: int, body: TrialPromote
):
    require_project_member(sweeps.db, caller, project, "晋升试验")
    return sweeps.promote(project, sweep, number, body.rung)


@router.patch(
    SWEEP + "/trials/{number}",
    response_model=TrialOutcome,
    summary="记录试验结果" + CONTROLLER,
    responses=responses(404, 409, *BODY_ERRORS),
)
def update_trial(sweeps: Sweeps, caller: Caller, project: ProjectRow, sweep: SweepRow, number: int, body: TrialUpdate):
    require_project_member(sweeps.db, caller, project, "记录试验结果")
    trial = sweeps.update_trial(sweep, number, body)
    return {"number": trial["number"], "state": trial["state"], "objective": trial["objective"]}
