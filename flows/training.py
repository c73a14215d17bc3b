"""`training_run`: one training run is one Prefect flow run; one task per epoch, in the main thread."""

import threading

import httpx
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import TerminationSignal
from prefect.logging.loggers import flow_run_logger
from prefect.runtime import flow_run as current_flow_run
from prefect.states import Cancelled

from ltm.client import ApiError, Client
from ltm.flows.credentials import forget, hook_client, run_client
from ltm.flows.prefect_state import flow_run_is_cancelling, tag_flow_run
from ltm.flows.script_run import train_script
from ltm.flows.session import CancelRequested, EpochResult, TrainingSession
from ltm.flows.signals import sigterm_deferred
from ltm.models import Run, RunStatus
from ltm.settings import Settings
from ltm.trainers import InvalidConfig


@task(name="epoch", task_run_name="epoch-{epoch}", cache_policy=NO_CACHE, persist_result=False)
def train_epoch(session: TrainingSession, epoch: int) -> EpochResult:
    result = session.train_epoch(epoch)
    get_run_logger().info(
        "第 %s 轮完成：第 %s 步，评估 %s，检查点 %s", epoch, result.step, result.evaluation, result.checkpoint_path
    )
    return result


def _finalise_from_hook(status: RunStatus):
    def hook(flow, flow_run, state) -> None:
        """Runs where the flow process may be gone: only records the end the flow could not record."""
        client = hook_client(str(flow_run.id))
        try:
            run = client.find_run(flow_run.parameters["run_id"])
            if not run.status.is_terminal:
                message = f"训练进程意外退出：{state.message}" if status == RunStatus.FAILED else state.message
                client.report(run.project_id, run.id, status=status, message=message)
        except ApiError as exc:
            if exc.status_code not in (401, 403):
                raise
            flow_run_logger(flow_run, flow).warning("无法在此记录运行的结束（%s），由 API 的对账器记录", exc.detail)
        finally:
            forget(str(flow_run.id))

    return hook


def _flow_run_name() -> str:
    run_id = current_flow_run.parameters["run_id"]
    if Settings().launch_code:
        return current_flow_run.name  # the launcher named it; the launch code is spent only once the flow runs
    try:
        return f"{Client.from_env().find_run(run_id).name} · {run_id}"
    except (ApiError, httpx.HTTPError):
        return run_id


@flow(
    name="training-run",
    flow_run_name=_flow_run_name,
    persist_result=False,
    log_prints=True,
    on_cancellation=[_finalise_from_hook(RunStatus.CANCELLED)],
    on_crashed=[_finalise_from_hook(RunStatus.FAILED)],
)
def training_run(run_id: str):
    """Train run `run_id` as recorded by the API (LTM_API_URL, or the embedded store under LTM_HOME)."""
    logger = get_run_logger()
    settings = Settings()
    flow_run_id = str(current_flow_run.id) if current_flow_run.id else None
    client = run_client(run_id, flow_run_id)
    run = client.find_run(run_id)
    if run.status.is_terminal:
        logger.warning("运行 %s 已结束（%s），不再训练", run_id, run.status.value)
        forget(flow_run_id)
        return Cancelled(message=f"运行已是 {run.status.value}") if run.status == RunStatus.CANCELLED else None
    if flow_run_id:
        tag_flow_run(flow_run_id, [f"project:{run.project_id}", f"model:{run.model}"])
    if run.entrypoint:
        _link_console(settings, run)
        return train_script(client, run, settings, flow_run_id)
    try:
        project = client.get_project(run.project_id)
        session = TrainingSession.open(client, run, project.task_type, settings)
    except (InvalidConfig, ValueError) as exc:
        client.report(run.project_id, run_id, status=RunStatus.FAILED, message=f"配置无效：{exc}")
        raise
    session.start(flow_run_id)
    _link_console(settings, run)
    logger.info("开始训练 %s：%s 步，模型 %s，数据集 %s", run.name, session.trainer.total_steps, run.model, run.dataset)
    try:
        with ProgressArtifact(session, f"{run.name} 训练进度", logger):
            for epoch in session.remaining_epochs():
                train_epoch(session, epoch)
    except CancelRequested:
        with sigterm_deferred():
            _stop_cancelled(session, logger)
        forget(flow_run_id)
        return Cancelled(message=f"用户取消，已在第 {session.trainer.step} 步保存检查点")
    except TerminationSignal:
        with sigterm_deferred():
            hung = _found_hung(client, run_id)
            if hung is not None:
                _stop_hung(session, hung, logger)
            elif flow_run_is_cancelling(flow_run_id) or session.reporter.remote_status == RunStatus.CANCELLING:
                _stop_cancelled(session, logger)
            else:
                session.save_stop_checkpoint(f"终止前的检查点（第 {session.trainer.step} 步）")
                session.finish(RunStatus.FAILED, "训练进程收到终止信号，已保存检查点")
        raise
    except OSError as exc:
        session.finish(RunStatus.FAILED, f"写入工件失败：{exc.strerror or exc}（{exc.filename or '工件目录'}）")
        raise
    except Exception as exc:
        session.finish(RunStatus.FAILED, f"训练失败：{exc}")
        raise
    if session.stopped_early:
        rung_end = f"已训练到调参第 {run.rung} 层的终点（第 {session.trainer.step} 步）并保存检查点，由调参决定是否续训"
        session.finish(RunStatus.COMPLETED, rung_end)
    else:
        session.finish(RunStatus.COMPLETED)
    forget(flow_run_id)
    logger.info("训练完成：%s 步", session.trainer.step)
    return {"run_id": run_id, "steps": session.trainer.step}


