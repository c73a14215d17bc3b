"""Hugging Face `transformers.Trainer` in a script run: `ltm.integrations.transformers.LtmCallback` and the example
`examples/hf_tiny_gpt2/train.py` (a tiny GPT-2 built from a config, trained on the bundled corpus, nothing downloaded).

First the script alone against a real API, started with the LTM_* environment the training flow gives it
(`ltm.core`); then as a run of `ltm up`, created over the API, trained by the Prefect flow, cancelled and resumed.
Resume exactness is measured on the logged per-step losses: a run resumed from a mid-training checkpoint, or from the
checkpoint a cancel wrote, logs the uninterrupted run's losses bit for bit (tolerance 0 on CPU: the example pins one
intra-op thread, and the Trainer's checkpoint carries the RNG states, so dropout and the data order continue exactly).
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from ltm import Client
from ltm.models import RunStatus
from tests.conftest import ROOT, ApiProcess, wait_until
from tests.helpers import unique

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("transformers") is None,
    reason="需要可选依赖 ltm[hf]（transformers）：pip install -e '.[hf]'",
)

EXAMPLE = ROOT / "examples" / "hf_tiny_gpt2"
HPARAMS = {"max_steps": 24, "save_steps": 8, "logging_steps": 1, "batch_size": 8, "learning_rate": 1e-3, "seed": 7}


class ScriptRuns:
    """Creates runs of the example on a real API and starts `python train.py` for them as the training flow does."""

    def __init__(self, api: ApiProcess, artifact_root: Path, scratch: Path) -> None:
        self.api = api
        self.artifact_root = artifact_root
        self.scratch = scratch
        self.client = Client(api.url)
        self.project = self.client.create_project(name="HF 微调示例", owner="测试", task_type="语言模型")
        self.tokens: dict[str, str] = {}

    def create(self, **hparams):
        return self.client.create_run(
            self.project.id,
            model="tiny-gpt2",
            dataset="bundled",
            entrypoint="python train.py",
            source="examples/hf_tiny_gpt2",
            hyperparameters={**HPARAMS, **hparams},
        )

    def start(self, run, resume_path: str | None = None) -> subprocess.Popen:
        token = self.tokens[run.id] = self.client.issue_run_token(self.project.id, run.id).token
        self.report(run, status=RunStatus.RUNNING.value)
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "LTM_API_URL": self.api.url,
            "LTM_TOKEN": token,
            "LTM_PROJECT_ID": self.project.id,
            "LTM_RUN_ID": run.id,
            "LTM_HPARAMS": json.dumps(run.hyperparameters),
            "LTM_ARTIFACT_ROOT": str(self.artifact_root),
            "LTM_CHECKPOINT_DIR": str(self.scratch / run.id),
            "LTM_RESUME_PATH": resume_path or "",
            "LTM_STOP_FILE": str(self.scratch / f"{run.id}.stop"),
        }
        return subprocess.Popen(
            [sys.executable, "train.py"],
            cwd=EXAMPLE,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def finish(self, run, script: subprocess.Popen, status: RunStatus = RunStatus.COMPLETED):
        output, _ = script.communicate(timeout=120)
        assert script.returncode == 0, output[-4000:]
        self.report(run, status=status.value)
        return self.client.get_run(self.project.id, run.id)

    def report(self, run, **values) -> None:
        with Client(self.api.url, token=self.tokens[run.id]) as flow:
            flow.report(self.project.id, run.id, **values)


@pytest.fixture(scope="module")
def script_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf")
    api = ApiProcess(folder / "home", LTM_ARTIFACT_ROOT=str(folder / "artifacts")).start()
    runs = ScriptRuns(api, folder / "artifacts", folder / "scratch")
    yield runs
    runs.client.close()
    if api.process.poll() is None:
        api.stop()


@pytest.fixture(scope="module")
def uninterrupted(script_runs):
    run = script_runs.create()
    return script_runs.finish(run, script_runs.start(run))


def losses(client: Client, run) -> dict[int, float]:
    series = client.get_metrics(run.project_id, run.id, names=["loss"], max_points=10_000).series
    return {point.step: point.last for point in series[0].points} if series else {}


def checkpoints(run) -> dict:
    return {a.step: a for a in run.artifacts if a.type.value == "checkpoint"}


def test_callback_reports_losses_logs_progress_and_checkpoints(script_runs, uninterrupted):
    run = uninterrupted
    assert run.status == RunStatus.COMPLETED and run.current_step == 24 and run.total_steps == 24
    logged = losses(script_runs.client, run)
    assert sorted(logged) == list(range(1, 25))
    assert logged[24] < logged[1]
    assert {"learning_rate", "grad_norm", "eval_loss", "train_loss"} <= set(run.metrics)

    checkpoints_by_step = checkpoints(run)
    assert sorted(checkpoints_by_step) == [8, 16, 24]
    folder = Path(checkpoints_by_step[8].path)
    assert {"trainer_state.json", "model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth"} <= {
        file.name for file in folder.iterdir()
    }
    assert json.loads((folder / "trainer_state.json").read_text())["global_step"] == 8

    logs = script_runs.client.get_logs(script_runs.project.id, run.id, q="第 24/24 步", page_size=100).items
    assert any("loss=" in line.message for line in logs)


def test_resumed_from_a_mid_training_checkpoint_logs_the_uninterrupted_losses(script_runs, uninterrupted):
    source = checkpoints(uninterrupted)[8]
    resumed = script_runs.client.resume_run(script_runs.project.id, uninterrupted.id, source_artifact_id=source.id)
    assert resumed.resumed_from == source.id and resumed.start_step == 8
    resumed = script_runs.finish(resumed, script_runs.start(resumed, resume_path=source.path))

    expected = losses(script_runs.client, uninterrupted)
    after = losses(script_runs.client, resumed)
    assert sorted(after) == list(range(9, 25))
    assert after == {step: expected[step] for step in after}  # tolerance 0: bit for bit
    assert sorted(checkpoints(resumed)) == [16, 24]


def test_importing_ltm_does_not_import_transformers():
    code = "import sys, ltm, ltm.core, ltm.client; print('transformers' in sys.modules, 'torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == ["False", "False"]


def test_resume_argument_is_the_trainer_checkpoint_folder(tmp_path):
    from ltm.integrations.transformers import resume_from_checkpoint

    def ctx(path):
        return SimpleNamespace(checkpoint=SimpleNamespace(resume_path=path))

    assert resume_from_checkpoint(ctx(None)) is None
    for step in (5, 10):
        (tmp_path / "outer" / f"checkpoint-{step}").mkdir(parents=True)
        (tmp_path / "outer" / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    assert resume_from_checkpoint(ctx(tmp_path / "outer" / "checkpoint-5")) == str(tmp_path / "outer" / "checkpoint-5")
    assert resume_from_checkpoint(ctx(tmp_path / "outer")) == str(tmp_path / "outer" / "checkpoint-10")
    with pytest.raises(FileNotFoundError, match="不是 transformers Trainer 的检查点"):
        resume_from_checkpoint(ctx(tmp_path))


# Through `ltm up`: the example as a run created over the API, trained by the Prefect flow, cancelled and resumed.


@pytest.fixture(scope="module")
def system_api(ltm_system):
    with Client(ltm_system.api_url) as client:
        yield client


@pytest.fixture(scope="module")
def system_runs(system_api):
    """An uninterrupted run of the example, and a paced one cancelled over the API once it has trained a few steps."""
    project = system_api.create_project(name=unique("HF 示例"), owner="测试", task_type="语言模型")

    def create(**hparams):
        return system_api.create_run(
            project.id,
            model="tiny-gpt2",
            dataset="bundled",
            entrypoint="python train.py",
            source="examples/hf_tiny_gpt2",
            hyperparameters={**HPARAMS, **hparams},
        )

    reference, run = create(), create(step_seconds=0.4)
    wait_until(lambda: system_api.get_run(project.id, run.id).current_step >= 3, timeout=120, message="第 3 步")
    system_api.cancel_run(project.id, run.id)
    return wait_status(system_api, reference, "已完成"), wait_status(system_api, run, "已取消")


def wait_status(api, run, status: str):
    return wait_until(
        lambda: (r := api.get_run(run.project_id, run.id)).status == RunStatus(status) and r,
        timeout=120,
        message=f"run {run.id} to be {status}",
    )


def test_the_example_trains_through_ltm_up_and_is_cancelled_with_a_checkpoint(system_api, system_runs):
    reference, stopped = system_runs
    assert reference.trainer == "script" and reference.current_step == 24 and reference.progress == 1.0
    assert sorted(losses(system_api, reference)) == list(range(1, 25))
    assert sorted(checkpoints(reference)) == [8, 16, 24]

    checkpoint = next(a for a in stopped.artifacts if a.name == "取消前的检查点")
    assert 3 <= checkpoint.step < 24 and stopped.current_step == checkpoint.step
    assert stopped.message == f"用户取消，脚本已在第 {checkpoint.step} 步保存检查点"
    assert (Path(checkpoint.path) / "trainer_state.json").is_file()


def test_the_cancelled_example_resumed_through_the_api_logs_the_uninterrupted_losses(system_api, system_runs):
    reference, stopped = system_runs
    checkpoint = next(a for a in stopped.artifacts if a.name == "取消前的检查点")
    resumed = system_api.resume_run(
        stopped.project_id, stopped.id, source_artifact_id=checkpoint.id, hyperparameters={**HPARAMS, "step_seconds": 0}
    )
    done = wait_status(system_api, resumed, "已完成")

    expected = losses(system_api, reference)
    after = losses(system_api, done)
    assert sorted(after) == list(range(checkpoint.step + 1, 25))
    before = {step: loss for step, loss in losses(system_api, stopped).items() if step <= checkpoint.step}
    assert {**before, **after} == expected  # tolerance 0: bit for bit
