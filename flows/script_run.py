"""A script run: the run's own training code, started as a child process group and supervised until it ends.

The script talks to ltm through `ltm.core` (docs/scripts.md). This flow starts it (torchrun for several processes),
turns every rank's output into the run's logs, keeps the run alive with a heartbeat, raises the stop flag on cancel
and, past the grace period, terminates every process the script started.
"""

import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.exceptions import TerminationSignal
from prefect.states import Cancelled

from ltm import artifact_paths, checksums, core
from ltm.client import ApiError, Client
from ltm.environment import describe as describe_environment
from ltm.flows.artifact_io import ArtifactWriter
from ltm.flows.credentials import forget
from ltm.flows.prefect_state import flow_run_is_cancelling
from ltm.flows.script_process import (
    RANK_PREFIX,
    ScriptOutput,
    alive,
    build_command,
    descendants,
    process_count,
    signal_groups,
)
from ltm.flows.script_source import ScriptConfigError, code_version, resolve_source
from ltm.gpu_telemetry import DeviceTelemetry
from ltm.limits import MAX_TEXT_LENGTH
from ltm.models import Artifact, ArtifactType, Run, RunStatus
from ltm.reporter import RunReporter
from ltm.settings import Settings

HEARTBEAT_SECONDS = 1.0  # also how soon a cancel recorded in the API reaches the stop flag
TELEMETRY_SECONDS = 5.0
KILL_AFTER_SECONDS = 5.0  # after SIGTERM to the script's processes, SIGKILL
# A Prefect worker SIGKILLs a cancelled flow 30 s after its SIGTERM; the script must be gone, and the run recorded,
# before that, whatever the grace period says.
PREFECT_KILL_SECONDS = 30.0
RECORD_MARGIN_SECONDS = 10.0
ELIDED = "\n…\n"


class ScriptFailed(Exception):
    """The script ended in failure; the message is the run's."""


# One script run


@dataclass(frozen=True)
class ScriptPlan:
    folder: Path
    scratch: Path
    processes: int
    command: list[str]
    code_version: str
    resume: tuple[Path, int] | None  # the local checkpoint path and its step


@dataclass
class Ending:
    status: RunStatus
    message: str | None
    signalled: bool  # Prefect's SIGTERM reached this flow; unless the run ends 已取消 it is raised again at the end


class _SigtermWatch:
    """Records Prefect's SIGTERM instead of raising it, so the script is stopped in order first."""

    def __init__(self) -> None:
        self.at: float | None = None
        self._previous = None

    def __enter__(self) -> "_SigtermWatch":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._record)
        return self

    def _record(self, signum, frame) -> None:
        if self.at is None:
            self.at = time.monotonic()

    def __exit__(self, *exc_info) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