def _link_console(settings: Settings, run: Run) -> None:
    create_link_artifact(
        f"{settings.console_url}/run?project_id={run.project_id}&run_id={run.id}",
        link_text=f"在控制台查看 {run.name}",
        description="ltm 控制台中的运行详情",
    )


class ProgressArtifact:
    """Prefect UI progress bar that follows the trainer's step within `every` seconds, not once per epoch.

    A background thread reads the step and updates the artifact when it moved; leaving the `with` block stops the
    thread and shows the final step. A failed update is logged and never stops training."""

    def __init__(self, session: TrainingSession, description: str, logger, every: float = 2.0) -> None:
        self.session = session
        self.every = every
        self.logger = logger
        self.shown = self._percent()
        self.id = create_progress_artifact(self.shown, description=description)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="ltm-progress-artifact", daemon=True)

    def __enter__(self) -> "ProgressArtifact":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stopped.set()
        self._thread.join()
        self._show()

    def _percent(self) -> float:
        return 100 * self.session.trainer.step / self.session.trainer.total_steps

    def _follow(self) -> None:
        while not self._stopped.wait(self.every):
            self._show()

    def _show(self) -> None:
        percent = self._percent()
        if percent == self.shown:
            return
        try:
            update_progress_artifact(self.id, percent)
        except Exception as exc:  # the progress bar is a view: Prefect being unreachable must not stop training
            self.logger.warning("无法更新 Prefect 进度条：%s", exc)
            return
        self.shown = percent


def _found_hung(client: Client, run_id: str) -> Run | None:
    """The run, when the API found it hung (no new step for its project's hang_minutes) and cancelled its flow run
    to interrupt the step it is stuck in."""
    try:
        run = client.find_run(run_id)
    except (ApiError, httpx.HTTPError):
        return None
    return run if run.hung_at is not None else None


def _stop_hung(session: TrainingSession, hung: Run, logger) -> None:
    if hung.status.is_terminal:
        return  # past LTM_HANG_GRACE_SECONDS the API ended it itself
    checkpoint = session.save_stop_checkpoint("卡住时的检查点")
    logger.info("运行卡住：在第 %s 步保存检查点 %s", session.trainer.step, checkpoint)
    session.finish(RunStatus.FAILED, f"{hung.message or '卡住'}，已保存检查点")


def _stop_cancelled(session: TrainingSession, logger) -> None:
    checkpoint = session.save_stop_checkpoint("取消前的检查点")
    logger.info("已取消：在第 %s 步保存检查点 %s", session.trainer.step, checkpoint)
    try:
        session.finish(RunStatus.CANCELLED, f"用户取消，已在第 {session.trainer.step} 步保存检查点")
    except ApiError as exc:
        if exc.status_code != 409:
            raise
