"""Per-device GPU telemetry: simulated devices follow the trainer; a run reports the mean over its devices, or null.

The NVML path (real `GPU-`/`MIG-` UUIDs) needs a GPU and is not exercised here beyond "missing NVML gives nothing".
"""

import json
import os
import subprocess
import sys

import pytest

from ltm import Client
from ltm.gpu_telemetry import DeviceTelemetry
from ltm.models import RunStatus
from tests.conftest import ROOT

A100S = ["sim-host-1-A100-0", "sim-host-1-A100-1"]


def test_each_simulated_device_gets_its_own_series_near_the_trainer_figure():
    reading = DeviceTelemetry(A100S, seed=7).read(3, 0.8)

    assert set(reading.metrics) == {
        "gpu/0/utilization",
        "gpu/0/memory_mb",
        "gpu/1/utilization",
        "gpu/1/memory_mb",
    }
    for index in (0, 1):
        assert abs(reading.metrics[f"gpu/{index}/utilization"] - 0.8) < 0.15
        assert 0.5 * 81920 < reading.metrics[f"gpu/{index}/memory_mb"] < 81920
    assert reading.utilization == pytest.approx((reading.devices[0].utilization + reading.devices[1].utilization) / 2)


def test_simulated_values_stay_in_range_and_repeat_for_the_same_seed_and_step():
    telemetry = DeviceTelemetry(["sim-h-T4-0", "sim-h-RTX4090-1", "sim-a-b-H200-2"], seed=1)
    for step in range(1, 200):
        for trainer_figure in (0.0, 0.02, 0.5, 0.99, 1.0):
            for sample in telemetry.read(step, trainer_figure).devices:
                assert 0.0 <= sample.utilization <= 1.0
    [t4, unknown, h200] = telemetry.read(5, 0.6).devices
    assert t4.memory_mb < 15360 and unknown.memory_mb < 16384 and 81920 < h200.memory_mb < 143771
    assert telemetry.read(5, 0.6) == DeviceTelemetry(telemetry.devices, seed=1).read(5, 0.6)
    assert telemetry.read(5, 0.6) != telemetry.read(6, 0.6)


def test_a_device_keeps_its_own_offset_and_fairly_stable_memory():
    telemetry = DeviceTelemetry(A100S, seed=0)
    readings = [telemetry.read(step, 0.7) for step in range(1, 101)]
    means = [sum(r.devices[i].utilization for r in readings) / len(readings) for i in (0, 1)]
    assert means[0] != pytest.approx(means[1], abs=1e-3)  # each device has its own level
    for index in (0, 1):
        memory = [r.devices[index].memory_mb for r in readings]
        assert max(memory) - min(memory) < 0.05 * 81920


def test_no_devices_no_series_and_no_utilisation():
    reading = DeviceTelemetry([]).read(1, 0.9)
    assert reading.metrics == {} and reading.utilization is None


def test_real_devices_nvml_cannot_read_give_nothing_rather_than_invented_numbers():
    # No NVML on CPU machines; on a GPU machine these UUIDs do not exist: either way nothing can be read.
    reading = DeviceTelemetry(["GPU-0d1e2f30-aaaa-bbbb-cccc-1234567890ab", "MIG-5c6d7e8f-0000"]).read(1, 0.9)
    assert reading.metrics == {} and reading.utilization is None


def test_simulated_devices_never_start_nvml():
    probe = (
        "import sys\n"
        "from ltm import gpus\n"
        "from ltm.gpu_telemetry import DeviceTelemetry\n"
        f"assert DeviceTelemetry({A100S!r}).read(1, 0.5).utilization is not None\n"
        "print(gpus._nvml is None and 'pynvml' not in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr


SCRIPT = """
import json
from ltm import Client
from ltm.flows.training import training_run
from ltm.store import runs as run_store

reported = []
_send_report = Client.send_report


def send_report(self, project_id, run_id, progress, logs=None, metrics=None):
    answer = _send_report(self, project_id, run_id, progress, logs, metrics)
    if "gpu_utilization" in progress:
        reported.append([run_id, answer.status.value, progress["current_step"], progress["gpu_utilization"]])
    return answer


Client.send_report = send_report
client = Client.local()
project = client.create_project(name="设备遥测", owner="笔记本", task_type="分类")
settings = dict(model="m", dataset="d", resources={"gpu_type": "A100", "gpu_count": 2},
                hyperparameters={"num_epochs": 1, "steps_per_epoch": 8, "step_seconds": 0.1})
leased = client.create_run(project.id, **settings)
run_store.update(client.http.app.state.db, leased.id, {"devices": %r, "gpu_host": "host-1"})
bare = client.create_run(project.id, **settings)
training_run(leased.id)
training_run(bare.id)
print(json.dumps({"project": project.id, "leased": leased.id, "bare": bare.id, "reported": reported}))
"""


def test_a_flow_reports_each_leased_device_and_their_mean(tmp_path, ltm_system):
    env = {**os.environ, "LTM_HOME": str(tmp_path / "home"), "PREFECT_API_URL": ltm_system.prefect_api_url}
    env.pop("LTM_API_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT % (A100S,)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])

    with Client.local(tmp_path / "home") as client:
        leased = client.get_run(out["project"], out["leased"])
        series = {
            s.name: {p.step: p.last for p in s.points}
            for s in client.get_metrics(out["project"], out["leased"], max_points=10_000).series
        }
        bare = client.get_run(out["project"], out["bare"])
        bare_names = {s.name for s in client.get_metrics(out["project"], out["bare"]).series}

    assert leased.status == RunStatus.COMPLETED and leased.devices == A100S
    steps = list(range(1, 9))
    for index in (0, 1):
        assert sorted(series[f"gpu/{index}/utilization"]) == steps
        assert all(0.05 < value <= 1 for value in series[f"gpu/{index}/utilization"].values())
        assert all(40_000 < value < 81920 for value in series[f"gpu/{index}/memory_mb"].values())
    while_running = [row for row in out["reported"] if row[0] == leased.id]
    assert while_running and all(status == RunStatus.RUNNING.value for _, status, _, _ in while_running)
    for _, _, step, utilization in while_running:
        mean = (series["gpu/0/utilization"][step] + series["gpu/1/utilization"][step]) / 2
        assert utilization == pytest.approx(mean)

    assert bare.status == RunStatus.COMPLETED and bare.devices == []
    assert bare.gpu_utilization is None and not any(name.startswith("gpu/") for name in bare_names)
    assert not [row for row in out["reported"] if row[0] == bare.id]  # a run without devices reports no figure
