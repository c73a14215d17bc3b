"""Interface every training backend implements so the flows can drive it step by step."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar


class InvalidConfig(ValueError):
    """Raised when a trainer cannot run with the given configuration."""


@dataclass(frozen=True)
class Hyperparameter:
    """One hyperparameter a trainer understands, as listed by `GET /trainers`."""

    name: str
    type: str
    default: Any
    description: str


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
