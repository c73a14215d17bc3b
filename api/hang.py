"""Hang detection, run by the reconciler: a run whose process still answers but whose step has not advanced for
its project's hang_minutes is hung. A silent process is another matter (the launcher's stale check finds it lost):
only a run that reported within LTM_STALE_AFTER_SECONDS counts as alive here.

A hung run gets `hung_at` and a message saying where it stopped, and is asked to stop with a checkpoint: a script
run's flow sees `hung_at` in the answer to its heartbeat and raises the script's stop flag; a trainer run's flow is
stuck inside a step, where only a signal reaches it, so its orchestrator run is cancelled and the flow, finding the
run hung, saves a checkpoint. Either flow then ends the run 失败 with the message and `，已保存检查点`. A run still
运行中 LTM_HANG_GRACE_SECONDS later is ended 失败 with the message alone, and its orchestrator run cancelled.
"""

import logging
from datetime import datetime, timedelta, timezone

from ltm.api.errors import Refusal
from ltm.launchers import LauncherUnavailable
from ltm.models import RunStatus
from ltm.store import auth as auth_store
from ltm.store import restarts as restart_store
from ltm.store import runs as run_store
from ltm.store import utc_now

log = logging.getLogger("ltm.api")
ACTOR = "ltm 卡住检测"
HUNG = "卡住："


def hang_text(minutes: float, step: int) -> str:
    return f"{HUNG}超过 {minutes:g} 分钟没有新的步数（停在第 {step} 步）"


def check(service) -> None:
    """One pass over the running runs that hang detection watches (`service` is the RunService)."""
    now = datetime.now(timezone.utc)
    grace = timedelta(seconds=service.settings.hang_grace_seconds)
    alive_within = timedelta(seconds=service.settings.stale_after_seconds)
    for run, minutes in restart_store.hang_watch(service.db, RunStatus.RUNNING.value):
        if run["hung_at"] is not None:
            if now - run["hung_at"] > grace:
                _end(service, run)
        elif minutes is not None and now - run["updated_at"] < alive_within:
            since = max(run["started_at"] or run["created_at"], run["progressed_at"] or run["created_at"])
            if now - since > timedelta(minutes=minutes):
                _stop(service, run, minutes)


def _stop(service, run: dict, minutes: float) -> None:
    text = hang_text(minutes, run["current_step"])
    with service.db.writing():
        fresh = run_store.get(service.db, run["id"])
        if fresh is None or fresh["status"] != RunStatus.RUNNING.value or fresh["hung_at"] is not None:
            return
        if fresh["current_step"] != run["current_step"]:
            return  # it stepped just now
        run_store.update(service.db, run["id"], {"hung_at": utc_now(), "message": text, "updated_at": utc_now()})
    asked = "已请求它保存检查点后停止"
    auth_store.record(service.db, ACTOR, "判定运行卡住", run["project_id"], run["id"], run["name"], f"{text}，{asked}")
    service.watch.notify()
    if not run["entrypoint"]:
        _cancel_orchestrator_run(service, run)


def _end(service, run: dict) -> None:
    text = run["message"] if (run["message"] or "").startswith(HUNG) else f"{HUNG}停在第 {run['current_step']} 步"
    try:
        service.move(run, RunStatus.FAILED, text)
    except Refusal:
        return  # it ended meanwhile
    seconds = service.settings.hang_grace_seconds
    details = f"{text}；{seconds:g} 秒内没有保存检查点结束，已判为失败"
    auth_store.record(service.db, ACTOR, "结束卡住的运行", run["project_id"], run["id"], run["name"], details)
    _cancel_orchestrator_run(service, run)


def _cancel_orchestrator_run(service, run: dict) -> None:
    try:
        service.launcher.cancel(run)
    except LauncherUnavailable as exc:
        log.warning("未能取消卡住的运行 %s 的编排流程：%s", run["id"], exc)
