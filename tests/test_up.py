"""`ltm up` starts the whole system and Ctrl-C stops all of it cleanly."""

import httpx

from ltm import Client
from ltm.models import RunStatus
from tests.conftest import LtmSystem, wait_until


def test_up_prints_the_urls_and_ctrl_c_stops_everything(tmp_path):
    system = LtmSystem(tmp_path / "home").start()
    client = Client(system.api_url)
    project = client.create_project(name="停止测试", owner="测试")
    run = client.create_run(
        project.id,
        model="m",
        dataset="d",
        hyperparameters={"num_epochs": 1, "steps_per_epoch": 5000, "step_seconds": 0.05},
    )
    wait_until(lambda: client.get_run(project.id, run.id).current_step > 2, timeout=60, message="training to start")
    printed = "".join(system.output)
    assert f"http://127.0.0.1:{system.ports['prefect']}" in printed
    assert f"http://127.0.0.1:{system.ports['api']}/docs" in printed
    assert httpx.get(system.api_url + "/health").json()["status"] == "ok"
    assert httpx.get(system.prefect_api_url + "/health").json() is True
    assert len(system.processes()) >= 3

    assert system.stop() == 0
    assert system.processes() == []
    assert (system.home / "ltm.duckdb").exists()
    assert not (system.home / "ltm.duckdb.wal").exists()

    with Client.local(system.home) as store:
        stopped = store.get_run(project.id, run.id)
    worker_log = (system.home / "logs" / "worker.log").read_text(errors="replace")[-3000:]
    assert stopped.status == RunStatus.CANCELLED, worker_log
    listed = [(a.name, a.step) for a in stopped.artifacts]
    assert ("取消前的检查点", stopped.current_step) in listed, f"{listed} at step {stopped.current_step}\n{worker_log}"
