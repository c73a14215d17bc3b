"""One training run as seen from inside its flow: trainer, reporter and artifact files together."""

import os
import time
from dataclasses import dataclass

from ltm import artifact_paths
from ltm.client import Client
from ltm.environment import describe as describe_environment
from ltm.flows.artifact_io import ArtifactWriter, CorruptCheckpoint, TensorBoardWriter, read_checkpoint
from ltm.flows.signals import sigterm_deferred
from ltm.gpu_telemetry import DeviceTelemetry
from ltm.models import Run, RunStatus
from ltm.reporter import RunReporter
from ltm.settings import Settings
from ltm.trainers import InvalidConfig, Trainer, TrainerConfig, get_trainer


class CancelRequested(Exception):
    """The API marked the run 取消中 (a cancel that did not come through a signal)."""


@dataclass
class EpochResult:
    epoch: int
    step: int
    evaluation: dict[str, float]
    checkpoint_path: str


class TrainingSession:
    def __init__(self, client: Client, run: Run, trainer: Trainer, settings: Settings) -> None:
        self.client = client
        self.run = run
        self.trainer = trainer
        self.files = ArtifactWriter(settings.artifact_root_url, run.project_id, run.id)
        self.reporter = RunReporter(client, run.project_id, run.id)
        self.telemetry = DeviceTelemetry(run.devices, seed=run.hyperparameters.get("seed"))
        self.tensorboard: TensorBoardWriter | None = None
        self._tensorboard_registered = False
        pace = getattr(trainer, "step_seconds", 0.0)  # a trainer without the attribute runs at its own speed
        self.pace = settings.step_seconds if pace is None else pace

    @classmethod
    def open(cls, client: Client, run: Run, task_type: str | None, settings: Settings) -> "TrainingSession":
        """Build the trainer from the run's config; restore it when the run resumes a checkpoint."""
        config = TrainerConfig(
            model=run.model,
            dataset=run.dataset,
            task_type=task_type,
            hyperparameters=run.hyperparameters,
            resources=run.resources,
        )
        trainer = get_trainer(run.trainer)(config)
        if run.resumed_from:
            trainer.restore_files(_read_resumed(client, run, settings))
        return cls(client, run, trainer, settings)

    @property
    def label(self) -> tuple[str, str]:
        return self.run.project_id, self.run.id

    def start(self, flow_run_id: str | None) -> None:
        self.tensorboard = TensorBoardWriter(self.files.tensorboard_dir)
        config = self.run.model_dump(
            mode="json",
            include={"id", "project_id", "name", "model", "dataset", "hyperparameters", "resources", "resumed_from"},
        )
        written = self.files.write_config(config)
        self.client.register_artifact(
            *self.label, type="config", name="运行配置", path=written.path, size_bytes=written.size_bytes
        )
        self.client.report(
            *self.label,
            status=RunStatus.RUNNING,
            flow_run_id=flow_run_id,
            total_steps=self.trainer.total_steps,
            current_step=self.trainer.step,
            progress=self.trainer.step / self.trainer.total_steps,
            environment=describe_environment(self.run.devices, self.run.resources.get("gpu_type")),
        )
        where = f"从第 {self.trainer.step} 步恢复" if self.run.resumed_from else "从头开始"
        self.reporter.log(f"训练开始（{where}），共 {self.trainer.total_steps} 步，进程 {os.getpid()}")
        if self.run.devices:
            visible = os.environ.get("CUDA_VISIBLE_DEVICES", "（未设置）")
            self.reporter.log(
                f"GPU：主机 {self.run.gpu_host} 的 {'、'.join(self.run.devices)}（CUDA_VISIBLE_DEVICES={visible}）"
            )

    def remaining_epochs(self) -> range:
        """The epochs left to train: to the end, or to the sweep rung's stop step (an epoch boundary)."""
        first = self.trainer.step // self.trainer.steps_per_epoch + 1
        last = self.trainer.total_steps // self.trainer.steps_per_epoch
        if self.run.stop_at_step is not None:
            last = min(last, self.run.stop_at_step // self.trainer.steps_per_epoch)
        return range(first, last + 1)

    @property
    def stopped_early(self) -> bool:
        """Whether the run stopped at its sweep rung before the trainer's last step."""
        return self.trainer.step < self.trainer.total_steps

    def train_epoch(self, epoch: int) -> EpochResult:
        """Train to the end of `epoch`, then evaluate and checkpoint; raises CancelRequested between steps."""
        end = epoch * self.trainer.steps_per_epoch
        while self.trainer.step < end:
            if self.reporter.remote_status == RunStatus.CANCELLING:
                raise CancelRequested
            started = time.monotonic()
            with sigterm_deferred():
                out = self.trainer.train_step()
                devices = self.telemetry.read(out.step, out.gpu_utilization)
                metrics = {**out.metrics, **devices.metrics}
                self.reporter.metrics(out.step, metrics)
                self.tensorboard.add_scalars(out.step, metrics)
                if out.log:
                    self.reporter.log(out.log)
                self.reporter.progress(
                    progress=out.step / self.trainer.total_steps,
                    current_step=out.step,
                    gpu_utilization=devices.utilization,
                )
            if self.pace:
                time.sleep(max(0.0, self.pace - (time.monotonic() - started)))
        evaluation = self.trainer.evaluate()
        self.reporter.metrics(self.trainer.step, evaluation)
        self.tensorboard.add_scalars(self.trainer.step, evaluation)
        written = self.files.write_evaluation(epoch, self.trainer.step, evaluation)
        self.reporter.artifact(
            type="evaluation",
            name=f"第 {epoch} 轮评估结果",
            path=written.path,
            size_bytes=written.size_bytes,
            step=self.trainer.step,
        )
        summary = "，".join(f"{k}={v:.4g}" for k, v in evaluation.items())
        self.reporter.log(f"第 {epoch} 轮结束（第 {self.trainer.step} 步）：{summary}")
        written = self.files.write_checkpoint(f"step-{self.trainer.step:08d}", self.trainer.checkpoint_files())
        self.reporter.artifact(
            type="checkpoint",
            name=f"第 {self.trainer.step} 步检查点",
            path=written.path,
            size_bytes=written.size_bytes,
            step=self.trainer.step,
            checksums=written.checksums,
        )
        self.reporter.log(f"已保存检查点（第 {self.trainer.step} 步）：{written.path}")
        return EpochResult(epoch, self.trainer.step, evaluation, written.path)

    def save_stop_checkpoint(self, name: str) -> str:
        """Checkpoint where training stopped, registered before the run's final status is recorded."""
        written = self.files.write_checkpoint(f"stop-step-{self.trainer.step:08d}", self.trainer.checkpoint_files())
        self.reporter.flush()
        artifact = self.client.register_artifact(
            *self.label,
            type="checkpoint",
            name=name,
            path=written.path,
            size_bytes=written.size_bytes,
            step=self.trainer.step,
            checksums=written.checksums,
        )
        self.reporter.log(f"已保存检查点 {artifact.id}（第 {self.trainer.step} 步）")
        return artifact.id

    def finish(self, status: RunStatus, message: str | None = None) -> None:
        """Flush everything, list the TensorBoard logs, and record the final status."""
        if message:
            level = {RunStatus.FAILED: "ERROR", RunStatus.COMPLETED: "INFO"}.get(status, "WARNING")
            self.reporter.log(message, level=level)
        self.reporter.close()
        try:
            self._register_tensorboard()
        except OSError as exc:
            message = f"{message}；TensorBoard 日志未能写完：{exc}" if message else f"TensorBoard 日志未能写完：{exc}"
        self.client.report(*self.label, status=status, message=message)

    def _register_tensorboard(self) -> None:
        if self.tensorboard is None or self._tensorboard_registered:
            return
        self.tensorboard.close()
        self.client.register_artifact(
            *self.label,
            type="event",
            name="TensorBoard 日志",
            path=self.files.tensorboard_dir,
            size_bytes=self.tensorboard.size_bytes(),
        )
        self._tensorboard_registered = True


def _read_resumed(client: Client, run: Run, settings: Settings) -> dict[str, bytes]:
    """The files of the checkpoint to resume from, read only from inside its own run's folder and only when they
    match the SHA-256 recorded as they were written; a mismatch is reported so the API marks the checkpoint."""
    for artifact in client.list_artifacts(run.project_id, run.parent_run_id):
        if artifact.id == run.resumed_from:
            try:
                location = artifact_paths.checked(
                    artifact.path, settings.artifact_root_url, run.project_id, run.parent_run_id
                )
            except artifact_paths.OutsideRunFolder as exc:
                raise InvalidConfig(f"检查点 {run.resumed_from} 不能读取：{exc}") from None
            try:
                return read_checkpoint(location, artifact.checksums)
            except CorruptCheckpoint as exc:
                client.verify_artifact(run.project_id, run.parent_run_id, artifact.id)
                raise InvalidConfig(f"检查点 {artifact.id} 已损坏，不能从它恢复：{exc}") from None
    raise InvalidConfig(f"找不到要恢复的检查点 {run.resumed_from}")
