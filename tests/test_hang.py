"""Hang detection through a real `ltm up`: a run whose process answers but whose step stands still."""

from datetime import timedelta

import pytest
from prefect.client.schemas.objects import StateType

from ltm import Client
from ltm.models import RunStatus
from tests.conftest import LtmSystem, wait_until
from tests.console_helpers import open_console, texts
from tests.helpers import unique
from tests.test_script_runs import final_flow_state, log_messages, losses, script_processes, wait_status

SOURCE = "tests/scripts"
GRACE_SECONDS = 10
HANG_MINUTES = 0.05  # three seconds


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    system = LtmSystem(tmp_path_factory.mktemp("hang") / "home", LTM_HANG_GRACE_SECONDS=str(GRACE_SECONDS)).start()
    yield system
    system.stop()


@pytest.fixture(scope="module")
def api(system):
    with Client(system.api_url) as client:
        yield client


@pytest.fixture(scope="module")
def started(api):
    """Every test's run, started together. Each project turns hang detection on only once its run is stuck: a
    script that takes longer than the three seconds to start up on a busy machine would be hung at step 0."""
    project = {key: new_project(api, **settings) for key, settings in (("once", {"max_restarts": 1}), ("ignores", {}))}
    return {
        "once": stuck_run(api, project["once"], "--steps 10 --stuck-at 4 --save-every 2 --once"),
        "ignores": stuck_run(api, project["ignores"], "--stuck-at 3 --ignore-stop"),
    }


def new_project(api, **settings):
    return api.create_project(name=unique("卡住检测"), owner="测试", task_type="文本摘要", **settings)


def stuck_run(api, project, arguments: str):
    return api.create_run(
        project.id, model="m", dataset="d", entrypoint=f"python stuck.py {arguments}", source=SOURCE, name="卡住"
    )


def watch_once_stuck(api, run, step: int) -> None:
    wait_until(lambda: api.get_run(run.project_id, run.id).current_step >= step, timeout=120, message=f"step {step}")
    api.update_project(run.project_id, hang_minutes=HANG_MINUTES)


def hang_text(step: int) -> str:
    return f"卡住：超过 {HANG_MINUTES:g} 分钟没有新的步数（停在第 {step} 步）"


def test_a_script_that_stops_stepping_saves_a_checkpoint_fails_and_is_retried_from_it(
    system, api, started, monkeypatch, fresh_cache
):
    run = started["once"]
    watch_once_stuck(api, run, 4)
    wait_until(lambda: api.get_run(run.project_id, run.id).hung_at, timeout=60, message="the run to be found hung")
    api.update_project(run.project_id, hang_minutes=None)  # its restart starts at its own pace; the hung run still ends

    failed = wait_until(
        lambda: (
            (r := api.get_run(run.project_id, run.id)).status == RunStatus.FAILED and "已自动重试为" in r.message and r
        ),
        timeout=120,
        message="the hung run to fail and be retried",
    )
    again = next(r for r in api.list_runs(run.project_id) if r.restart_of == run.id)
    assert failed.message == f"{hang_text(4)}，已保存检查点；已自动重试为 {again.id}（第 1 次，共 1 次）"
    assert failed.hung_at - failed.progressed_at >= timedelta(minutes=HANG_MINUTES)
    assert failed.current_step == 4 and failed.finished_at - failed.hung_at < timedelta(seconds=GRACE_SECONDS)
    checkpoint = next(a for a in failed.artifacts if a.name == "终止前的检查点")
    assert checkpoint.step == 4
    assert f"{hang_text(4)}：已请求脚本在下一个步边界保存检查点并退出" in log_messages(api, failed, "已请求脚本")
    assert final_flow_state(system, failed.flow_run_id) == StateType.FAILED
    audit = [(e.actor, e.action, e.run_id) for e in api.audit_trail(run.project_id)]
    assert ("ltm 卡住检测", "判定运行卡住", run.id) in audit

    done = wait_status(api, api.get_run(run.project_id, again.id), ["已完成"])
    assert (done.resumed_from, done.start_step, done.hung_at) == (checkpoint.id, 4, None)
    assert sorted(losses(api, done)) == list(range(5, 11))

    monkeypatch.setenv("LTM_API_URL", system.api_url)
    page = open_console("run", project_id=run.project_id, run_id=run.id)
    assert any("判定卡住，最近一次步数前进在" in text and hang_text(4) in text for text in texts(page.error))


def test_a_hung_script_that_ignores_the_stop_request_is_ended_after_the_grace_time(system, api, started):
    run = started["ignores"]
    watch_once_stuck(api, run, 3)

    failed = wait_status(api, run, ["失败"], timeout=120)
    assert failed.message == hang_text(3)
    assert failed.finished_at - failed.hung_at >= timedelta(seconds=GRACE_SECONDS)
    assert not [a for a in failed.artifacts if a.name == "终止前的检查点"]
    assert final_flow_state(system, failed.flow_run_id) == StateType.CANCELLED, "its orchestrator run is cancelled"
    wait_until(lambda: not script_processes(run.id), timeout=30, message="the ignoring script to be terminated")
    ended = [e for e in api.audit_trail(run.project_id) if e.action == "结束卡住的运行"]
    assert [(e.actor, e.run_id) for e in ended] == [("ltm 卡住检测", run.id)]


def test_a_trainer_run_stuck_inside_a_step_is_interrupted_and_keeps_a_checkpoint(api):
    slow = {"num_epochs": 1, "steps_per_epoch": 3, "step_seconds": 60, "seed": 1}  # a minute inside each step
    run = api.create_run(new_project(api).id, model="m", dataset="d", hyperparameters=slow)
    watch_once_stuck(api, run, 1)

    failed = wait_status(api, run, ["失败"], timeout=120)
    assert failed.message == f"{hang_text(1)}，已保存检查点"
    checkpoint = next(a for a in failed.artifacts if a.type.value == "checkpoint")
    assert (checkpoint.name, checkpoint.step) == ("卡住时的检查点", 1)
    assert failed.finished_at - failed.hung_at < timedelta(seconds=GRACE_SECONDS)
