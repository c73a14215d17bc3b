"""Faults injected into real processes: the API killed mid-training, Prefect unreachable."""

import contextlib
import os
import signal
import subprocess
import sys
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from ltm import ApiError, Client
from ltm.gpus import parse_declared
from ltm.models import LogBatch, LogLine, RunStatus
from tests.conftest import ROOT, ApiProcess, LtmSystem, answers, free_port, wait_until
from tests.helpers import prefect_client

TRAIN = """
import sys
from ltm.flows.training import training_run
training_run(sys.argv[1])
"""


def test_api_killed_while_runs_report_loses_nothing_and_stores_nothing_twice(tmp_path, ltm_system):
    api = ApiProcess(tmp_path / "home", LTM_ARTIFACT_ROOT=str(tmp_path / "artifacts")).start()
    client = Client(api.url)
    project = client.create_project(name="故障注入", owner="测试")
    steps = 120
    runs = [
        client.create_run(
            project.id,
            model="m",
            dataset="d",
            hyperparameters={"num_epochs": 2, "steps_per_epoch": steps // 2, "step_seconds": 0.04, "seed": seed},
        )
        for seed in range(3)
    ]
    env = {
        **os.environ,
        "LTM_API_URL": api.url,
        "LTM_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "PREFECT_API_URL": ltm_system.prefect_api_url,
    }
    flows = [
        subprocess.Popen(
            [sys.executable, "-c", TRAIN, run.id],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for run in runs
    ]
    try:
        wait_until(
            lambda: all(client.get_run(project.id, r.id).current_step >= 20 for r in runs),
            timeout=90,
            message="every run to be training",
        )
        assert api.stop(signal.SIGKILL) == -signal.SIGKILL
        api.start()
        for flow in flows:
            assert flow.wait(timeout=180) == 0, flow.stderr.read()[-3000:]
    finally:
        for flow in flows:
            if flow.poll() is None:
                flow.kill()

    for run in runs:
        done = client.get_run(project.id, run.id)
        assert done.status == RunStatus.COMPLETED
        series = {s.name: s for s in client.get_metrics(project.id, run.id, max_points=10_000).series}
        assert series["train_loss"].total_points == steps
        assert [p.step for p in series["train_loss"].points] == list(range(1, steps + 1))
        assert series["eval_loss"].total_points == 2
        assert sum(a.type.value == "checkpoint" for a in done.artifacts) == 2
        lines = client.get_logs(project.id, run.id, page_size=500).items
        assert len(lines) == len({(line.timestamp, line.message) for line in lines})
    api.stop()


def test_prefect_unreachable_answers_503_and_writes_nothing_half_way(tmp_path):
    home = tmp_path / "home"
    seeding = ApiProcess(home).start()
    client = Client(seeding.url)
    project = client.create_project(name="编排中断", owner="测试")
    running = client.create_run(project.id, model="m", dataset="d")
    client.report(project.id, running.id, status="运行中", flow_run_id=str(uuid.uuid4()))
    checkpoint = client.register_artifact(
        project.id,
        running.id,
        type="checkpoint",
        name="c",
        step=5,
        path=f"s3://artifacts/{project.id}/{running.id}/c.ckpt",
    )
    seeding.stop()

    api = ApiProcess(home, LTM_LAUNCHER="prefect", PREFECT_API_URL=f"http://127.0.0.1:{free_port()}/api").start()
    client = Client(api.url)
    client.register_host("gpu-a", parse_declared("A100:1", "gpu-a"))
    attempts = [
        lambda: client.create_run(project.id, model="m", dataset="d"),
        lambda: client.create_run(project.id, model="m", dataset="d", resources={"gpu_type": "A100"}),
        lambda: client.resume_run(project.id, running.id, source_artifact_id=checkpoint.id),
        lambda: client.cancel_run(project.id, running.id),
    ]
    for attempt in attempts:
        try:
            attempt()
        except ApiError as error:
            assert error.status_code == 503 and "编排服务不可用" in error.detail
        else:
            raise AssertionError("expected 503 while Prefect is unreachable")

    assert [r.id for r in client.list_runs(project.id)] == [running.id]
    assert client.get_run(project.id, running.id).status == RunStatus.RUNNING
    assert client.get_project(project.id).run_count == 1
    assert [d.run_id for d in client.list_resources().hosts[0].devices] == [None], "no lease outlives a refusal"
    assert client.get_logs(project.id, running.id).total == 0
    api.stop()


def fill(path) -> None:
    """Write until the file system says it is full."""
    with open(path, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as error:
            assert error.errno == 28


def test_a_full_artifact_disk_fails_the_run_with_the_reason_and_keeps_earlier_checkpoints(tmp_path, ltm_system):
    disk = tmp_path / "small-disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], check=True)
    try:
        api = ApiProcess(tmp_path / "home", LTM_ARTIFACT_ROOT=str(disk)).start()
        client = Client(api.url)
        project = client.create_project(name="磁盘写满", owner="测试")
        run = client.create_run(
            project.id,
            model="m",
            dataset="d",
            hyperparameters={"num_epochs": 3, "steps_per_epoch": 40, "step_seconds": 0.03},
        )
        env = {
            **os.environ,
            "LTM_API_URL": api.url,
            "LTM_ARTIFACT_ROOT": str(disk),
            "PREFECT_API_URL": ltm_system.prefect_api_url,
        }
        flow = subprocess.Popen(
            [sys.executable, "-c", TRAIN, run.id],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        first = wait_until(
            lambda: [a for a in client.list_artifacts(project.id, run.id) if a.type.value == "checkpoint"],
            timeout=60,
            message="the first checkpoint",
        )[0]
        fill(disk / "filler")
        flow.wait(timeout=120)

        failed = client.get_run(project.id, run.id)
        assert failed.status == RunStatus.FAILED
        assert "写入工件失败" in failed.message and "No space left" in failed.message
        checkpoints = [a for a in failed.artifacts if a.type.value == "checkpoint"]
        assert [c.id for c in checkpoints] == [first.id]
        (disk / "filler").unlink()
        resumed = client.resume_run(project.id, run.id, source_artifact_id=first.id)
        assert resumed.start_step == first.step == 40
        api.stop()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_killed_worker_is_replaced_and_its_run_ends_failed_with_a_resumable_checkpoint(tmp_path):
    system = LtmSystem(tmp_path / "home", LTM_STALE_AFTER_SECONDS="10").start()
    try:
        client = Client(system.api_url)
        project = client.create_project(name="worker 故障", owner="测试")
        run = client.create_run(
            project.id,
            model="m",
            dataset="d",
            hyperparameters={"num_epochs": 20, "steps_per_epoch": 10, "step_seconds": 0.05},
        )
        wait_until(
            lambda: any(a.type.value == "checkpoint" for a in client.list_artifacts(project.id, run.id)),
            timeout=60,
            message="a first checkpoint",
        )
        worker = worker_pid(system)
        os.kill(worker, signal.SIGKILL)
        failed = wait_until(
            lambda: (r := client.get_run(project.id, run.id)).status.is_terminal and r,
            timeout=60,
            message="the run to end after its worker died",
        )
        assert failed.status == RunStatus.FAILED and failed.message
        wait_until(lambda: worker_pid(system) not in (None, worker), timeout=30, message="a new worker")

        checkpoint = max((a for a in failed.artifacts if a.type.value == "checkpoint"), key=lambda a: a.step)
        resumed = client.resume_run(
            project.id, run.id, source_artifact_id=checkpoint.id, hyperparameters={"step_seconds": 0}
        )
        done = wait_until(
            lambda: (r := client.get_run(project.id, resumed.id)).status.is_terminal and r,
            timeout=90,
            message="the resumed run",
        )
        assert done.status == RunStatus.COMPLETED and done.start_step == checkpoint.step
    finally:
        system.stop()


def worker_pid(system) -> int | None:
    for pid in system.processes():
        try:
            command = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"worker" in command and b"start" in command:
            return pid
    return None


class PrefectServer:
    """A Prefect server of our own that a test can stop and start again on the same port and database."""

    def __init__(self, home: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        self.env = {
            **os.environ,
            "PREFECT_HOME": str(home),
            "PREFECT_API_URL": self.url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
        self.process = None

    def start(self) -> "PrefectServer":
        self.process = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._healthy, timeout=90, interval=0.2, message="the Prefect server")
        return self

    def _healthy(self) -> bool:
        assert self.process.poll() is None, "Prefect server exited"
        return answers(self.url + "/health")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)

    def deployed(self) -> "PrefectServer":
        """With ltm's training deployment registered, and no worker: flow runs stay scheduled."""
        done = subprocess.run(
            [sys.executable, "-m", "ltm.flows.deploy"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return self


def test_while_prefect_is_down_reads_and_ingest_work_and_statuses_catch_up_when_it_returns(tmp_path):
    from uuid import UUID

    from prefect.states import Crashed

    prefect = PrefectServer(tmp_path / "prefect").start().deployed()
    api = ApiProcess(
        tmp_path / "home", LTM_LAUNCHER="prefect", PREFECT_API_URL=prefect.url, LTM_RECONCILE_SECONDS="1"
    ).start()
    try:
        client = Client(api.url)
        project = client.create_project(name="编排恢复", owner="测试")
        run = client.create_run(project.id, model="m", dataset="d")
        assert run.flow_run_id

        prefect.stop()
        assert client.get_run(project.id, run.id).status == RunStatus.QUEUED
        written = client.send_logs(
            project.id,
            run.id,
            LogBatch(
                batch_id="during-outage",
                lines=[LogLine(timestamp=datetime.now(timezone.utc), message="编排服务中断期间的日志")],
            ),
        )
        assert written.accepted == 1
        with pytest.raises(ApiError) as refused:
            client.create_run(project.id, model="m", dataset="d")
        assert refused.value.status_code == 503

        prefect.start()
        with prefect_client(prefect.url) as orchestrator:
            orchestrator.set_flow_run_state(UUID(run.flow_run_id), Crashed(message="节点在中断期间丢失"), force=True)
        failed = wait_until(
            lambda: (r := client.get_run(project.id, run.id)).status.is_terminal and r,
            timeout=30,
            message="the store to catch up with Prefect",
        )
        assert failed.status == RunStatus.FAILED and "节点在中断期间丢失" in failed.message
        assert [r.id for r in client.list_runs(project.id)] == [run.id]
    finally:
        api.stop()
        prefect.stop()


def test_a_run_stored_but_never_handed_to_prefect_is_handed_over_once_after_an_api_crash(tmp_path):
    """The API SIGKILLed between storing a run and handing it to Prefect left it 排队中 forever. After the restart
    the reconciler hands it over; the idempotency key keeps it to one flow run whether or not the killed API's
    request reached Prefect."""
    prefect = PrefectServer(tmp_path / "prefect").start().deployed()
    api = ApiProcess(tmp_path / "home", LTM_LAUNCHER="prefect", PREFECT_API_URL=prefect.url, LTM_RECONCILE_SECONDS="1")
    api.start()
    client = Client(api.url, timeout=10)
    project = client.create_project(name="交接中断", owner="测试")

    def create_run() -> None:  # its answer never comes: the API is killed while it waits on Prefect
        with contextlib.suppress(ApiError, httpx.HTTPError):
            client.create_run(project.id, model="m", dataset="d")

    creating = threading.Thread(target=create_run)
    try:
        prefect.process.send_signal(signal.SIGSTOP)  # the hand-over now hangs after the run row is stored
        creating.start()
        stored = wait_until(lambda: client.list_runs(project.id), timeout=30, message="the run row to be stored")
        assert api.stop(signal.SIGKILL) == -signal.SIGKILL
    finally:
        prefect.process.send_signal(signal.SIGCONT)
    creating.join(timeout=30)
    try:
        api.start()
        handed = wait_until(
            lambda: (r := client.get_run(project.id, stored[0].id)).flow_run_id and r,
            timeout=60,
            message="the stranded run to be handed over",
        )
        assert handed.status == RunStatus.QUEUED
        listed = httpx.post(f"{prefect.url}/flow_runs/filter", json={}, timeout=30).json()
        mine = [f for f in listed if f["parameters"].get("run_id") == handed.id]
        assert [f["id"] for f in mine] == [handed.flow_run_id]
    finally:
        api.stop()
        prefect.stop()
