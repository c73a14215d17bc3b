"""GPU scheduling through `ltm up` with declared GPUs: real Prefect flow runs get distinct leased devices in
CUDA_VISIBLE_DEVICES, wait their turn, and give the devices back; faults leak no lease and double-lease none."""

import contextlib
import os
import signal
import threading

import httpx
import pytest

from ltm import ApiError, Client
from ltm.gpus import parse_declared
from ltm.models import RunStatus
from tests.conftest import ApiProcess, LtmSystem, wait_until
from tests.helpers import prefect_flow_run
from tests.test_faults import PrefectServer, worker_pid

STEADY = {"num_epochs": 1, "steps_per_epoch": 40, "step_seconds": 0.1, "seed": 3}
QUICK = {"num_epochs": 1, "steps_per_epoch": 4, "step_seconds": 0.01, "seed": 5}


@pytest.fixture(scope="module")
def gpu_system(tmp_path_factory):
    system = LtmSystem(tmp_path_factory.mktemp("gpu-system") / "home", LTM_GPUS="A100:2").start()
    client = Client(system.api_url)
    wait_until(lambda: any(h.devices for h in client.list_resources().hosts), timeout=60, message="the GPUs")
    yield system
    assert system.stop() == 0, system.logs()


def _ended(client: Client, run, timeout: float = 120):
    return wait_until(
        lambda: (r := client.get_run(run.project_id, run.id)).status.is_terminal and r,
        timeout=timeout,
        message=f"{run.name} to end",
    )


def _leases(client: Client) -> dict[str, str]:
    return {d.id: d.run_id for h in client.list_resources().hosts for d in h.devices if d.run_id}


def _job_env(system, flow_run_id: str) -> dict:
    return (prefect_flow_run(system.prefect_api_url, flow_run_id).job_variables or {}).get("env", {})


def test_flow_runs_get_distinct_devices_wait_their_turn_and_cpu_runs_are_not_held(gpu_system):
    client = Client(gpu_system.api_url)
    project = client.create_project(name="GPU 流程", owner="测试")

    def gpu_run(name):
        return client.create_run(
            project.id, model="m", dataset="d", name=name, hyperparameters=STEADY, resources={"gpu_type": "A100"}
        )

    first, second, third = gpu_run("一号"), gpu_run("二号"), gpu_run("三号")
    assert [len(r.devices) for r in (first, second, third)] == [1, 1, 0]
    assert set(first.devices) | set(second.devices) == {f"sim-{first.gpu_host}-A100-{i}" for i in (0, 1)}
    assert third.queue_position == 1 and third.queue_reason == "等待 1 × A100：空闲 0 / 共 2"
    assert third.flow_run_id is None, "a waiting run is not handed to Prefect"
    assert {_job_env(gpu_system, r.flow_run_id)["CUDA_VISIBLE_DEVICES"] for r in (first, second)} == {"0", "1"}

    cpu = client.create_run(project.id, model="m", dataset="d", hyperparameters=QUICK)
    assert cpu.flow_run_id and cpu.devices == []
    assert _ended(client, cpu).status == RunStatus.COMPLETED, "a CPU run finishes while GPU runs queue"
    assert client.get_run(project.id, third.id).status == RunStatus.QUEUED

    done = [_ended(client, run) for run in (first, second, third)]
    assert [r.status for r in done] == [RunStatus.COMPLETED] * 3
    for run in (first, second):
        logs = client.get_logs(project.id, run.id, q="CUDA_VISIBLE_DEVICES").items
        index = run.devices[0].rsplit("-", 1)[1]
        assert logs and f"CUDA_VISIBLE_DEVICES={index}" in logs[0].message, "the flow process sees its device"

    def released():
        runs = [client.get_run(project.id, run.id) for run in done]
        return all(run.released_at for run in runs) and runs

    freed = wait_until(released, message="the leases of the finished runs to be released")  # right after each end
    assert done[2].devices and done[2].leased_at >= min(freed[0].released_at, freed[1].released_at)
    series = client.get_metrics(project.id, first.id, names=["gpu/0/utilization"]).series
    assert series and all(0 <= p.last <= 1 for p in series[0].points)
    assert all(r.gpu_utilization is None for r in done), "a finished run shows no live figure"
    assert _leases(client) == {}


def test_priority_decides_who_gets_a_freed_device_and_cancels_release_theirs(gpu_system):
    client = Client(gpu_system.api_url)
    project = client.create_project(name="GPU 优先级与取消", owner="测试")

    def gpu_run(name, hyperparameters=STEADY, **fields):
        return client.create_run(
            project.id,
            model="m",
            dataset="d",
            name=name,
            hyperparameters=hyperparameters,
            resources={"gpu_type": "A100"},
            **fields,
        )

    # Both hold their devices until cancelled: a holder ending by itself first would free the other device.
    holders = [
        gpu_run("占用一", {**STEADY, "steps_per_epoch": 400}),
        gpu_run("占用二", {**STEADY, "steps_per_epoch": 400}),
    ]
    assert all(run.devices for run in holders)
    early = gpu_run("先到", QUICK)
    urgent = gpu_run("加急", QUICK, priority=10)
    assert client.get_run(project.id, early.id).queue_position == 2 and urgent.queue_position == 1
    assert client.cancel_run(project.id, early.id).status == RunStatus.CANCELLED, "cancelled before it started"

    wait_until(lambda: client.get_run(project.id, holders[0].id).status == RunStatus.RUNNING, message="running")
    client.cancel_run(project.id, holders[0].id)
    assert _ended(client, holders[0]).status == RunStatus.CANCELLED
    done = _ended(client, urgent)
    assert done.status == RunStatus.COMPLETED and done.devices == holders[0].devices, "the freed device, by priority"
    assert client.get_run(project.id, early.id).devices == []
    client.cancel_run(project.id, holders[1].id)
    _ended(client, holders[1])
    wait_until(lambda: _leases(client) == {}, message="every lease released after the runs ended")


