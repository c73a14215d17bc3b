"""Training runs as real Prefect flow runs, driven through `ltm up` (real server, worker, API, DuckDB)."""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.schemas.objects import StateType
from prefect.states import Cancelling
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ltm import ApiError, Client
from ltm.models import RunStatus
from tests.conftest import ROOT, wait_until
from tests.helpers import prefect_client, prefect_flow_run, unique

FAST = {"num_epochs": 2, "steps_per_epoch": 10, "step_seconds": 0.02, "seed": 7}
SLOW = {"num_epochs": 3, "steps_per_epoch": 200, "step_seconds": 0.05, "seed": 11}


@pytest.fixture(scope="module")
def api(ltm_system):
    with Client(ltm_system.api_url) as client:
        yield client


@pytest.fixture(scope="module")
def project(api):
    return api.create_project(name=unique("流程测试项目"), owner="测试", task_type="文本摘要")


def wait_status(api, run, statuses, timeout=90):
    wanted = {RunStatus(s) for s in statuses}
    return wait_until(
        lambda: (r := api.get_run(run.project_id, run.id)).status in wanted and r,
        timeout=timeout,
        message=f"run {run.id} to reach {statuses}",
    )


def wait_step(api, run, step, timeout=60):
    return wait_until(
        lambda: (r := api.get_run(run.project_id, run.id)).current_step >= step and r,
        timeout=timeout,
        message=f"run {run.id} to pass step {step}",
    )


def all_points(api, run, name):
    series = api.get_metrics(run.project_id, run.id, names=[name], max_points=10_000).series
    return {p.step: p.last for p in series[0].points} if series else {}


def flow_pid(api, run) -> int:
    logs = api.get_logs(run.project_id, run.id, q="训练开始").items
    return int(re.search(r"进程 (\d+)", logs[0].message).group(1))


def test_run_goes_from_queued_to_completed_with_everything_recorded(ltm_system, api, project):
    run = api.create_run(
        project.id,
        model="llama-2-7b",
        dataset="中文语料",
        hyperparameters=FAST,
        resources={"gpu_type": "A100", "gpu_count": 2},
    )
    assert run.status == RunStatus.QUEUED and run.flow_run_id
    done = wait_status(api, run, ["已完成"])
    assert done.progress == 1.0 and done.current_step == done.total_steps == 20
    assert done.started_at <= done.finished_at
    assert done.gpu_utilization is None  # no GPU inventory here, so no devices; and a finished run shows no live figure
    assert {"train_loss", "learning_rate", "eval_loss", "eval_rouge_l"} <= set(done.metrics)

    kinds = [a.type.value for a in done.artifacts]
    assert kinds.count("checkpoint") == 2 and kinds.count("evaluation") == 2
    assert kinds.count("config") == 1 and kinds.count("event") == 1
    for artifact in done.artifacts:
        path = Path(artifact.path)
        size = sum(f.stat().st_size for f in path.rglob("*")) if path.is_dir() else path.stat().st_size
        assert artifact.size_bytes == size > 0
    checkpoint = max((a for a in done.artifacts if a.type.value == "checkpoint"), key=lambda a: a.step)
    assert json.loads((Path(checkpoint.path) / "state.json").read_text())["step"] == 20

    assert len(all_points(api, done, "train_loss")) == 20
    assert api.get_logs(project.id, run.id, page_size=500).total >= 5
    board = Path(next(a.path for a in done.artifacts if a.type.value == "event"))
    events = EventAccumulator(str(board))
    events.Reload()
    assert [e.step for e in events.Scalars("train_loss")] == list(range(1, 21))

    flow_run = prefect_flow_run(ltm_system.prefect_api_url, done.flow_run_id)
    assert flow_run.state.type == StateType.COMPLETED
    assert f"project:{project.id}" in flow_run.tags and "model:llama-2-7b" in flow_run.tags
    assert flow_run.name == f"{run.name} · {run.id}"


def test_cancel_through_the_api_keeps_a_checkpoint_at_the_stopping_step(ltm_system, api, project):
    run = api.create_run(project.id, model="m", dataset="d", hyperparameters=SLOW)
    wait_step(api, run, 5)
    cancelled = api.cancel_run(project.id, run.id)
    assert cancelled.status == RunStatus.CANCELLED and cancelled.cancelled_at
    checkpoint = next(a for a in cancelled.artifacts if a.name == "取消前的检查点")
    assert checkpoint.step == cancelled.current_step == max(all_points(api, run, "train_loss"))
    assert json.loads((Path(checkpoint.path) / "state.json").read_text())["step"] == checkpoint.step
    flow_run = wait_until(
        lambda: (f := prefect_flow_run(ltm_system.prefect_api_url, run.flow_run_id)).state.is_final() and f
    )
    assert flow_run.state.type == StateType.CANCELLED


