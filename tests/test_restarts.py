"""Automatic restarts of failed runs, with log rules, through a real `ltm up` (Prefect, script runs, DuckDB)."""

import pytest
from prefect.client.schemas.objects import StateType

from ltm import Client
from ltm.models import RunStatus
from tests.conftest import wait_until
from tests.console_helpers import open_console, texts
from tests.helpers import unique
from tests.test_script_runs import final_flow_state, losses, wait_status

SOURCE = "tests/scripts"
OOM_RULE = r"CUDA out of memory|torch\.(cuda\.)?OutOfMemoryError"


@pytest.fixture(scope="module")
def api(ltm_system):
    with Client(ltm_system.api_url) as client:
        yield client


def new_project(api, **settings):
    return api.create_project(name=unique("自动重试"), owner="测试", task_type="回归", **settings)


def script_run(api, project, entrypoint: str, **fields):
    return api.create_run(project.id, model="m", dataset="d", entrypoint=entrypoint, source=SOURCE, **fields)


def restarts_of(api, run) -> list:
    return [r for r in api.list_runs(run.project_id) if r.restart_of == run.id]


def restart_of(api, run):
    found = wait_until(lambda: restarts_of(api, run), timeout=60, message=f"a restart of {run.id}")
    assert len(found) == 1
    return api.get_run(run.project_id, found[0].id)


def settled(api, run, ending: str):
    """The failed run once the restart policy has written its decision into the message."""
    return wait_until(
        lambda: (r := api.get_run(run.project_id, run.id)).status == RunStatus.FAILED and ending in r.message and r,
        timeout=120,
        message=f"run {run.id} to fail and say {ending!r}",
    )


def expected_loss(seed: int, step: int) -> float:
    return round(1.0 / step + seed / 1000, 6)  # what tests/scripts/crashes.py reports


@pytest.fixture(scope="module")
def started(api):
    """Every test's first run, started together: they train side by side while the tests wait in turn."""
    rule = {"pattern": "样本文件损坏", "action": "标注", "label": "数据损坏"}
    plans = {
        # The project retries nothing: the run's own max_restarts counts.
        "crash": ({}, "--once --steps 12 --save-every 4 --crash-at 6", {"seed": 3}, 2),
        "oom": (
            {"max_restarts": 2},
            "--crash-at 1 --error 'CUDA out of memory. Tried to allocate 20.00 GiB'",
            {},
            None,
        ),
        "label": (
            {"max_restarts": 1, "log_rules": [rule]},
            "--crash-at 1 --error '读取第 2 批数据失败：样本文件损坏'",
            {},
            None,
        ),
        "none": ({}, "--crash-at 1", {}, None),
    }
    found = {}
    for key, (settings, arguments, hyperparameters, max_restarts) in plans.items():
        project = new_project(api, **settings)
        found[key] = script_run(
            api,
            project,
            f"python crashes.py {arguments}",
            name=f"运行-{key}",
            hyperparameters=hyperparameters,
            max_restarts=max_restarts,
        )
    return found


