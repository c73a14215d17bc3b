"""Sweeps through `ltm up`: the controller is a real Prefect flow run, each trial a real training flow run."""

import json
import os
import signal
from pathlib import Path

import pytest
from prefect.client.schemas.objects import StateType

from ltm import Client
from ltm.models import RunStatus, SweepStatus, TrialState
from ltm.testing import processes_with_env
from ltm.trainers import TrainerConfig
from ltm.trainers.simulated import SimulatedTrainer
from tests.conftest import wait_until
from tests.helpers import prefect_flow_run, unique

TEMPLATE = {
    "model": "m-7b",
    "dataset": "d",
    "hyperparameters": {"num_epochs": 9, "steps_per_epoch": 5, "step_seconds": 0, "seed": 5},
}
SPACE = {
    "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
    "batch_size": {"type": "choice", "values": [8, 16, 32]},
}
OBJECTIVE = {"metric": "eval_loss", "direction": "minimize"}


@pytest.fixture(scope="module")
def api(ltm_system):
    with Client(ltm_system.api_url) as client:
        yield client


@pytest.fixture(scope="module")
def project(api):
    return api.create_project(name=unique("调参测试项目"), owner="测试", task_type="文本摘要")


def wait_sweep(api, sweep, timeout=240):
    return wait_until(
        lambda: (s := api.get_sweep(sweep.project_id, sweep.id)).status != SweepStatus.RUNNING and s,
        timeout=timeout,
        interval=0.5,
        message=f"sweep {sweep.id} to end",
    )


def flow_run_state(system, flow_run_id: str):
    return prefect_flow_run(system.prefect_api_url, flow_run_id).state


def final_eval_loss(params: dict, task_type: str = "文本摘要") -> float:
    """What an uninterrupted run of these hyperparameters ends with (the simulated trainer is deterministic)."""
    hyperparameters = {**TEMPLATE["hyperparameters"], **params}
    trainer = SimulatedTrainer(TrainerConfig("m-7b", "d", task_type, hyperparameters, {}))
    while trainer.step < trainer.total_steps:
        trainer.train_step()
    return trainer.evaluate()["eval_loss"]


def runs_of(api, sweep):
    return {run_id: api.get_run(sweep.project_id, run_id) for trial in sweep.trials for run_id in trial.run_ids}


def test_an_asha_sweep_prunes_with_checkpoints_and_promotes_by_resuming(ltm_system, api, project):
    sweep = api.create_sweep(
        project.id,
        unique("asha"),
        TEMPLATE,
        SPACE,
        OBJECTIVE,
        max_trials=6,
        parallelism=2,
        sampler="random",
        pruner="asha",
        seed=3,
    )
    assert sweep.rungs == [5, 15, 45] and sweep.flow_run_id
    done = wait_sweep(api, sweep)
    assert done.status == SweepStatus.COMPLETED, done.message
    assert sorted(t.number for t in done.trials) == list(range(6))
    runs = runs_of(api, done)

    pruned = [t for t in done.trials if t.state == TrialState.PRUNED]
    assert pruned, "ASHA pruned nothing"
    for trial in pruned:
        last = runs[trial.run_id]
        assert last.status == RunStatus.COMPLETED and last.current_step == done.rungs[trial.rung]
        assert last.message == trial.pruned_reason and "被 ASHA 提前停止" in last.message
        assert f"第 {last.current_step} 步 eval_loss=" in last.message
        checkpoint = next(a for a in last.artifacts if a.type.value == "checkpoint" and a.step == last.current_step)
        assert json.loads((Path(checkpoint.path) / "state.json").read_text())["step"] == last.current_step

    promoted = [t for t in done.trials if len(t.run_ids) > 1]
    assert promoted, "ASHA promoted nothing"
    for trial in promoted:
        chain = [runs[run_id] for run_id in trial.run_ids]
        assert [run.rung for run in chain] == list(range(len(chain)))
        for earlier, later in zip(chain, chain[1:]):
            stop = next(a for a in earlier.artifacts if a.type.value == "checkpoint" and a.step == earlier.current_step)
            assert later.parent_run_id == earlier.id and later.resumed_from == stop.id
            assert later.start_step == earlier.current_step == earlier.stop_at_step
        assert trial.steps_saved == sum(run.start_step for run in chain[1:])

    completed = [t for t in done.trials if t.state == TrialState.COMPLETED]
    assert completed and done.best.number == completed[0].number
    for trial in completed:
        assert trial.objective == pytest.approx(final_eval_loss(trial.params), rel=1e-12)  # resumes lost nothing
    assert done.steps_trained == sum(r.current_step - r.start_step for r in runs.values())
    assert done.steps_trained < done.steps_if_complete == 6 * 45
    assert done.best.checkpoint_id in {a.id for a in runs[done.best.run_id].artifacts}
    assert flow_run_state(ltm_system, done.flow_run_id).type == StateType.COMPLETED


