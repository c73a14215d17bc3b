"""The public plugin API for trainers; trainers are found through the `ltm.trainers` entry-point group.

`from ltm.trainers import Trainer, TrainerConfig, StepOutput, Hyperparameter` is all a trainer package needs.
"""

import functools
import importlib.util
from dataclasses import asdict
from importlib.metadata import entry_points

from ltm.trainers.base import Hyperparameter, InvalidConfig, StepOutput, Trainer, TrainerConfig

ENTRY_POINT_GROUP = "ltm.trainers"
DEFAULT_TRAINER = "simulated"
SCRIPT = "script"  # the `trainer` of a run that has an entrypoint: its own script trains, no Trainer class


@functools.cache
def _entry_points() -> dict:
    """Read once per process, like the trainers loaded from it: reading package metadata costs milliseconds, and
    every run created asks."""
    return {entry.name: entry for entry in entry_points(group=ENTRY_POINT_GROUP)}


@functools.cache
def _load(name: str) -> type[Trainer]:
    trainer = _entry_points()[name].load()
    missing = [module for module in trainer.requires if importlib.util.find_spec(module) is None]
    if missing:
        raise ImportError(f"训练器 {name} 需要安装 {'、'.join(missing)}")
    return trainer


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


def trainer_info(trainer: type[Trainer]) -> dict:
    return {
        "name": trainer.name,
        "description": trainer.description,
        "hyperparameters": [asdict(h) for h in trainer.hyperparameters],
    }


__all__ = [
    "DEFAULT_TRAINER",
    "SCRIPT",
    "ENTRY_POINT_GROUP",
    "Hyperparameter",
    "InvalidConfig",
    "StepOutput",
    "Trainer",
    "TrainerConfig",
    "get_trainer",
    "installed",
    "trainer_info",
]
