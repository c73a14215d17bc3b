"""A trainer that fakes realistic training curves without touching a GPU.

Every random draw comes from a generator seeded with ``(seed, step, stream)``, and the only
values carried from step to step live in ``state_dict()``; a trainer restored at step k
therefore reproduces the uninterrupted run exactly.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ltm.trainers.base import (
    Hyperparameter,
    InvalidConfig,
    StepOutput,
    Trainer,
    TrainerConfig,
    check_warmup,
    read_int,
)

LOG_EVERY_STEPS = 10
MAX_LOSS = 50.0

STATE_FILE = "state.json"

_TRAIN_STREAM = 0
_EVAL_STREAM = 1
_WEIGHTS_STREAM = 2

_BASE_PROGRESS_PER_STEP = 0.03
_SWEET_SPOT_LR = 1.5e-4
_INSTABILITY_LR = 1e-2
_REFERENCE_BATCH_SIZE = 16
_REFERENCE_MODEL_BILLIONS = 7.0
_LOSS_EMA_WEIGHT = 0.1
_SIMULATED_LAYER_COUNT = 4

# Fine-tuning throughput of one GPU on a 7B model; longer names first so "A100" wins over "A10".
_TOKENS_PER_SECOND_PER_GPU = {
    "H200": 4200.0,
    "H100": 3600.0,
    "H800": 3400.0,
    "A100": 2200.0,
    "A800": 2100.0,
    "L40S": 1500.0,
    "4090": 900.0,
    "V100": 800.0,
    "H20": 1800.0,
    "A10": 700.0,
    "T4": 250.0,
}
_UNKNOWN_GPU_TOKENS_PER_SECOND = 1500.0
_CPU_TOKENS_PER_SECOND = 40.0


@dataclass(frozen=True)
class _TaskProfile:
    kind: str
    keywords: tuple[str, ...]
    initial_loss: float
    loss_floor: float


_TASK_PROFILES = (
    _TaskProfile("summarization", ("摘要", "summar"), 3.0, 1.35),
    _TaskProfile("qa", ("问答", "qa", "question"), 2.6, 0.9),
    _TaskProfile("translation", ("翻译", "translat"), 3.4, 1.2),
    _TaskProfile("classification", ("分类", "classif"), 1.1, 0.18),
)
_GENERIC_PROFILE = _TaskProfile("generic", (), 3.5, 1.6)


def task_profile(task_type: str | None) -> _TaskProfile:
    normalized = (task_type or "").strip().lower()
    for profile in _TASK_PROFILES:
        if any(keyword in normalized for keyword in profile.keywords):
            return profile
    return _GENERIC_PROFILE


def _model_size_billions(model: str) -> float:
    match = re.search(r"(\d+(?:\.\d+)?)\s*([bBmM])(?![a-zA-Z])", model)
    if match is None:
        return 1.0
    size = float(match.group(1))
    size = size if match.group(2) in "bB" else size / 1000
    return max(size, 0.01)


def _per_gpu_tokens_per_second(gpu_type: str | None) -> float:
    normalized = (gpu_type or "").upper()
    for known_type in sorted(_TOKENS_PER_SECOND_PER_GPU, key=len, reverse=True):
        if known_type in normalized:
            return _TOKENS_PER_SECOND_PER_GPU[known_type]
    return _UNKNOWN_GPU_TOKENS_PER_SECOND


def _rounded(value: float) -> float:
    return float(f"{value:.6g}")


class SimulatedTrainer(Trainer):
    name: ClassVar[str] = "simulated"
    description: ClassVar[str] = "模拟训练器：不占用 GPU，生成逼真且可复现的训练曲线"
    hyperparameters: ClassVar[tuple[Hyperparameter, ...]] = (
        Hyperparameter(
            "learning_rate", "float", 3e-5, "学习率，(0, 1]；过高会不稳定", 0.0, 1.0, minimum_exclusive=True
        ),
        Hyperparameter("batch_size", "int", 16, "批大小，1–65536；越大噪声越小", 1, 65536),
        Hyperparameter("num_epochs", "int", 3, "训练轮数，1–1000", 1, 1000),
        Hyperparameter("steps_per_epoch", "int", 100, "每轮步数", 1, 1_000_000),
        Hyperparameter("seed", "int", 42, "随机种子，相同种子与状态得到相同曲线"),
        Hyperparameter("warmup_steps", "int", 0, "学习率线性预热步数", 0),
        Hyperparameter("step_seconds", "float", None, "每步模拟耗时（秒），0–60；缺省用 LTM_STEP_SECONDS", 0.0, 60.0),
    )

    @classmethod
    def check_together(cls, values: dict[str, Any]) -> None:
        check_warmup(values)

    def __init__(self, config: TrainerConfig) -> None:
        super().__init__(config)
        values = self.resolve_hyperparameters(config.hyperparameters or {})
        self._learning_rate = values["learning_rate"]
        self._batch_size = values["batch_size"]
        self._num_epochs = values["num_epochs"]
        self._steps_per_epoch = values["steps_per_epoch"]
        self._seed = values["seed"]
        self._warmup_steps = values["warmup_steps"]
        self._step_seconds = values["step_seconds"]

        resources = config.resources or {}
        gpu_type = resources.get("gpu_type")
        if gpu_type is not None and not isinstance(gpu_type, str):
            raise InvalidConfig(f"资源配置 gpu_type 必须是字符串，当前值为 {gpu_type!r}")
        self._gpu_type = gpu_type
        self._gpu_count = read_int(resources, "gpu_count", 1 if gpu_type else 0, 0, None, label="资源配置")

        self._profile = task_profile(config.task_type)
        self._model_billions = _model_size_billions(config.model)
        self._seed_entropy = self._seed % 2**64

        self._step = 0
        self._progress = 0.0
        self._divergence = 0.0
        self._smoothed_loss: float | None = None

    @property
    def total_steps(self) -> int:
        return self._num_epochs * self._steps_per_epoch

    @property
    def steps_per_epoch(self) -> int:
        return self._steps_per_epoch

    @property
    def step(self) -> int:
        return self._step

    @property
    def step_seconds(self) -> float:
        return self._step_seconds

    def learning_rate_at(self, step: int) -> float:
        if self._warmup_steps and step <= self._warmup_steps:
            return self._learning_rate * step / self._warmup_steps
        decay_steps = max(1, self.total_steps - self._warmup_steps)
        fraction = min(1.0, (step - self._warmup_steps) / decay_steps)
        return self._learning_rate * 0.5 * (1.0 + math.cos(math.pi * fraction))

    def train_step(self) -> StepOutput:
        if self._step >= self.total_steps:
            raise RuntimeError(f"训练已完成全部 {self.total_steps} 步，不能继续执行训练步")
        step = self._step + 1
        learning_rate = self.learning_rate_at(step)
        overshoot = learning_rate / _INSTABILITY_LR

        self._progress += _BASE_PROGRESS_PER_STEP * self._learning_efficiency(learning_rate) * self._batch_factor()
        self._divergence += max(0.0, overshoot - 1.0) * 0.003

        rng = self._rng(step, _TRAIN_STREAM)
        noise_scale = 0.4 / math.sqrt(self._batch_size)
        if overshoot > 1.0:
            noise_scale *= 1.0 + 2.0 * math.log2(overshoot)
        train_loss = self._clean_loss() * math.exp(noise_scale * rng.standard_normal())
        spike_draw, spike_size = rng.random(), rng.exponential(0.8)
        if overshoot > 1.0 and spike_draw < min(0.25, 0.03 * overshoot):
            train_loss *= 1.0 + spike_size
        train_loss = min(train_loss, MAX_LOSS)

        utilization = self._gpu_utilization(rng)
        tokens_per_second = self._tokens_per_second(utilization, rng)

        self._step = step
        if self._smoothed_loss is None:
            self._smoothed_loss = train_loss
        else:
            self._smoothed_loss += _LOSS_EMA_WEIGHT * (train_loss - self._smoothed_loss)

        return StepOutput(
            step=step,
            metrics={
                "train_loss": float(train_loss),
                "learning_rate": float(learning_rate),
                "tokens_per_second": float(tokens_per_second),
            },
            gpu_utilization=float(utilization),
            log=self._log_line(step, train_loss, learning_rate),
        )

    def evaluate(self) -> dict[str, float]:
        rng = self._rng(self._step, _EVAL_STREAM)
        epochs_done = self._step / self._steps_per_epoch
        overfitting_gap = 0.015 * max(0.0, epochs_done - 1.0) ** 1.3
        eval_loss = self._clean_loss() * 1.03 + overfitting_gap
        eval_loss = min(eval_loss * math.exp(0.01 * rng.standard_normal()), MAX_LOSS)
        metrics = {"eval_loss": float(eval_loss)}
        metrics.update(self._task_metric(eval_loss, rng))
        return metrics

    def checkpoint_files(self) -> dict[str, bytes]:
        return {STATE_FILE: json.dumps(self.state_dict(), ensure_ascii=False, allow_nan=False).encode()}

    def restore_files(self, files: dict[str, bytes]) -> None:
        if STATE_FILE not in files:
            raise ValueError(f"检查点缺少 {STATE_FILE}")
        self.load_state_dict(json.loads(files[STATE_FILE]))

    def state_dict(self) -> dict:
        return {
            "trainer": self.name,
            "step": self._step,
            "progress": self._progress,
            "divergence": self._divergence,
            "smoothed_loss": self._smoothed_loss,
            "weights": self._weights_summary(),
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("trainer") != self.name:
            raise ValueError(f"检查点来自训练器 {state.get('trainer')!r}，无法加载到 {self.name} 训练器")
        missing = [key for key in ("step", "progress", "divergence", "smoothed_loss") if key not in state]
        if missing:
            raise ValueError(f"检查点缺少字段：{', '.join(missing)}")
        step = state["step"]
        if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= self.total_steps:
            raise ValueError(f"检查点中的步数 {step!r} 不在 0 到 {self.total_steps} 之间")
        self._step = step
        self._progress = float(state["progress"])
        self._divergence = float(state["divergence"])
        smoothed_loss = state["smoothed_loss"]
        self._smoothed_loss = None if smoothed_loss is None else float(smoothed_loss)

    def _rng(self, step: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([self._seed_entropy, step, stream])

    def _learning_efficiency(self, learning_rate: float) -> float:
        ratio = learning_rate / _SWEET_SPOT_LR
        return ratio**0.75 if ratio <= 1.0 else 1.0

    def _batch_factor(self) -> float:
        return min(3.0, max(0.4, (self._batch_size / _REFERENCE_BATCH_SIZE) ** 0.3))

    def _loss_floor(self) -> float:
        floor = self._profile.loss_floor * (_REFERENCE_MODEL_BILLIONS / self._model_billions) ** 0.05
        too_high_ratio = self._learning_rate / _SWEET_SPOT_LR
        if too_high_ratio > 1.0:
            floor += 0.25 * math.log10(too_high_ratio)
        return floor

    def _clean_loss(self) -> float:
        floor = self._loss_floor()
        remaining = max(0.0, self._profile.initial_loss - floor) * math.exp(-self._progress)
        return min(floor + remaining + self._divergence, MAX_LOSS)

    def _gpu_utilization(self, rng: np.random.Generator) -> float:
        jitter = rng.normal(0.0, 0.015)
        if self._gpu_count == 0:
            return 0.0
        per_gpu_batch = self._batch_size / self._gpu_count
        saturation = per_gpu_batch / (per_gpu_batch + 4.0)
        communication_overhead = 0.03 * math.log2(self._gpu_count)
        utilization = 0.3 + 0.65 * saturation - communication_overhead + jitter
        return min(1.0, max(0.05, utilization))

    def _tokens_per_second(self, utilization: float, rng: np.random.Generator) -> float:
        model_scale = (_REFERENCE_MODEL_BILLIONS / self._model_billions) ** 0.9
        jitter = 1.0 + 0.03 * rng.standard_normal()
        if self._gpu_count == 0:
            return max(1.0, _CPU_TOKENS_PER_SECOND * model_scale * jitter)
        per_gpu = _per_gpu_tokens_per_second(self._gpu_type)
        return max(1.0, per_gpu * self._gpu_count**0.9 * model_scale * (0.2 + utilization) * jitter)

    def _task_metric(self, eval_loss: float, rng: np.random.Generator) -> dict[str, float]:
        profile = self._profile
        quality = (profile.initial_loss - eval_loss) / (profile.initial_loss - profile.loss_floor)
        quality = min(1.0, max(0.0, quality))
        noise = rng.standard_normal()
        if profile.kind == "summarization":
            return {"eval_rouge_l": float(np.clip(10 + 32 * quality + 0.6 * noise, 0, 100))}
        if profile.kind == "qa":
            return {"eval_exact_match": float(np.clip(8 + 64 * quality + 1.0 * noise, 0, 100))}
        if profile.kind == "translation":
            return {"eval_bleu": float(np.clip(3 + 33 * quality + 0.5 * noise, 0, 100))}
        if profile.kind == "classification":
            return {"eval_accuracy": float(np.clip(0.5 + 0.43 * quality + 0.005 * noise, 0, 1))}
        return {"eval_perplexity": float(math.exp(min(eval_loss, 20.0)))}

    def _log_line(self, step: int, train_loss: float, learning_rate: float) -> str | None:
        if step % LOG_EVERY_STEPS and step not in (1, self.total_steps):
            return None
        epoch = (step - 1) // self._steps_per_epoch + 1
        return (
            f"第 {step}/{self.total_steps} 步（第 {epoch} 轮）- loss={train_loss:.4f} "
            f"平滑 loss={self._smoothed_loss:.4f} lr={learning_rate:.3g}"
        )

    def _weights_summary(self) -> dict[str, Any]:
        rng = self._rng(self._step, _WEIGHTS_STREAM)
        drift = 1.0 - math.exp(-self._progress) + self._divergence
        layers = []
        for index in range(_SIMULATED_LAYER_COUNT):
            std = 0.02 * (1.0 + 0.1 * (index + 1) * drift) * (1.0 + 0.01 * rng.standard_normal())
            layers.append(
                {
                    "name": f"layers.{index}.mlp",
                    "mean": _rounded(0.001 * rng.standard_normal() * drift),
                    "std": _rounded(std),
                    "l2_norm": _rounded(std * 2048.0),
                }
            )
        checksum = hashlib.sha256(json.dumps(layers, sort_keys=True).encode()).hexdigest()
        return {
            "num_parameters": int(self._model_billions * 1e9),
            "layers": layers,
            "checksum": checksum,
        }