def test_the_run_form_limits_are_enforced_against_the_declared_gpus(gpu_system):
    client = Client(gpu_system.api_url)
    project = client.create_project(name="GPU 上限", owner="测试")
    with pytest.raises(ApiError) as error:
        client.create_run(project.id, model="m", dataset="d", resources={"gpu_type": "A100", "gpu_count": 4})
    assert error.value.status_code == 422 and error.value.detail.startswith("resources.gpu_count")
    with pytest.raises(ApiError) as error:
        client.create_run(project.id, model="m", dataset="d", resources={"gpu_type": "H100"})
    assert "现有：A100（共 2 块）" in error.value.detail


def test_a_killed_worker_fails_its_gpu_run_and_the_freed_device_goes_to_the_next(tmp_path):
    system = LtmSystem(tmp_path / "home", LTM_GPUS="A100:1", LTM_STALE_AFTER_SECONDS="10").start()
    try:
        client = Client(system.api_url)
        wait_until(lambda: any(h.devices for h in client.list_resources().hosts), timeout=60, message="the GPU")
        project = client.create_project(name="GPU worker 故障", owner="测试")
        long = {"num_epochs": 20, "steps_per_epoch": 10, "step_seconds": 0.05}
        holder = client.create_run(project.id, model="m", dataset="d", hyperparameters=long, resources={"gpu_count": 1})
        waiting = client.create_run(
            project.id, model="m", dataset="d", hyperparameters=QUICK, resources={"gpu_count": 1}
        )
        assert holder.devices and not waiting.devices and waiting.queue_position == 1
        wait_until(
            lambda: client.get_run(project.id, holder.id).status == RunStatus.RUNNING, message="the first run running"
        )
        os.kill(worker_pid(system), signal.SIGKILL)
        assert _ended(client, holder).status == RunStatus.FAILED
        done = _ended(client, waiting, timeout=150)
        assert done.status == RunStatus.COMPLETED and done.devices == holder.devices
        assert _leases(client) == {}
    finally:
        system.stop()


def test_an_api_killed_between_lease_and_hand_over_hands_the_run_over_once_with_its_devices(tmp_path):
    """The lease is stored before the hand-over; an API SIGKILLed in between restarts with the run still holding
    its devices, hands it over once (idempotency key = run id), and gives no one else those devices."""
    prefect = PrefectServer(tmp_path / "prefect").start().deployed()
    api = ApiProcess(tmp_path / "home", LTM_LAUNCHER="prefect", PREFECT_API_URL=prefect.url, LTM_RECONCILE_SECONDS="1")
    api.start()
    client = Client(api.url, timeout=10)
    client.register_host("gpu-a", parse_declared("A100:2", "gpu-a"), work_queue="gpu-a")
    project = client.create_project(name="分配中断", owner="测试")

    def create_run() -> None:  # its answer never comes: the API is killed while it hands the run over
        with contextlib.suppress(ApiError, httpx.HTTPError):
            client.create_run(project.id, model="m", dataset="d", resources={"gpu_type": "A100", "gpu_count": 2})

    creating = threading.Thread(target=create_run)
    try:
        prefect.process.send_signal(signal.SIGSTOP)
        creating.start()
        leased = wait_until(
            lambda: [r for r in client.list_runs(project.id) if r.devices], timeout=30, message="the lease"
        )
        assert api.stop(signal.SIGKILL) == -signal.SIGKILL
    finally:
        prefect.process.send_signal(signal.SIGCONT)
    creating.join(timeout=30)
    try:
        api.start()
        handed = wait_until(
            lambda: (r := client.get_run(project.id, leased[0].id)).flow_run_id and r,
            timeout=60,
            message="the leased run to be handed over",
        )
        assert handed.devices == ["sim-gpu-a-A100-0", "sim-gpu-a-A100-1"]
        other = client.create_run(project.id, model="m", dataset="d", resources={"gpu_type": "A100", "gpu_count": 1})
        assert other.devices == [] and other.queue_position == 1, "the devices stay with the run that leased them"
        listed = httpx.post(f"{prefect.url}/flow_runs/filter", json={}, timeout=30).json()
        mine = [f for f in listed if f["parameters"].get("run_id") == handed.id]
        assert [f["id"] for f in mine] == [handed.flow_run_id]
        assert mine[0]["job_variables"]["env"]["CUDA_VISIBLE_DEVICES"] == "0,1"
        assert mine[0]["work_queue_name"] == "gpu-a", "on the queue of the host whose devices it leased"
        assert sorted(_leases(client).items()) == [(d, handed.id) for d in handed.devices]
    finally:
        api.stop()
        prefect.stop()
