"""Preemption through `ltm up` with declared GPUs: a higher-priority run takes a lower-priority run's devices, the
preempted run keeps a checkpoint and is queued again as an exact resume, and nothing is preempted twice within the
grace time or in a project that does not allow it."""

import pytest

from ltm import Client
from ltm.models import RunStatus
from ltm.trainers import TrainerConfig
from ltm.trainers.simulated import SimulatedTrainer
from tests.conftest import LtmSystem, wait_until
from tests.helpers import unique

LOW = {"num_epochs": 2, "steps_per_epoch": 30, "step_seconds": 0.1, "seed": 21}
HIGH = {"num_epochs": 1, "steps_per_epoch": 5, "step_seconds": 0.02, "seed": 22}
GPUS = {"gpu_type": "A100", "gpu_count": 2}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    system = LtmSystem(tmp_path_factory.mktemp("preemption") / "home", LTM_GPUS="A100:2").start()
    with Client(system.api_url) as sdk:
        wait_until(lambda: any(h.devices for h in sdk.list_resources().hosts), timeout=60, message="the GPUs")
        yield sdk
    assert system.stop() == 0, system.logs()


def ended(client, run, timeout=120):
    return wait_until(
        lambda: (r := client.get_run(run.project_id, run.id)).status.is_terminal and r,
        timeout=timeout,
        message=f"{run.name} to end",
    )


def requeued(client, run):
    return wait_until(
        lambda: next((r for r in client.list_runs(run.project_id) if r.restart_of == run.id), None),
        timeout=60,
        message=f"{run.name} to be queued again",
    )


def uninterrupted_eval_loss(hyperparameters: dict) -> float:
    trainer = SimulatedTrainer(TrainerConfig("m-7b", "d", None, hyperparameters, {}))
    while trainer.step < trainer.total_steps:
        trainer.train_step()
    return trainer.evaluate()["eval_loss"]


def test_a_higher_priority_run_preempts_with_a_checkpoint_and_the_preempted_run_resumes_exactly(client):
    project = client.create_project(unique("抢占"), owner="测试", preemption=True)
    low = client.create_run(project.id, "m-7b", "d", name="低优先级", hyperparameters=LOW, resources=GPUS)
    wait_until(lambda: client.get_run(project.id, low.id).current_step >= 5, timeout=90, message="low to train")

    high = client.create_run(
        project.id, "m-7b", "d", name="高优先级", hyperparameters=HIGH, resources=GPUS, priority=10
    )

    assert ended(client, low).status == RunStatus.CANCELLED
    again = requeued(client, low)
    stopped = wait_until(  # the requeue names the new run on the preempted one right after creating it
        lambda: (r := client.get_run(project.id, low.id)).message.startswith("被抢占") and r,
        message="the preempted run to say why",
    )
    assert stopped.preempted_by == high.id and stopped.preempted_at
    assert stopped.message.startswith("被抢占：运行 高优先级") and again.id in stopped.message
    checkpoint = next(a for a in stopped.artifacts if a.name == "取消前的检查点")
    assert checkpoint.step == stopped.current_step > 0
    assert ended(client, high).status == RunStatus.COMPLETED

    assert (again.resumed_from, again.parent_run_id, again.start_step) == (checkpoint.id, low.id, checkpoint.step)
    assert again.priority == low.priority and again.name == "低优先级-续"
    done = ended(client, again)
    assert done.status == RunStatus.COMPLETED and done.current_step == 60
    assert done.metrics["eval_loss"] == uninterrupted_eval_loss(LOW)  # nothing lost or repeated by the preemption
    actions = [e.action for e in client.audit_trail(project.id)]
    assert "抢占运行" in actions and "重新排队" in actions


def test_a_requeued_run_is_not_preempted_again_within_the_grace_time(client):
    project = client.create_project(unique("不抖动"), owner="测试", preemption=True)
    low = client.create_run(project.id, "m-7b", "d", name="低", hyperparameters=LOW, resources=GPUS)
    wait_until(lambda: client.get_run(project.id, low.id).current_step >= 3, timeout=90, message="low to train")
    first = client.create_run(project.id, "m-7b", "d", name="高一", hyperparameters=HIGH, resources=GPUS, priority=5)
    assert ended(client, low).preempted_by == first.id
    ended(client, first)
    again = requeued(client, client.get_run(project.id, low.id))
    wait_until(lambda: client.get_run(project.id, again.id).status == RunStatus.RUNNING, timeout=60, message="requeue")

    second = client.create_run(project.id, "m-7b", "d", name="高二", hyperparameters=HIGH, resources=GPUS, priority=5)

    assert ended(client, again).status == RunStatus.COMPLETED  # protected: it finished instead of being preempted
    assert client.get_run(project.id, again.id).preempted_by is None
    assert ended(client, second).status == RunStatus.COMPLETED


def test_runs_of_a_project_that_does_not_allow_preemption_are_not_preempted(client):
    project = client.create_project(unique("不抢占"), owner="测试")
    low = client.create_run(
        project.id, "m-7b", "d", name="先来", hyperparameters=HIGH | {"steps_per_epoch": 30}, resources=GPUS
    )
    wait_until(lambda: client.get_run(project.id, low.id).status == RunStatus.RUNNING, timeout=60, message="low")
    eager = client.create_project(unique("想抢占"), owner="测试", preemption=True)  # cannot consent for the other
    high = client.create_run(eager.id, "m-7b", "d", name="后到", hyperparameters=HIGH, resources=GPUS, priority=50)
    waiting = wait_until(lambda: (r := client.get_run(eager.id, high.id)).queue_reason and r, message="high waits")
    assert "等待 2 × A100" in waiting.queue_reason

    assert ended(client, low).status == RunStatus.COMPLETED and client.get_run(project.id, low.id).preempted_by is None
    assert ended(client, high).status == RunStatus.COMPLETED
    assert not any(r.restart_of for r in client.list_runs(project.id))