def test_a_killed_controller_is_started_again_and_loses_or_repeats_no_trial(ltm_system, api, project):
    template = {**TEMPLATE, "hyperparameters": {**TEMPLATE["hyperparameters"], "step_seconds": 0.05}}
    sweep = api.create_sweep(
        project.id,
        unique("kill"),
        template,
        SPACE,
        OBJECTIVE,
        max_trials=5,
        parallelism=2,
        sampler="tpe",
        pruner="asha",
        seed=11,
    )
    wait_until(lambda: len(api.get_sweep(project.id, sweep.id).trials) >= 2, timeout=90, message="two trials")
    controller = wait_until(lambda: processes_with_env(f"LTM_SWEEP_ID={sweep.id}"), message="controller process")
    for pid in controller:
        os.kill(pid, signal.SIGKILL)

    restarted = wait_until(
        lambda: (s := api.get_sweep(project.id, sweep.id)).controller_starts == 2 and s,
        timeout=90,
        message="the API to start the controller again",
    )
    assert restarted.flow_run_id != sweep.flow_run_id
    assert flow_run_state(ltm_system, sweep.flow_run_id).type == StateType.CRASHED

    done = wait_sweep(api, sweep)
    assert done.status == SweepStatus.COMPLETED, done.message
    assert sorted(t.number for t in done.trials) == list(range(5))
    sweep_runs = [run for run in api.list_runs(project.id) if run.sweep_id == sweep.id]
    placements = [(run.trial_number, run.rung) for run in sweep_runs]
    assert len(placements) == len(set(placements)) == sum(len(t.run_ids) for t in done.trials)
    assert all(t.state in (TrialState.COMPLETED, TrialState.PRUNED) for t in done.trials)


def test_stopping_a_sweep_cancels_its_trials_each_keeping_a_checkpoint(ltm_system, api, project):
    template = {**TEMPLATE, "hyperparameters": {**TEMPLATE["hyperparameters"], "step_seconds": 0.2}}
    sweep = api.create_sweep(
        project.id,
        unique("stop"),
        template,
        SPACE,
        OBJECTIVE,
        max_trials=8,
        parallelism=2,
        sampler="random",
        pruner="none",
        seed=1,
    )
    running = wait_until(
        lambda: (
            (s := api.get_sweep(project.id, sweep.id)).trials
            and all(api.get_run(project.id, t.run_id).current_step >= 2 for t in s.trials)
            and len(s.trials) == 2
            and s
        ),
        timeout=90,
        message="two trials training",
    )
    stopped = api.cancel_sweep(project.id, sweep.id)
    assert stopped.status == SweepStatus.CANCELLED
    assert {t.state for t in stopped.trials} == {TrialState.CANCELLED}

    for trial in running.trials:
        run = wait_until(
            lambda t=trial: (r := api.get_run(project.id, t.run_id)).status.is_terminal and r,
            timeout=60,
            message=f"trial {trial.number} to stop",
        )
        assert run.status == RunStatus.CANCELLED
        assert any(a.name == "取消前的检查点" and a.step == run.current_step for a in run.artifacts)
    wait_until(
        lambda: flow_run_state(ltm_system, sweep.flow_run_id).type == StateType.CANCELLED,
        timeout=30,
        message="the controller flow run to end cancelled",
    )
    assert len(api.get_sweep(project.id, sweep.id).trials) == 2  # no trial started after the stop