def test_cancel_from_prefect_ends_the_same_way(ltm_system, api, project):
    run = api.create_run(project.id, model="m", dataset="d", hyperparameters=SLOW)
    wait_step(api, run, 5)
    with prefect_client(ltm_system.prefect_api_url) as client:
        client.set_flow_run_state(UUID(run.flow_run_id), Cancelling(message="在 Prefect 中取消"))
    cancelled = wait_status(api, run, ["已取消"])
    checkpoint = next(a for a in cancelled.artifacts if a.name == "取消前的检查点")
    assert checkpoint.step == cancelled.current_step > 0
    flow_run = wait_until(
        lambda: (f := prefect_flow_run(ltm_system.prefect_api_url, run.flow_run_id)).state.is_final() and f
    )
    assert flow_run.state.type == StateType.CANCELLED


def test_resume_reproduces_the_uninterrupted_run_step_for_step(api, project):
    config = {"num_epochs": 2, "steps_per_epoch": 60, "step_seconds": 0.03, "seed": 5}
    reference = api.create_run(project.id, model="m", dataset="d", hyperparameters=config)
    interrupted = api.create_run(project.id, model="m", dataset="d", hyperparameters=config)
    wait_step(api, interrupted, 15)
    stopped = api.cancel_run(project.id, interrupted.id)
    checkpoint = next(a for a in stopped.artifacts if a.name == "取消前的检查点")
    resumed = api.resume_run(project.id, interrupted.id, source_artifact_id=checkpoint.id)
    assert resumed.resumed_from == checkpoint.id and resumed.start_step == checkpoint.step
    wait_status(api, resumed, ["已完成"])
    wait_status(api, reference, ["已完成"])

    for name in ("train_loss", "learning_rate", "eval_loss", "eval_rouge_l"):
        expected = {s: v for s, v in all_points(api, reference, name).items() if s > checkpoint.step}
        assert expected and all_points(api, resumed, name) == expected, name


def test_killed_training_process_fails_and_its_checkpoint_resumes(api, project):
    run = api.create_run(
        project.id,
        model="m",
        dataset="d",
        hyperparameters={"num_epochs": 3, "steps_per_epoch": 20, "step_seconds": 0.05},
    )
    wait_step(api, run, 25)
    os.kill(flow_pid(api, run), signal.SIGKILL)
    failed = wait_status(api, run, ["失败"], timeout=60)
    assert "训练进程意外退出" in failed.message
    checkpoint = next(a for a in failed.artifacts if a.type.value == "checkpoint")
    resumed = api.resume_run(
        project.id, run.id, source_artifact_id=checkpoint.id, hyperparameters={"step_seconds": 0.0}
    )
    done = wait_status(api, resumed, ["已完成"])
    assert done.current_step == 60 and done.start_step == 20


def test_a_silent_process_is_declared_lost_by_the_reconciler(ltm_system, api, project):
    run = api.create_run(project.id, model="m", dataset="d", hyperparameters=SLOW)
    wait_step(api, run, 3)
    pid = flow_pid(api, run)
    os.kill(pid, signal.SIGSTOP)
    try:
        failed = wait_status(api, run, ["失败"], timeout=60)
    finally:
        os.kill(pid, signal.SIGKILL)
    assert "失联" in failed.message
    flow_run = prefect_flow_run(ltm_system.prefect_api_url, run.flow_run_id)
    assert flow_run.state.type == StateType.CRASHED


def test_a_config_only_the_worker_can_check_fails_fast_with_a_clear_message(api, project, ltm_system):
    """Declared hyperparameters are refused at creation (tests/test_trainers_api.py); what only the worker can
    find out, such as whether the dataset file exists, fails the run before it trains."""
    pytest.importorskip("torch", reason="需要安装 ltm[torch]（CI 会安装）")
    missing = ltm_system.home / "datasets" / "没有这个文件.txt"
    run = api.create_run(project.id, model="m", dataset=str(missing), trainer="tiny-lm")
    failed = wait_status(api, run, ["失败"], timeout=60)
    assert "配置无效" in failed.message and "没有这个文件" in failed.message
    assert failed.started_at is None


def test_an_unknown_trainer_is_refused_with_the_installed_ones_listed(api, project):
    with pytest.raises(ApiError) as refused:
        api.create_run(project.id, model="m", dataset="d", trainer="no-such-trainer")
    assert refused.value.status_code == 422 and "simulated" in refused.value.detail
    assert "simulated" in [t.name for t in api.list_trainers()]


def test_prefect_yaml_deploys_without_prompts(ltm_system, tmp_path):
    env = {
        **os.environ,
        "PREFECT_API_URL": ltm_system.prefect_api_url,
        "LTM_SOURCE_DIR": str(ROOT),
        "PREFECT_HOME": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    with prefect_client(ltm_system.prefect_api_url) as client:
        deployment = client.read_deployment_by_name("training-run/ltm-training")
    assert deployment.work_pool_name == "ltm-process"
    assert deployment.pull_steps[0]["prefect.deployments.steps.set_working_directory"]["directory"] == str(ROOT)
