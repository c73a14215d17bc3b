"""Registry of training backends."""

from flows.trainers.base import InvalidConfig, StepOutput, Trainer, TrainerConfig
from flows.trainers.simulated import SimulatedTrainer

DEFAULT_TRAINER = "simulated"

TRAINERS: dict[str, type[Trainer]] = {SimulatedTrainer.name: SimulatedTrainer}


def get_trainer(name: str) -> type[Trainer]:
    try:
        return TRAINERS[name]
    except KeyError:
        available = "、".join(sorted(TRAINERS))
        raise InvalidConfig(f"未知的训练器 {name!r}，可用的训练器：{available}") from None


__all__ = [
    "DEFAULT_TRAINER",
    "TRAINERS",
    "InvalidConfig",
    "SimulatedTrainer",
    "StepOutput",
    "Trainer",
    "TrainerConfig",
    "get_trainer",
]
