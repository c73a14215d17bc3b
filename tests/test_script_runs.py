"""Script runs (a run's own training code, `ltm.core`) through the real flow: `ltm up`, Prefect, torchrun, DuckDB."""

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

from ltm import Client
from ltm.flows.script_source import ScriptConfigError, resolve_source
from ltm.models import RunStatus
from ltm.testing import processes_with_env
from tests.conftest import ROOT, LtmSystem, wait_until
from tests.helpers import new_project, prefect_client, prefect_flow_run, unique

SOURCE = "tests/scripts"
STEPS = 60
LINEAR = {"seed": 5, "learning_rate": 0.01, "step_seconds": 0.15}
CODE_VERSION = re.compile(r"git:[0-9a-f]{40}(\+dirty)?|sha256:[0-9a-f]{64}")


@pytest.fixture(scope="module")
def api(ltm_system):
    with Client(ltm_system.api_url) as client:
        yield client


@pytest.fixture(scope="module")
def project(api):
    return api.create_project(name=unique("脚本运行"), owner="测试", task_type="回归")


def final_flow_state(system, flow_run_id: str) -> StateType:
    def final():
        state = prefect_flow_run(system.prefect_api_url, flow_run_id).state
        return state.type if state.is_final() else None

    return wait_until(final, timeout=60, message=f"flow run {flow_run_id} to end")


def wait_status(api, run, statuses, timeout=180):
    wanted = {RunStatus(s) for s in statuses}
    return wait_until(
        lambda: (r := api.get_run(run.project_id, run.id)).status in wanted and r,
        timeout=timeout,
        message=f"run {run.id} to reach {statuses}",
    )


def losses(api, run) -> dict[int, float]:
    series = api.get_metrics(run.project_id, run.id, names=["loss"], max_points=10_000).series
    return {point.step: point.last for point in series[0].points} if series else {}


def log_messages(api, run, q: str) -> list[str]:
    return [line.message for line in api.get_logs(run.project_id, run.id, q=q, page_size=500).items]


def script_processes(run_id: str) -> list[int]:
    """Live processes whose environment names the run (the script's ranks and torchrun)."""
    return processes_with_env(f"LTM_RUN_ID={run_id}")


def linear_run(api, project, steps=STEPS, **fields):
    return api.create_run(
        project.id,
        model="linear-8",
        dataset="合成数据",
        entrypoint=f"python ddp_linear.py --steps {steps} --save-every 10",
        source=SOURCE,
        processes=2,
        hyperparameters=LINEAR,
        **fields,
    )


def test_a_two_process_script_reports_live_and_completes(ltm_system, api, project):
    run = linear_run(api, project, steps=30)
    assert run.trainer == "script" and run.processes == 2 and run.source == SOURCE

    live = wait_until(
        lambda: (r := api.get_run(project.id, run.id)).status == RunStatus.RUNNING and r.current_step >= 3 and r,
        timeout=120,
        message="the script to report its first steps",
    )
    assert "loss" in live.metrics and live.total_steps == 30 and 0 < live.progress < 1
    assert CODE_VERSION.fullmatch(live.code_version)

    done = wait_status(api, run, ["已完成"])
    assert done.current_step == 30 and done.progress == 1.0 and done.code_version == live.code_version
    assert sorted(losses(api, done)) == list(range(1, 31))
    checkpoints = sorted((a for a in done.artifacts if a.type.value == "checkpoint"), key=lambda a: a.step)
    assert [a.step for a in checkpoints] == [10, 20, 30]
    assert all(sum(f.stat().st_size for f in Path(a.path).iterdir()) == a.size_bytes > 0 for a in checkpoints)
    assert not (Path(checkpoints[0].path).parent / ".script").exists(), "the scratch folder is removed at the end"

    for rank in (0, 1):
        assert any(m.startswith(f"[rank {rank}] 第 1 步 loss=") for m in log_messages(api, done, "第 1 步 loss"))
    started = log_messages(api, done, "训练开始")[0]
    assert "torch.distributed.run" in started and "--nproc-per-node=2" in started
    assert final_flow_state(ltm_system, done.flow_run_id) == StateType.COMPLETED


@pytest.fixture(scope="module")
def interrupted(api, project):
    """An uninterrupted reference run, and a run of the same script cancelled mid-training."""
    reference = linear_run(api, project)
    run = linear_run(api, project)
    wait_until(lambda: api.get_run(project.id, run.id).current_step >= 8, timeout=120, message="step 8")
    api.cancel_run(project.id, run.id)
    return reference, wait_status(api, run, ["已取消"])


