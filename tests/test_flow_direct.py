"""Python users call `training_run` directly on the embedded store (no API process, no worker)."""

import os
import subprocess
import sys

from ltm import Client
from ltm.models import RunStatus
from tests.conftest import ROOT

SCRIPT = """
from ltm import Client
from ltm.flows.training import training_run
client = Client.local()
project = client.create_project(name="直接调用", owner="笔记本", task_type="分类")
run = client.create_run(project.id, model="m", dataset="d",
                        hyperparameters={"num_epochs": 2, "steps_per_epoch": 5, "step_seconds": 0})
training_run(run.id)
print(project.id, run.id)
"""


def test_training_run_called_directly_records_into_the_embedded_store(tmp_path, ltm_system):
    env = {**os.environ, "LTM_HOME": str(tmp_path / "home"), "PREFECT_API_URL": ltm_system.prefect_api_url}
    env.pop("LTM_API_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    project_id, run_id = done.stdout.split()[-2:]

    with Client.local(tmp_path / "home") as client:
        run = client.get_run(project_id, run_id)
    assert run.status == RunStatus.COMPLETED and run.current_step == 10
    assert "eval_accuracy" in run.metrics and run.flow_run_id
    assert sum(a.type.value == "checkpoint" for a in run.artifacts) == 2
