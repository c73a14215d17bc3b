"""The API's launcher backed by Prefect: submit to the training deployment, cancel, and observe states."""

import logging
from datetime import datetime, timedelta, timezone
from uuid import UUID

import httpx
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import StateType
from prefect.deployments import run_deployment
from prefect.events import emit_event
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.states import Cancelled, Cancelling, Crashed

from ltm.launchers import LauncherUnavailable, Observation
from ltm.models import RunStatus
from ltm.settings import Settings

log = logging.getLogger("ltm.api")
_PREFECT_ERRORS = (httpx.HTTPError, PrefectHTTPStatusError, ObjectNotFound, RuntimeError)

TERMINAL = {
    StateType.COMPLETED: RunStatus.COMPLETED,
    StateType.CANCELLED: RunStatus.CANCELLED,
    StateType.FAILED: RunStatus.FAILED,
    StateType.CRASHED: RunStatus.FAILED,
}


class PrefectLauncher:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def submit(self, run: dict, env: dict[str, str]) -> str:
        try:
            flow_run = run_deployment(
                job_variables={"env": env} if env else None,
                name=self.settings.deployment,
                parameters={"run_id": run["id"]},
                timeout=0,
                flow_run_name=f"{run['name']} · {run['id']}",
                idempotency_key=run["id"],  # a run handed over again after an API crash keeps its one flow run
                work_queue_name=run.get("work_queue"),  # the queue of the host whose GPUs the run leased
                tags=[f"project:{run['project_id']}", f"model:{run['model']}"],
            )
        except _PREFECT_ERRORS as exc:
            raise LauncherUnavailable(_outage_text(exc)) from exc
        return str(flow_run.id)

    def cancel(self, run: dict) -> None:
        if not run.get("flow_run_id"):
            return
        try:
            with get_client(sync_client=True) as client:
                flow_run = client.read_flow_run(UUID(run["flow_run_id"]))
                state = flow_run.state.type if flow_run.state else None
                if state in (StateType.SCHEDULED, StateType.PENDING, None):
                    client.set_flow_run_state(flow_run.id, Cancelled(message="用户在开始前取消"), force=True)
                elif state in (StateType.RUNNING, StateType.PAUSED):
                    client.set_flow_run_state(flow_run.id, Cancelling(message="用户请求取消"))
        except _PREFECT_ERRORS as exc:
            raise LauncherUnavailable(_outage_text(exc)) from exc

    def owns(self, run: dict, orchestrator_id: str) -> bool:
        try:
            flow_run_id = UUID(orchestrator_id)
        except ValueError:
            return False
        try:
            with get_client(sync_client=True) as client:
                flow_run = client.read_flow_run(flow_run_id)
        except ObjectNotFound:
            return False
        except _PREFECT_ERRORS as exc:
            raise LauncherUnavailable(_outage_text(exc)) from exc
        return flow_run.parameters.get("run_id") == run["id"]

    def started(self, run: dict) -> bool:
        try:
            flow_run_id = UUID(run.get("flow_run_id") or "")
        except ValueError:
            return False
        try:
            with get_client(sync_client=True) as client:
                state = client.read_flow_run(flow_run_id).state
        except ObjectNotFound:
            return False
        except _PREFECT_ERRORS as exc:
            raise LauncherUnavailable(_outage_text(exc)) from exc
        return state is not None and state.type in (StateType.RUNNING, StateType.CANCELLING)

    def observe(self, runs: list[dict]) -> list[Observation]:
        tracked = {run["flow_run_id"]: run for run in runs if run.get("flow_run_id")}
        if not tracked:
            return []
        try:
            with get_client(sync_client=True) as client:
                flow_runs = client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(i) for i in tracked]))
                )
                observations = [
                    self._observe_one(client, tracked[str(flow_run.id)], flow_run) for flow_run in flow_runs
                ]
        except _PREFECT_ERRORS as exc:
            raise LauncherUnavailable(_outage_text(exc)) from exc
        return [observation for observation in observations if observation]

    def _observe_one(self, client, run: dict, flow_run) -> Observation | None:
        state = flow_run.state
        if state is None:
            return None
        if state.type in TERMINAL:
            message = state.message or None
            if state.type == StateType.CRASHED:
                message = f"训练进程意外退出：{state.message or '没有退出信息'}"
            return Observation(run["id"], TERMINAL[state.type], message)
        silent_for = datetime.now(timezone.utc) - run["updated_at"]
        reporting = run["status"] in (RunStatus.RUNNING.value, RunStatus.CANCELLING.value)
        if (
            reporting
            and state.type == StateType.RUNNING
            and silent_for > timedelta(seconds=self.settings.stale_after_seconds)
        ):
            message = f"训练进程失联：超过 {int(silent_for.total_seconds())} 秒没有上报"
            client.set_flow_run_state(flow_run.id, Crashed(message=message), force=True)
            return Observation(run["id"], RunStatus.FAILED, message)
        return None

    def submit_sweep(self, sweep: dict) -> str:
        try:
            flow_run = run_deployment(
                job_variables={"env": {"LTM_SWEEP_ID": sweep["id"]}},
                name=self.settings.sweep_deployment,
                parameters={"project_id": sweep["project_id"], "sweep_id": sweep["id"]},
                timeout=0,
                flow_run_name=f"调参 {sweep['name']} · {sweep['id']}",
                idempotency_key=f"{sweep['id']}:{sweep['controller_starts']}",
                tags=[f"project:{sweep['project_id']}", f"sweep:{sweep['id']}"],
            )
        except _PREFECT_ERRORS as exc:
            raise LauncherUnavailable(_outage_text(exc)) from exc
        return str(flow_run.id)

    def sweep_ended(self, sweep: dict) -> str | None:
        try:
            flow_run_id = UUID(sweep.get("flow_run_id") or "")
        except ValueError:
            return None
        try:
            with get_client(sync_client=True) as client:
                state = client.read_flow_run(flow_run_id).state
        except ObjectNotFound:
            return "控制器的流程运行在 Prefect 中不存在"
        except _PREFECT_ERRORS as exc:
            raise LauncherUnavailable(_outage_text(exc)) from exc
        if state is None or state.type not in TERMINAL:
            return None
        return f"控制器的流程运行已结束（{state.type.value}：{state.message or '没有信息'}）"

    def emit_event(self, event: dict) -> None:
        """`run.failed` becomes the Prefect event `ltm.run.failed` about the resource `ltm.run.<run_id>`, related to
        its project (and its flow run), with the whole notification as its payload."""
        try:
            emit_event(
                event=f"ltm.{event['event']}",
                resource=_resource(event),
                related=_related(event),
                payload=event,
                occurred=datetime.fromisoformat(event["occurred_at"]),
            )
        except Exception:  # an event is a courtesy to automations: it never fails what caused it
            log.exception("无法向 Prefect 发送事件 %s", event.get("event"))

    def close(self) -> None:
        return None


def _resource(event: dict) -> dict[str, str]:
    if event.get("run_id"):
        return {"prefect.resource.id": f"ltm.run.{event['run_id']}", "prefect.resource.name": event["run_name"] or ""}
    return {"prefect.resource.id": f"ltm.project.{event['project_id']}", "prefect.resource.name": event["project_name"]}


def _related(event: dict) -> list[dict[str, str]]:
    related = [
        {
            "prefect.resource.id": f"ltm.project.{event['project_id']}",
            "prefect.resource.role": "project",
            "prefect.resource.name": event.get("project_name") or "",
        }
    ]
    if event.get("flow_run_id"):
        related.append(
            {"prefect.resource.id": f"prefect.flow-run.{event['flow_run_id']}", "prefect.resource.role": "flow-run"}
        )
    return related


def _outage_text(exc: Exception) -> str:
    if isinstance(exc, ObjectNotFound):
        return "找不到训练或调参部署，请先运行 `ltm up` 或 `prefect deploy --all`"
    return f"无法连接 Prefect（{type(exc).__name__}）"