def test_cancel_stops_both_ranks_at_one_step_with_a_checkpoint(ltm_system, api, interrupted):
    _, stopped = interrupted
    checkpoint = next(a for a in stopped.artifacts if a.name == "取消前的检查点")
    step = checkpoint.step
    assert 8 <= step < STEPS and stopped.current_step == step == max(losses(api, stopped))
    assert stopped.message == f"用户取消，脚本已在第 {step} 步保存检查点"
    torch = pytest.importorskip("torch")
    assert torch.load(Path(checkpoint.path) / "state.pt")["step"] == step

    stops = log_messages(api, stopped, "步停止")
    assert sorted(stops) == [f"[rank 0] 在第 {step} 步停止", f"[rank 1] 在第 {step} 步停止"]
    assert final_flow_state(ltm_system, stopped.flow_run_id) == StateType.CANCELLED
    wait_until(lambda: not script_processes(stopped.id), timeout=10, message="the script's processes to exit")


def test_resume_from_the_cancel_checkpoint_reproduces_the_uninterrupted_losses(api, project, interrupted):
    reference, stopped = interrupted
    checkpoint = next(a for a in stopped.artifacts if a.name == "取消前的检查点")
    resumed = api.resume_run(project.id, stopped.id, source_artifact_id=checkpoint.id)
    assert resumed.entrypoint == stopped.entrypoint and resumed.source == SOURCE and resumed.processes == 2
    assert resumed.start_step == checkpoint.step

    done = wait_status(api, resumed, ["已完成"])
    assert log_messages(api, done, "恢复")[0].startswith(f"训练开始（脚本，从第 {checkpoint.step} 步的检查点恢复）")
    expected = losses(api, wait_status(api, reference, ["已完成"]))
    assert sorted(expected) == list(range(1, STEPS + 1))
    before = {step: value for step, value in losses(api, stopped).items() if step <= checkpoint.step}
    after = losses(api, done)
    assert sorted(after) == list(range(checkpoint.step + 1, STEPS + 1))
    assert {**before, **after} == expected


def flow_pid(api, run) -> int:
    started = log_messages(api, run, "训练开始")[0]
    return int(re.search(r"进程 (\d+)$", started).group(1))


def one_process_run(api, project):
    run = api.create_run(
        project.id,
        model="linear-8",
        dataset="合成数据",
        entrypoint="python ddp_linear.py --steps 200 --save-every 10",
        source=SOURCE,
        hyperparameters=LINEAR,
    )
    wait_until(lambda: api.get_run(project.id, run.id).current_step >= 3, timeout=120, message="step 3")
    return run


def test_cancel_from_prefect_stops_the_script_the_same_way(ltm_system, api, project):
    run = one_process_run(api, project)
    with prefect_client(ltm_system.prefect_api_url) as client:
        client.set_flow_run_state(UUID(run.flow_run_id), Cancelling(message="在 Prefect 中取消"))
    stopped = wait_status(api, run, ["已取消"])
    checkpoint = next(a for a in stopped.artifacts if a.name == "取消前的检查点")
    assert stopped.message == f"用户取消，脚本已在第 {checkpoint.step} 步保存检查点"
    assert final_flow_state(ltm_system, stopped.flow_run_id) == StateType.CANCELLED


def test_a_terminated_flow_stops_its_script_and_fails_keeping_the_checkpoint(ltm_system, api, project):
    run = one_process_run(api, project)
    os.kill(flow_pid(api, run), signal.SIGTERM)
    failed = wait_status(api, run, ["失败"])
    checkpoint = next(a for a in failed.artifacts if a.name == "终止前的检查点")
    assert failed.message == (
        f"训练进程收到终止信号，脚本已停止；最新的检查点是第 {checkpoint.step} 步的 {checkpoint.id}"
    )
    assert final_flow_state(ltm_system, failed.flow_run_id) == StateType.CRASHED
    wait_until(lambda: not script_processes(run.id), timeout=10, message="the script to exit")


def test_a_failing_rank_fails_the_run_with_its_last_error_lines(ltm_system, api, project):
    run = api.create_run(
        project.id,
        model="m",
        dataset="d",
        entrypoint="python failing.py --rank 1 --after 3",
        source=SOURCE,
        processes=2,
    )
    failed = wait_status(api, run, ["失败"])
    assert failed.message.startswith("脚本运行失败，脚本退出码 1；rank 1 的最后输出：")
    assert "Traceback" in failed.message and "RuntimeError: 读取第 4 批数据失败：样本文件损坏" in failed.message
    assert "[rank1]" not in failed.message, "PyTorch's own rank prefix is dropped: the rank is named once"
    assert sorted(losses(api, failed)) == [1, 2, 3]
    errors = api.get_logs(project.id, run.id, level="ERROR", q="样本文件损坏").items
    assert any(line.message.startswith("[rank 1] RuntimeError") for line in errors)
    assert final_flow_state(ltm_system, failed.flow_run_id) == StateType.FAILED


