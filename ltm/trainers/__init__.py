"""Trainers are found through the `ltm.trainers` entry-point group, so other packages can add their own."""

import functools
from dataclasses import asdict
from importlib.metadata import entry_points

from ltm.trainers.base import Hyperparameter, InvalidConfig, StepOutput, Trainer, TrainerConfig

ENTRY_POINT_GROUP = "ltm.trainers"
DEFAULT_TRAINER = "simulated"


def _entry_points() -> dict:
    return {entry.name: entry for entry in entry_points(group=ENTRY_POINT_GROUP)}


@functools.cache
def _load(name: str) -> type[Trainer]:
    return _entry_points()[name].load()


def installed() -> dict[str, type[Trainer]]:
    """Trainers whose entry point loads here (one whose optional dependencies are missing is left out)."""
    found = {}
    for name in sorted(_entry_points()):
        try:
            found[name] = _load(name)
        except ImportError:
            continue
    return found


def get_trainer(name: str) -> type[Trainer]:
    """Load only the named trainer (others may pull in heavy optional dependencies)."""
    try:
        if name in _entry_points():
            return _load(name)
    except ImportError:
        pass
    names = "、".join(installed()) or "无"
    raise InvalidConfig(f"未知的训练器 {name!r}，已安装的训练器：{names}")


def describe(trainer: type[Trainer]) -> dict:
    return {"name": trainer.name, "description": trainer.description,
            "hyperparameters": [asdict(h) for h in trainer.hyperparameters]}


__all__ = [
    "DEFAULT_TRAINER",
    "ENTRY_POINT_GROUP",
    "Hyperparameter",
    "InvalidConfig",
    "StepOutput",
    "Trainer",
    "TrainerConfig",
    "describe",
    "get_trainer",
    "installed",
]
