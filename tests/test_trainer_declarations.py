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
        assert declared.read({declared.name: edge}) == edge  # alone: other rules span several values
        with pytest.raises(InvalidConfig, match=declared.name):
            trainer.resolve_hyperparameters(
                {declared.name: declared.minimum - (0 if declared.minimum_exclusive else step)}
            )
    if declared.maximum is not None:
        assert declared.read({declared.name: declared.maximum}) == declared.maximum
        with pytest.raises(InvalidConfig, match=declared.name):
            trainer.resolve_hyperparameters({declared.name: declared.maximum + step})


@pytest.mark.parametrize("trainer", list(installed().values()), ids=lambda t: t.name)
def test_the_listing_shows_the_declaration(trainer):
    listed = {h["name"]: h for h in trainer_info(trainer)["hyperparameters"]}
    for declared in trainer.hyperparameters:
        shown = listed[declared.name]
        assert (shown["type"], shown["default"], shown["minimum"], shown["maximum"]) == (
            declared.type,
            declared.default,
            declared.minimum,
            declared.maximum,
        )


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


def test_the_documented_example_trainer_runs_from_outside_the_checkout(tmp_path):
    """docs/trainers.md's MyTrainer and its local try-out, run as a third-party package would run them."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "trainers.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    trainer_source = next(b for b in blocks if "class MyTrainer(Trainer)" in b)
    try_out = next(b for b in blocks if "from my_pkg.trainer import MyTrainer" in b)
    package = tmp_path / "my_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "trainer.py").write_text(trainer_source, encoding="utf-8")
    check = (
        try_out
        + "\nassert abs(trainer.w - 3) < 0.1 and abs(trainer.b - 2) < 0.1\n"
        + (
            "from ltm.trainers import InvalidConfig\n"
            "try:\n    MyTrainer(TrainerConfig('m', 'd', None, {'learning_rate': 5}, {}))\n"
            "except InvalidConfig as exc:\n    assert 'learning_rate' in str(exc)\n"
            "else:\n    raise SystemExit('accepted')\n"
        )
    )
    done = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "eval_loss" in done.stdout