class ScriptRun:
    def __init__(self, client: Client, run: Run, settings: Settings, plan: ScriptPlan) -> None:
        self.client = client
        self.run = run
        self.settings = settings
        self.folder = plan.folder
        self.scratch = plan.scratch
        self.processes = plan.processes
        self.command = plan.command
        self.code_version = plan.code_version
        self.resume = plan.resume
        self.stop_file = plan.scratch / "stop"
        self.reporter = RunReporter(client, run.project_id, run.id)
        self.output = ScriptOutput(self.reporter)
        self.telemetry = DeviceTelemetry(run.devices, seed=run.hyperparameters.get("seed"))
        self.progress = _ProgressArtifact(f"{run.name} 训练进度")
        self.process: subprocess.Popen | None = None
        self.stop_at: float | None = None
        self.saw_cancelling = False
        self.hang: str | None = None  # the API found the run hung: why, as it put it
        self.ended_elsewhere: RunStatus | None = None
        self.terminated_after: float | None = None
        self.final_step = 0

    @classmethod
    def prepare(cls, client: Client, run: Run, settings: Settings) -> "ScriptRun":
        if not settings.api_url:
            raise ScriptConfigError("脚本运行需要 LTM_API_URL 指向 ltm API（嵌入式存储只能由一个进程打开）")
        folder = resolve_source(settings.source_dir or Path.cwd(), run.source)
        processes = process_count(run)
        scratch = _scratch_folder(settings, run)
        try:
            plan = ScriptPlan(
                folder=folder,
                scratch=scratch,
                processes=processes,
                command=build_command(run.entrypoint, processes, folder, scratch / "torchrun-logs"),
                code_version=code_version(folder),
                resume=_materialise_checkpoint(client, run, settings, scratch / "resume") if run.resumed_from else None,
            )
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        return cls(client, run, settings, plan)

    @property
    def label(self) -> tuple[str, str]:
        return self.run.project_id, self.run.id

    def environment(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if key not in ("LTM_LAUNCH_CODE", core.TOKEN)}
        token = self.client.headers.get("Authorization", "").removeprefix("Bearer ")
        env.update(
            {
                core.API_URL: self.settings.api_url,
                core.RUN_ID: self.run.id,
                core.PROJECT_ID: self.run.project_id,
                core.HPARAMS: json.dumps(self.run.hyperparameters, ensure_ascii=False),
                core.ARTIFACT_ROOT: self.settings.artifact_root_url,
                core.CHECKPOINT_DIR: str(self.scratch / "checkpoints"),
                core.STOP_FILE: str(self.stop_file),
                core.FLOW_PID: str(os.getpid()),
                "LTM_HOME": str(self.settings.home.resolve()),
                "PYTHONUNBUFFERED": "1",
            }
        )
        if token:
            env[core.TOKEN] = token
        if self.resume:
            env[core.RESUME_PATH], env[core.RESUME_STEP] = str(self.resume[0]), str(self.resume[1])
        if self.processes > 1:
            env["TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE"] = RANK_PREFIX
            env.setdefault("OMP_NUM_THREADS", "1")  # what torchrun would set, without its banner
        return env

    def start(self, flow_run_id: str | None) -> None:
        (self.scratch / "checkpoints").mkdir(parents=True, exist_ok=True)
        files = ArtifactWriter(self.settings.artifact_root_url, *self.label)
        config = self.run.model_dump(
            mode="json",
            include={"id", "project_id", "name", "model", "dataset", "hyperparameters", "resources", "resumed_from"},
        )
        script = {"entrypoint": self.run.entrypoint, "source": self.run.source, "processes": self.processes}
        written = files.write_config({**config, **script, "code_version": self.code_version})
        self.client.register_artifact(
            *self.label, type="config", name="运行配置", path=written.path, size_bytes=written.size_bytes
        )
        start_step = self.resume[1] if self.resume else self.run.start_step
        self.client.report(
            *self.label,
            status=RunStatus.RUNNING,
            flow_run_id=flow_run_id,
            current_step=start_step,
            code_version=self.code_version,
            environment=describe_environment(self.run.devices, self.run.resources.get("gpu_type")),
        )
        where = f"从第 {start_step} 步的检查点恢复" if self.resume else "从头开始"
        self.reporter.log(
            f"训练开始（脚本，{where}），{self.processes} 个进程，代码版本 {self.code_version}，"
            f"目录 {self.folder}，命令 {shlex.join(self.command)}，进程 {os.getpid()}"
        )
        if self.run.devices:
            visible = os.environ.get("CUDA_VISIBLE_DEVICES", "（未设置）")
            self.reporter.log(
                f"GPU：主机 {self.run.gpu_host} 的 {'、'.join(self.run.devices)}（CUDA_VISIBLE_DEVICES={visible}）"
            )
        self.process = subprocess.Popen(
            self.command,
            cwd=self.folder,
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.output.follow(self.process.stdout, is_stderr=False, single_rank=self.processes == 1)
        self.output.follow(self.process.stderr, is_stderr=True, single_rank=self.processes == 1)

    def supervise(self, sigterm: _SigtermWatch, flow_run_id: str | None) -> None:
        """Until the script's processes are gone: heartbeat, stop flag on cancel, termination past the deadline."""
        next_beat = next_reading = time.monotonic()
        while self.process.poll() is None:
            try:
                self.process.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            if now >= next_beat:
                self._heartbeat()
                next_beat = now + HEARTBEAT_SECONDS
            if self.run.devices and now >= next_reading:
                self._read_devices()
                next_reading = now + TELEMETRY_SECONDS
            if sigterm.at is not None and self.stop_at is None:
                self.saw_cancelling = self.saw_cancelling or self._cancelling(flow_run_id)
                self.request_stop("用户取消" if self.saw_cancelling else "收到终止信号", cancel=self.saw_cancelling)
            if self.stop_at is not None and self.terminated_after is None and now >= self._deadline(sigterm):
                self.terminate("脚本没有在宽限期内退出")
        self.output.join(timeout=10)

    def request_stop(self, why: str, cancel: bool) -> None:
        """Raise the stop flag; its content tells the script why (the name of the checkpoint it saves then)."""
        if self.stop_at is not None:
            return
        self.stop_at = time.monotonic()
        written = self.stop_file.with_suffix(".tmp")
        written.write_text(core.STOP_CANCEL if cancel else core.STOP_TERMINATE, encoding="utf-8")
        written.replace(self.stop_file)  # the script sees the flag only with its reason in it
        self.reporter.log(f"{why}：已请求脚本在下一个步边界保存检查点并退出", level="WARNING")

    def terminate(self, why: str) -> None:
        """SIGTERM to every process group the script's processes are in; SIGKILL to what is left soon after."""
        self.terminated_after = time.monotonic() - (self.stop_at or time.monotonic())
        pids = descendants(self.process.pid)
        self.reporter.log(f"{why}，终止它的 {len(pids)} 个进程", level="WARNING")
        signal_groups(pids, signal.SIGTERM)
        deadline = time.monotonic() + KILL_AFTER_SECONDS
        while time.monotonic() < deadline and (self.process.poll() is None or alive(pids)):
            time.sleep(0.1)
        left = alive(pids)
        if left:
            signal_groups(left, signal.SIGKILL)
        self.process.wait()

    def ending(self, sigterm: _SigtermWatch, flow_run_id: str | None) -> Ending:
        signalled = sigterm.at is not None
        if self.hang is not None and self.ended_elsewhere is None:
            current = self._find()  # past LTM_HANG_GRACE_SECONDS the API ends a hung run itself
            if current is None or current.status.is_terminal:
                self.ended_elsewhere = current.status if current else RunStatus.FAILED
        if self.ended_elsewhere is not None:
            message = f"运行已在别处结束（{self.ended_elsewhere.value}），脚本已停止"
            return Ending(self.ended_elsewhere, message, signalled)
        if self.hang is not None and not self.saw_cancelling:
            return self._hang_ending(signalled)
        if signalled and not self.saw_cancelling:
            self.saw_cancelling = self._cancelling(flow_run_id)
        code = self.process.returncode
        if self.stop_at is not None and self.saw_cancelling:
            return Ending(RunStatus.CANCELLED, self._cancel_message(code), signalled)
        if signalled:
            checkpoint = _describe(self.latest_checkpoint())
            return Ending(RunStatus.FAILED, f"训练进程收到终止信号，脚本已停止；{checkpoint}", signalled)
        if code == 0:
            return Ending(RunStatus.COMPLETED, None, False)
        return Ending(RunStatus.FAILED, self._failure_message(code), False)

    def _hang_ending(self, signalled: bool) -> Ending:
        """The run was found hung and asked to stop: it fails, saying whether the script saved its checkpoint."""
        checkpoint = self.latest_checkpoint()
        if self.terminated_after is not None:
            waited = f"脚本在 {self.terminated_after:.0f} 秒的宽限期内没有退出，已终止它的进程"
            return Ending(RunStatus.FAILED, f"{self.hang}；{waited}；{_describe(checkpoint)}", signalled)
        if checkpoint is not None and checkpoint.name == core.STOP_CHECKPOINT_NAMES[core.STOP_TERMINATE]:
            return Ending(RunStatus.FAILED, f"{self.hang}，已保存检查点", signalled)
        return Ending(RunStatus.FAILED, f"{self.hang}；脚本停止时没有保存检查点，{_describe(checkpoint)}", signalled)

    def finish(self, ending: Ending) -> None:
        ending = Ending(ending.status, _bounded(ending.message), ending.signalled)
        if ending.message:
            self.reporter.log(ending.message, level="ERROR" if ending.status == RunStatus.FAILED else "WARNING")
        else:
            self.reporter.log("脚本运行完成")
        try:
            self.reporter.close()
        except ApiError as exc:
            if self.ended_elsewhere is None or exc.status_code != 409:
                raise  # a run ended elsewhere has a final record: its last lines have nowhere to go
        shutil.rmtree(self.scratch, ignore_errors=True)
        if self.ended_elsewhere is not None:
            return
        run = self.client.find_run(self.run.id)  # before the end: a finished run's token reads nothing more
        # A script stopped by a signal between registering its last checkpoint and reporting that step's progress
        # still ends at the step it saved.
        saved = [a.step for a in run.artifacts if a.type == ArtifactType.CHECKPOINT and a.step is not None]
        caught_up = {"current_step": max(saved)} if saved and max(saved) > run.current_step else {}
        self.final_step = caught_up.get("current_step", run.current_step)
        self.progress.update(run, force=True)
        try:
            self.client.report(*self.label, status=ending.status, message=ending.message, **caught_up)
        except ApiError as exc:
            if exc.status_code != 409:
                raise

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.terminate("训练流程出错")
        shutil.rmtree(self.scratch, ignore_errors=True)

    def latest_checkpoint(self) -> Artifact | None:
        checkpoints = [a for a in self.client.list_artifacts(*self.label) if a.type.value == "checkpoint"]
        return max(checkpoints, key=lambda a: (a.step or 0, a.created_at), default=None)

    def _deadline(self, sigterm: _SigtermWatch) -> float:
        if self.hang is not None and self.ended_elsewhere is not None:
            return self.stop_at  # the API gave the hung script its grace (LTM_HANG_GRACE_SECONDS) and ended the run
        deadline = self.stop_at + self.settings.script_stop_grace_seconds
        if sigterm.at is not None:
            deadline = min(deadline, sigterm.at + PREFECT_KILL_SECONDS - RECORD_MARGIN_SECONDS)
        return deadline

    def _heartbeat(self) -> None:
        """An empty report keeps the run from looking lost, and answers with its status (a cancel shows here)."""
        try:
            run = self.client.report(*self.label)
        except ApiError as exc:
            if exc.status_code not in (404, 409):
                return
            run = self._find()
            if run is None or run.status.is_terminal:
                self.ended_elsewhere = run.status if run else RunStatus.FAILED
                self.request_stop("运行已在别处结束", cancel=False)
            return
        except httpx.HTTPError:
            return  # the API is briefly unreachable; the script's own reporter retries its batches
        if run.status == RunStatus.CANCELLING:
            self.saw_cancelling = True
            self.request_stop("用户取消", cancel=True)
        elif run.hung_at is not None and self.hang is None:
            self.hang = run.message or "卡住"
            self.request_stop(self.hang, cancel=False)
        self.progress.update(run)

    def _read_devices(self) -> None:
        run = self._find()
        step = run.current_step if run else 0
        reading = self.telemetry.read(step, None)
        if reading.metrics:
            self.reporter.metrics(step, reading.metrics)
            self.reporter.progress(gpu_utilization=reading.utilization)

    def _find(self) -> Run | None:
        try:
            return self.client.find_run(self.run.id)
        except (ApiError, httpx.HTTPError):
            return None

    def _cancelling(self, flow_run_id: str | None) -> bool:
        """Whether a SIGTERM is a cancel: from Prefect (its UI) or from the API (status 取消中)."""
        if flow_run_is_cancelling(flow_run_id):
            return True
        run = self._find()
        return run is not None and run.status == RunStatus.CANCELLING

    def _cancel_message(self, code: int | None) -> str:
        checkpoint = self.latest_checkpoint()
        if self.terminated_after is not None:
            return (
                f"用户取消：脚本在 {self.terminated_after:.0f} 秒的宽限期内没有退出，已终止它的进程；"
                f"{_describe(checkpoint)}"
            )
        if checkpoint is not None and checkpoint.name == core.STOP_CHECKPOINT_NAMES[core.STOP_CANCEL]:
            message = f"用户取消，脚本已在第 {checkpoint.step} 步保存检查点"
        else:
            message = f"用户取消；脚本停止时没有保存检查点，{_describe(checkpoint)}"
        return message if code == 0 else f"{message}（脚本退出码 {code}）"

    def _failure_message(self, code: int) -> str:
        if code < 0:
            exit_text = f"脚本被信号 {_signal_name(-code)} 终止"
        else:
            exit_text = f"脚本退出码 {code}"
        text = f"{exit_text}；{self.output.failure_text()}"
        if self.output.out_of_memory:
            return f"显存不足（CUDA out of memory）：{text}"
        return f"脚本运行失败，{text}"


class _ProgressArtifact:
    """Prefect UI progress bar, from the progress the script reports; updated at most every few seconds."""

    def __init__(self, description: str, every: float = 2.0) -> None:
        self.description = description
        self.every = every
        self.id = None
        self.last = 0.0

    def update(self, run: Run, force: bool = False) -> None:
        if not run.total_steps or (not force and time.monotonic() - self.last < self.every):
            return
        percent = 100 * min(1.0, run.current_step / run.total_steps)
        if self.id is None:
            self.id = create_progress_artifact(percent, description=self.description)
        else:
            update_progress_artifact(self.id, percent)
        self.last = time.monotonic()


def _bounded(message: str | None) -> str | None:
    """A run's message fits MAX_TEXT_LENGTH: the start (what failed) and the end (the error itself) are kept."""
    if message is None or len(message) <= MAX_TEXT_LENGTH:
        return message
    keep = (MAX_TEXT_LENGTH - len(ELIDED)) // 2
    return message[:keep] + ELIDED + message[-keep:]


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _describe(checkpoint: Artifact | None) -> str:
    if checkpoint is None:
        return "运行没有保存过检查点"
    return f"最新的检查点是第 {checkpoint.step} 步的 {checkpoint.id}"


def _scratch_folder(settings: Settings, run: Run) -> Path:
    """Where the script writes checkpoints before saving them: inside the run's folder when artifacts are local (a
    save is then a rename), else a temporary folder on this worker."""
    folder = artifact_paths.run_folder(settings.artifact_root_url, run.project_id, run.id)
    if folder.protocol is None:
        path = Path(folder.path, ".script")
        path.mkdir(parents=True, exist_ok=True)
        return path
    return Path(tempfile.mkdtemp(prefix=f"ltm-{run.id}-"))


def _materialise_checkpoint(client: Client, run: Run, settings: Settings, target: Path) -> tuple[Path, int]:
    """The checkpoint to resume from as a local path (downloaded when artifacts are remote), and its step."""
    for artifact in client.list_artifacts(run.project_id, run.parent_run_id):
        if artifact.id != run.resumed_from:
            continue
        try:
            location = artifact_paths.checked(
                artifact.path, settings.artifact_root_url, run.project_id, run.parent_run_id
            )
        except artifact_paths.OutsideRunFolder as exc:
            raise ScriptConfigError(f"检查点 {run.resumed_from} 不能读取：{exc}") from None
        fs = location.filesystem()
        if artifact.checksums is not None:
            problems = checksums.differences(artifact.checksums, checksums.of_location(fs, location.path))
            if problems:
                client.verify_artifact(run.project_id, run.parent_run_id, artifact.id)
                raise ScriptConfigError(f"检查点 {artifact.id} 已损坏，不能从它恢复：{'；'.join(problems)}")
        step = artifact.step or 0
        if location.protocol is None:
            return Path(location.path), step
        if fs.isfile(location.path):
            local = target / Path(location.path).name
            target.mkdir(parents=True, exist_ok=True)
            fs.get_file(location.path, str(local))
            return local, step
        for remote in fs.find(location.path):
            local = target / Path(remote).relative_to(location.path)
            local.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(remote, str(local))
        return target, step
    raise ScriptConfigError(f"找不到要恢复的检查点 {run.resumed_from}")


def train_script(client: Client, run: Run, settings: Settings, flow_run_id: str | None):
    """The training flow's body for a run with an entrypoint; returns or raises as the trainer path does."""
    logger = get_run_logger()
    try:
        script = ScriptRun.prepare(client, run, settings)
    except ScriptConfigError as exc:
        client.report(run.project_id, run.id, status=RunStatus.FAILED, message=f"配置无效：{exc}")
        raise
    logger.info("开始脚本运行 %s：%s（%s 个进程）", run.name, run.entrypoint, script.processes)
    ending = None
    try:
        with _SigtermWatch() as sigterm:
            script.start(flow_run_id)
            script.supervise(sigterm, flow_run_id)
            ending = script.ending(sigterm, flow_run_id)
            script.finish(ending)
    except Exception as exc:
        script.cleanup()
        if ending is None and script.ended_elsewhere is None:
            script.finish(Ending(RunStatus.FAILED, f"训练流程出错：{exc}", False))
        raise
    finally:
        script.cleanup()
    logger.info("脚本运行结束：%s %s", ending.status.value, ending.message or "")
    if ending.status == RunStatus.CANCELLED or script.ended_elsewhere is not None:
        # A run ended elsewhere (the API ended it hung, or it was deleted) cancels its orchestrator run too: end it
        # Cancelled here rather than race that cancel's signal to a Failed or Crashed state.
        forget(flow_run_id)
        return Cancelled(message=ending.message)
    if ending.signalled:
        raise TerminationSignal(signal=signal.SIGTERM)
    forget(flow_run_id)
    if ending.status == RunStatus.FAILED:
        raise ScriptFailed(ending.message)
    return {"run_id": run.id, "steps": script.final_step}
