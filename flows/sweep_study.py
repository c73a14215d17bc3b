"""The Optuna side of a sweep: a study whose whole state is the sweep's journal in ltm's store (read and appended
through the API), and the sampler, pruner and search space its request names."""

import logging

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import BaseJournalBackend

from ltm.client import Client
from ltm.models import Sweep
from ltm.vocabulary import Pruner, Sampler

JOURNAL_APPEND_LIMIT = 1000  # entries one append request may carry
MEDIAN_STARTUP_TRIALS = 5  # completed trials before the median pruner stops any (Optuna's default)

optuna.logging.set_verbosity(logging.WARNING)


class ApiJournal(BaseJournalBackend):
    """Optuna's journal kept by the API: one writer (the API process) orders every append, so a controller that
    is killed and started again replays the same study."""

    def __init__(self, client: Client, project_id: str, sweep_id: str) -> None:
        self.client = client
        self.project_id = project_id
        self.sweep_id = sweep_id

    def read_logs(self, log_number_from: int) -> list[dict]:
        return self.client.read_sweep_journal(self.project_id, self.sweep_id, log_number_from).entries

    def append_logs(self, logs: list[dict]) -> None:
        for start in range(0, len(logs), JOURNAL_APPEND_LIMIT):
            self.client.append_sweep_journal(self.project_id, self.sweep_id, logs[start : start + JOURNAL_APPEND_LIMIT])


def distributions(sweep: Sweep) -> dict[str, BaseDistribution]:
    found: dict[str, BaseDistribution] = {}
    for name, dimension in sweep.space.items():
        if dimension.type == "choice":
            found[name] = CategoricalDistribution(dimension.values)
        elif dimension.type == "int":
            found[name] = IntDistribution(int(dimension.low), int(dimension.high), log=dimension.log)
        else:
            found[name] = FloatDistribution(dimension.low, dimension.high, log=dimension.log)
    return found


def grid(sweep: Sweep) -> dict[str, list]:
    """Every value of each dimension, for the grid sampler (the API accepts only choices and int ranges there)."""
    return {
        name: list(d.values) if d.type == "choice" else list(range(int(d.low), int(d.high) + 1))
        for name, d in sweep.space.items()
    }


def sampler(sweep: Sweep) -> optuna.samplers.BaseSampler:
    if sweep.sampler == Sampler.RANDOM:
        return optuna.samplers.RandomSampler(seed=sweep.seed)
    if sweep.sampler == Sampler.GRID:
        return optuna.samplers.GridSampler(grid(sweep), seed=sweep.seed)
    return optuna.samplers.TPESampler(seed=sweep.seed, constant_liar=True)


def pruner(sweep: Sweep) -> optuna.pruners.BasePruner:
    """Decisions at the rung steps the API worked out: the first rung is the minimum resource, each next one
    `reduction_factor` times it, the last the full run."""
    if sweep.pruner == Pruner.NONE:
        return optuna.pruners.NopPruner()
    if sweep.pruner == Pruner.MEDIAN:
        startup = max(1, min(MEDIAN_STARTUP_TRIALS, sweep.max_trials // 4))
        return optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=0)
    if sweep.pruner == Pruner.HYPERBAND:
        return optuna.pruners.HyperbandPruner(
            min_resource=sweep.rungs[0], max_resource=sweep.rungs[-1], reduction_factor=sweep.reduction_factor
        )
    return optuna.pruners.SuccessiveHalvingPruner(
        min_resource=sweep.rungs[0], reduction_factor=sweep.reduction_factor, min_early_stopping_rate=0
    )


def open_study(client: Client, sweep: Sweep) -> optuna.Study:
    return optuna.create_study(
        storage=JournalStorage(ApiJournal(client, sweep.project_id, sweep.id)),
        study_name=sweep.id,
        load_if_exists=True,
        direction=sweep.objective.direction.value,
        sampler=sampler(sweep),
        pruner=pruner(sweep),
    )