def test_a_crash_after_a_checkpoint_is_retried_from_it_and_the_steps_continue_exactly(
    ltm_system, api, started, monkeypatch, fresh_cache
):
    run = started["crash"]
    project = api.get_project(run.project_id)
    failed = settled(api, run, "已自动重试为")
    again = restart_of(api, failed)
    checkpoint = max((a for a in failed.artifacts if a.type.value == "checkpoint"), key=lambda a: a.step)
    assert checkpoint.step == 4 and failed.current_step == 6
    assert failed.message.startswith("脚本运行失败，脚本退出码 1；") and "意外崩溃" in failed.message
    assert failed.message.endswith(f"；已自动重试为 {again.id}（第 1 次，共 2 次）")
    assert failed.labels == [] and project.max_restarts == 0

    assert (again.name, again.restart_of, again.restarts, again.max_restarts) == ("运行-crash-重试1", run.id, 1, 2)
    assert (again.parent_run_id, again.resumed_from, again.start_step) == (run.id, checkpoint.id, 4)
    assert (again.entrypoint, again.hyperparameters) == (failed.entrypoint, failed.hyperparameters)
    note = f"自动重试：运行 运行-crash（{run.id}）失败后的第 1 次重试，从第 4 步的检查点 {checkpoint.id} 恢复"
    assert again.message == note

    done = wait_until(
        lambda: (r := api.get_run(project.id, again.id)).status == RunStatus.COMPLETED and r.message == note and r,
        timeout=120,
        message="the restart to complete, still saying what it restarts",
    )
    before = {step: value for step, value in losses(api, failed).items() if step <= checkpoint.step}
    after = losses(api, done)
    assert sorted(before) == [1, 2, 3, 4] and sorted(after) == list(range(5, 13))
    assert {**before, **after} == {step: expected_loss(3, step) for step in range(1, 13)}
    assert restarts_of(api, done) == []

    audit = [e for e in api.audit_trail(project.id) if e.actor == "ltm 自动重试"]
    assert [(e.action, e.run_id, e.target) for e in audit] == [("自动重试运行", again.id, "运行-crash-重试1")]
    assert (
        audit[0].details == "失败的运行 运行-crash 的第 1 次自动重试（共 2 次），从第 4 步的检查点 第 4 步检查点 恢复"
    )

    monkeypatch.setenv("LTM_API_URL", ltm_system.api_url)
    failed_page = open_console("run", project_id=project.id, run_id=run.id)
    assert "失败后自动重试：最多 2 次（运行设置）" in texts(failed_page.caption)
    assert f"{again.name}（已完成）" in [link.proto.label for link in failed_page.page_link]
    restart_page = open_console("run", project_id=project.id, run_id=again.id)
    assert "第 1 次自动重试，重试的是：" in texts(restart_page.markdown)
    assert "失败后自动重试：最多 2 次（运行设置），本运行是第 1 次重试" in texts(restart_page.caption)


def test_cuda_out_of_memory_stops_the_retry_labels_the_run_and_says_why(api, started):
    failed = settled(api, started["oom"], "不自动重试")
    assert failed.labels == ["显存不足"]
    assert failed.message.startswith("显存不足（CUDA out of memory）：脚本退出码 1；rank 0 的最后输出：")
    assert failed.message.endswith(f"；不自动重试：日志匹配规则「{OOM_RULE}」（显存不足）")
    assert restarts_of(api, failed) == []


def test_a_label_rule_labels_and_still_retries_until_the_restarts_are_used_up(api, started):
    run = started["label"]
    failed = settled(api, run, "已自动重试为")
    again = restart_of(api, failed)
    assert failed.labels == ["数据损坏"]
    assert failed.message.endswith(f"；已自动重试为 {again.id}（第 1 次，共 1 次）")
    assert (again.name, again.restarts, again.resumed_from, again.start_step) == ("运行-label-重试1", 1, None, 0)
    audit = [e.details for e in api.audit_trail(run.project_id) if e.action == "自动重试运行"]
    assert audit == ["失败的运行 运行-label 的第 1 次自动重试（共 1 次），原运行没有保存检查点，从头开始"]

    last = settled(api, again, "不再重试")
    assert last.labels == ["数据损坏"]
    assert last.message.startswith("脚本运行失败，") and last.message.endswith("；已自动重试 1 次（共 1 次），不再重试")
    assert restarts_of(api, last) == []


def test_no_restart_without_max_restarts(ltm_system, api, started):
    run = started["none"]
    failed = wait_status(api, run, ["失败"])
    # The flow's final report returns once the listeners have decided; the flow run ends after it.
    assert final_flow_state(ltm_system, failed.flow_run_id) == StateType.FAILED
    failed = api.get_run(run.project_id, run.id)
    assert failed.message.startswith("脚本运行失败，") and "重试" not in failed.message
    assert restarts_of(api, failed) == [] and failed.labels == []