def test_cuda_out_of_memory_is_named_as_such(api, project):
    run = api.create_run(project.id, model="m", dataset="d", entrypoint="python failing.py --oom", source=SOURCE)
    failed = wait_status(api, run, ["失败"])
    assert failed.message.startswith("显存不足（CUDA out of memory）：脚本退出码 1；rank 0 的最后输出：")
    assert "Tried to allocate 20.00 GiB" in failed.message


def test_a_source_folder_that_is_not_there_fails_before_starting(api, project):
    run = api.create_run(project.id, model="m", dataset="d", entrypoint="python train.py", source="tests/没有这个目录")
    failed = wait_status(api, run, ["失败"])
    assert failed.message.startswith("配置无效：source 'tests/没有这个目录'") and failed.started_at is None


def test_a_missing_entry_script_fails_before_starting(api, project):
    run = api.create_run(project.id, model="m", dataset="d", entrypoint="python nope.py", source=SOURCE)
    failed = wait_status(api, run, ["失败"])
    assert "配置无效：entrypoint 中的脚本 nope.py" in failed.message and failed.started_at is None


def test_source_is_confined_to_the_source_dir_links_included(tmp_path):
    root, outside = tmp_path / "src", tmp_path / "elsewhere"
    (root / "team").mkdir(parents=True)
    outside.mkdir()
    (root / "team" / "escape").symlink_to(outside)
    assert resolve_source(root, "team") == (root / "team").resolve()
    assert resolve_source(root, None) == root.resolve()
    with pytest.raises(ScriptConfigError, match="source 'team/escape' 指向 LTM_SOURCE_DIR"):
        resolve_source(root, "team/escape")


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("entrypoint", "bash train.sh", ["启动命令", "python"]),
        ("entrypoint", "python", ["启动命令", "脚本"]),
        ("entrypoint", 'python "train.py', ["启动命令", "引号"]),
        ("source", "../elsewhere", ["代码目录", ".."]),
        ("source", "/etc", ["代码目录", "相对目录"]),
        ("processes", 0, ["进程数"]),
    ],
)
def test_bad_entrypoint_source_or_processes_is_refused_naming_the_field(shared_http, field, value, words):
    project = new_project(shared_http)
    body = {"model": "m", "dataset": "d", "entrypoint": "python train.py", field: value}
    response = shared_http.post(f"/projects/{project['id']}/runs", json=body)
    assert response.status_code == 422, response.text
    assert all(word in response.json()["detail"] for word in words), response.json()["detail"]
    assert [error["field"] for error in response.json()["errors"]] == [field]


def test_ltm_core_imports_without_torch():
    code = "import sys; sys.modules['torch'] = None; import ltm.core; print(ltm.core.init().should_stop())"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_the_same_script_runs_on_its_own_without_ltm(tmp_path):
    pytest.importorskip("torch")
    env = {key: value for key, value in os.environ.items() if not key.startswith("LTM_")}
    env["LTM_HPARAMS"] = '{"step_seconds": 0}'
    script = ROOT / SOURCE / "ddp_linear.py"
    done = subprocess.run(
        [sys.executable, str(script), "--steps", "4", "--save-every", "2"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "第 4 步：loss=" in done.stdout
    saved = sorted(path.name for path in (tmp_path / "ltm-checkpoints").glob("*.ckpt"))
    assert saved == ["step-00000002.ckpt", "step-00000004.ckpt"]


def test_a_script_ignoring_the_stop_flag_is_terminated_after_the_grace_period(tmp_path):
    system = LtmSystem(tmp_path / "home", LTM_SCRIPT_STOP_GRACE_SECONDS="3").start()
    try:
        with Client(system.api_url) as api:
            project = api.create_project(name="宽限期", owner="测试")
            run = api.create_run(
                project.id,
                model="m",
                dataset="d",
                entrypoint="python ignores_stop.py --save-every 5 --ignore-sigterm",
                source=SOURCE,
                processes=2,
            )
            wait_until(
                lambda: any(a.type.value == "checkpoint" for a in api.list_artifacts(project.id, run.id)),
                timeout=120,
                message="a first checkpoint",
            )
            wait_until(lambda: len(script_processes(run.id)) >= 3, timeout=30, message="torchrun and both ranks")
            api.cancel_run(project.id, run.id)
            stopped = wait_status(api, run, ["已取消"], timeout=60)
            latest = max((a for a in stopped.artifacts if a.type.value == "checkpoint"), key=lambda a: a.step)
            assert stopped.message.startswith("用户取消：脚本在 3 秒的宽限期内没有退出，已终止它的进程")
            assert stopped.message.endswith(f"最新的检查点是第 {latest.step} 步的 {latest.id}")
            assert (Path(latest.path) / "state.txt").read_text() == f"step={latest.step}"
            assert not script_processes(run.id), "every rank is gone, though each ignored SIGTERM"
            assert final_flow_state(system, stopped.flow_run_id) == StateType.CANCELLED
    finally:
        system.stop()
