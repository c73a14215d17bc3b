"""Interface every training backend implements so the flows can drive it step by step."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar


class InvalidConfig(ValueError):
    """Raised when a trainer cannot run with the given configuration."""


@dataclass(frozen=True)
class Hyperparameter:
    """One hyperparameter a trainer understands: its validator, its default and what `GET /trainers` lists."""

    name: str
    type: str  # "int", "float" or "str"
    default: Any
    description: str
    minimum: float | None = None
    maximum: float | None = None
    minimum_exclusive: bool = False

    def read(self, values: dict) -> Any:
        """The validated value from `values`, or the default when it is absent or null."""
        if self.type == "int":
            return read_int(values, self.name, self.default, self.minimum, self.maximum)
        if self.type == "float":
            return read_float(values, self.name, self.default, self.minimum, self.maximum, self.minimum_exclusive)
        value = values.get(self.name)
        if value is None:
            return self.default
        if not isinstance(value, str):
            raise InvalidConfig(f"超参数 {self.name} 必须是字符串，当前值为 {value!r}")
        return value


@dataclass(frozen=True)
class TrainerConfig:
    model: str
    dataset: str
    task_type: str | None
    hyperparameters: dict
    resources: dict


@dataclass
class StepOutput:
    step: int
    metrics: dict[str, float]
    gpu_utilization: float
    log: str | None


class Trainer(ABC):
    name: ClassVar[str]
    description: ClassVar[str] = ""
    hyperparameters: ClassVar[tuple[Hyperparameter, ...]] = ()
    requires: ClassVar[tuple[str, ...]] = ()  # importable modules the trainer needs (imported lazily by it)

    @classmethod
    def resolve_hyperparameters(cls, values: dict) -> dict[str, Any]:
        """Every declared hyperparameter, validated against its declaration and `check_together`, or filled with
        its default. The API calls it when a run is created, so it must not import what the trainer needs."""
        resolved = {declared.name: declared.read(values) for declared in cls.hyperparameters}
        cls.check_together(resolved)
        return resolved

    @classmethod
    def check_together(cls, values: dict[str, Any]) -> None:
        """Rules that span several resolved hyperparameters; raise InvalidConfig naming them."""
        return None

    def __init__(self, config: TrainerConfig) -> None:
        self.config = config

    @property
    @abstractmethod
    def total_steps(self) -> int: ...

    @property
    @abstractmethod
    def steps_per_epoch(self) -> int: ...

    @property
    @abstractmethod
    def step(self) -> int:
        """Number of steps completed so far."""

    @abstractmethod
    def train_step(self) -> StepOutput: ...

    @abstractmethod
    def evaluate(self) -> dict[str, float]:
        """Evaluation metrics of the current state; every name starts with ``eval_``."""

    @abstractmethod
    def checkpoint_files(self) -> dict[str, bytes]:
        """The full state as named files (e.g. weights, optimizer, RNG), enough to resume with identical results."""

    @abstractmethod
    def restore_files(self, files: dict[str, bytes]) -> None:
        """Continue from files written by `checkpoint_files`."""


def check_warmup(values: dict[str, Any]) -> None:
    """warmup_steps within the run's num_epochs × steps_per_epoch."""
    total_steps = values["num_epochs"] * values["steps_per_epoch"]
    if values["warmup_steps"] > total_steps:
        raise InvalidConfig(f"超参数 warmup_steps 不能超过总步数 {total_steps}，当前值为 {values['warmup_steps']}")


def _range_text(minimum: float | None, maximum: float | None, minimum_exclusive: bool) -> str:
    parts = []
    if minimum is not None:
        parts.append(f"大于 {minimum}" if minimum_exclusive else f"不小于 {minimum}")
    if maximum is not None:
        parts.append(f"不超过 {maximum}")
    return " 且 ".join(parts)


def read_int(
    values: dict, key: str, default: int, minimum: int | None, maximum: int | None, label: str = "超参数"
) -> int:
    value = values.get(key)
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidConfig(f"{label} {key} 必须是整数，当前值为 {value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise InvalidConfig(f"{label} {key} 必须{_range_text(minimum, maximum, False)}，当前值为 {value}")
    return value


def read_float(
    values: dict,
    key: str,
    default: float,
    minimum: float | None,
    maximum: float | None,
    minimum_exclusive: bool = False,
) -> float:
    value = values.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidConfig(f"超参数 {key} 必须是有限的数值，当前值为 {value!r}")
    below = minimum is not None and (value <= minimum if minimum_exclusive else value < minimum)
    if below or (maximum is not None and value > maximum):
        raise InvalidConfig(f"超参数 {key} 必须{_range_text(minimum, maximum, minimum_exclusive)}，当前值为 {value}")
    return float(value)
