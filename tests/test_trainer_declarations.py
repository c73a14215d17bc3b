"""A trainer's declared hyperparameters are its validator, its defaults and what GET /trainers lists: one truth."""

import pytest

from ltm.trainers import Hyperparameter, InvalidConfig, get_trainer, installed, trainer_info
from ltm.trainers.base import TrainerConfig
from ltm.trainers.simulated import SimulatedTrainer


def declared_bounds():
    for trainer in installed().values():
        for declared in trainer.hyperparameters:
            if declared.type in ("int", "float") and (declared.minimum is not None or declared.maximum is not None):
                yield pytest.param(trainer, declared, id=f"{trainer.name}:{declared.name}")


@pytest.mark.parametrize("trainer", list(installed().values()), ids=lambda t: t.name)
def test_defaults_come_from_the_declaration(trainer):
    assert trainer.resolve_hyperparameters({}) == {h.name: h.default for h in trainer.hyperparameters}


@pytest.mark.parametrize(("trainer", "declared"), declared_bounds())
def test_each_declared_bound_is_enforced_with_the_key_named(trainer, declared):
    step = 1 if declared.type == "int" else 1e-9
    if declared.minimum is not None:
        edge = declared.minimum + (step if declared.minimum_exclusive else 0)
        assert trainer.resolve_hyperparameters({declared.name: edge})[declared.name] == edge
        with pytest.raises(InvalidConfig, match=declared.name):
            trainer.resolve_hyperparameters({declared.name: declared.minimum - (0 if declared.minimum_exclusive else step)})
    if declared.maximum is not None:
        assert trainer.resolve_hyperparameters({declared.name: declared.maximum})[declared.name] == declared.maximum
        with pytest.raises(InvalidConfig, match=declared.name):
            trainer.resolve_hyperparameters({declared.name: declared.maximum + step})


@pytest.mark.parametrize("trainer", list(installed().values()), ids=lambda t: t.name)
def test_the_listing_shows_the_declaration(trainer):
    listed = {h["name"]: h for h in trainer_info(trainer)["hyperparameters"]}
    for declared in trainer.hyperparameters:
        shown = listed[declared.name]
        assert (shown["type"], shown["default"], shown["minimum"], shown["maximum"]) == (
            declared.type, declared.default, declared.minimum, declared.maximum)


def test_the_trainer_runs_with_what_the_declaration_resolved():
    config = TrainerConfig(model="m", dataset="d", task_type=None, hyperparameters={"num_epochs": 2}, resources={})
    trainer = get_trainer("simulated")(config)
    resolved = SimulatedTrainer.resolve_hyperparameters({"num_epochs": 2})
    assert trainer.total_steps == resolved["num_epochs"] * resolved["steps_per_epoch"]
    assert trainer.step_seconds is resolved["step_seconds"] is None


def test_string_hyperparameters_are_type_checked():
    declared = Hyperparameter("device", "str", "auto", "设备")
    assert declared.read({}) == "auto" and declared.read({"device": "cpu"}) == "cpu"
    with pytest.raises(InvalidConfig, match="device"):
        declared.read({"device": 3})
