"""Hugging Face `transformers.Trainer` inside an ltm script run (the optional extra `ltm[hf]`).

    with ltm.core.init() as ctx:
        trainer = Trainer(..., args=TrainingArguments(output_dir=str(ctx.checkpoint.dir), ...),
                          callbacks=[LtmCallback(ctx)])
        trainer.train(resume_from_checkpoint=resume_from_checkpoint(ctx))

`LtmCallback` sends the Trainer's logs to the run (the numbers as metrics at the global step, and one log line each),
sets the run's total steps, registers every `checkpoint-<step>` folder the Trainer writes as a checkpoint of the run,
and turns the run's stop flag (a cancel) into one last checkpoint and the end of training. A Trainer checkpoint holds
everything needed to continue (weights, optimizer, scheduler, RNG states, trainer state), so a run resumed from one
continues with the losses the interrupted run would have had.

With `output_dir` set to `ctx.checkpoint.dir` and a local artifact root, `ctx.checkpoint.save` moves the files into the
run's artifact folder instead of copying them (leaving the Trainer's folder empty); the Trainer never reads a checkpoint
it wrote unless `load_best_model_at_end` or `save_total_limit` is set, so leave those unset or point `output_dir`
elsewhere.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

TRAINER_STATE_FILE = "trainer_state.json"


class LtmCallback(TrainerCallback):
    """Reports a `transformers.Trainer`'s logs and checkpoints to the run of `ctx`; stops it when the run is cancelled.

    `ctx` is the context of `ltm.core.init()`. Add the callback on every rank: the stop flag is agreed by all ranks
    at each step end, and only rank 0 reports.
    """

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.stopped_at: int | None = None

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        if state.max_steps and state.max_steps > 0:
            self.ctx.set_total_steps(state.max_steps)

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        metrics = numbers(logs)
        finite = {name: value for name, value in metrics.items() if math.isfinite(value)}
        if finite:
            self.ctx.report(state.global_step, finite)
        if metrics:
            self.ctx.log(log_line(state, metrics), level="INFO" if len(finite) == len(metrics) else "WARNING")

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        if args.world_size > 1:
            args.distributed_state.wait_for_everyone()  # every rank has written its part (e.g. its RNG state)
        folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        self.ctx.checkpoint.save(state.global_step, folder)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        if self.ctx.should_stop():
            self.stopped_at = state.global_step
            control.should_save = True
            control.should_training_stop = True
        return control


def resume_from_checkpoint(ctx: Any) -> str | None:
    """The `resume_from_checkpoint` argument of `Trainer.train` for this run: its resume checkpoint, or None.

    The checkpoint is a Trainer checkpoint folder, or a folder holding `checkpoint-<step>` folders (the last is used).
    """
    if ctx.checkpoint.resume_path is None:
        return None
    folder = Path(ctx.checkpoint.resume_path)
    if (folder / TRAINER_STATE_FILE).is_file():
        return str(folder)
    inner = [child for child in folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*") if (child / TRAINER_STATE_FILE).is_file()]
    inner = [child for child in inner if child.name.rsplit("-", 1)[-1].isdigit()]
    if not inner:
        raise FileNotFoundError(
            f"恢复用的检查点 {folder} 中没有 {TRAINER_STATE_FILE}，它不是 transformers Trainer 的检查点"
        )
    return str(max(inner, key=lambda child: int(child.name.rsplit("-", 1)[-1])))


def numbers(logs: dict[str, Any]) -> dict[str, float]:
    """The numeric entries of the Trainer's logs (it may also log strings or None)."""
    return {
        name: float(value)
        for name, value in logs.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def log_line(state: TrainerState, metrics: dict[str, float]) -> str:
    shown = " ".join(f"{name}={value:.4g}" for name, value in metrics.items())
    return f"第 {state.global_step}/{state.max_steps} 步 - {shown}"
