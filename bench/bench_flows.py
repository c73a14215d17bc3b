"""Flow benchmarks: create → 运行中 and cancel → 已取消 on a warm worker, and per-epoch orchestration overhead.

Run with `make bench` (or `python -m bench.bench_flows [--runs N]`); it starts its own `ltm up` in a temp folder.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import figure
from ltm import Client
from ltm.harness import ROOT, LtmSystem, wait_until
from ltm.models import RunStatus

OVERHEAD_SCRIPT = """
import sys, time
from ltm import Client
from flows.training import training_run
from flows.trainers import SimulatedTrainer, TrainerConfig
epochs, steps = int(sys.argv[1]), int(sys.argv[2])
hp = {"num_epochs": epochs, "steps_per_epoch": steps, "step_seconds": 0}
client = Client.local()
project = client.create_project(name=f"bench-{time.time()}", owner="bench")
run = client.create_run(project.id, model="m", dataset="d", hyperparameters=hp)
started = time.perf_counter()
training_run(run.id)
flow_seconds = time.perf_counter() - started
trainer = SimulatedTrainer(TrainerConfig("m", "d", None, hp, {}))
started = time.perf_counter()
for _ in range(epochs):
    for _ in range(steps):
        trainer.train_step()
    trainer.evaluate()
    trainer.state_dict()
print(flow_seconds, time.perf_counter() - started)
"""


def time_to_running(api: Client, project_id: str) -> float:
    started = time.perf_counter()
    run = api.create_run(project_id, model="m", dataset="d",
                         hyperparameters={"num_epochs": 1, "steps_per_epoch": 2000, "step_seconds": 0.05})
    wait_until(lambda: api.get_run(project_id, run.id).status != RunStatus.QUEUED, timeout=60, interval=0.02)
    elapsed = time.perf_counter() - started
    wait_until(lambda: api.get_run(project_id, run.id).current_step >= 3, timeout=30, interval=0.05)
    started = time.perf_counter()
    cancelled = api.cancel_run(project_id, run.id)
    cancel_seconds = time.perf_counter() - started
    assert cancelled.status == RunStatus.CANCELLED, cancelled.status
    assert any(a.name == "取消前的检查点" for a in cancelled.artifacts)
    return elapsed, cancel_seconds


def orchestration_overhead(system: LtmSystem, home: Path, epochs: int, steps: int) -> tuple[float, float]:
    env = {**os.environ, "LTM_HOME": str(home), "PREFECT_API_URL": system.prefect_api_url,
           "PREFECT_LOGGING_LEVEL": "WARNING"}
    env.pop("LTM_API_URL", None)
    out = subprocess.run([sys.executable, "-c", OVERHEAD_SCRIPT, str(epochs), str(steps)], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    return float(out[-2]), float(out[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=41)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        system = LtmSystem(Path(tmp) / "home").start()
        try:
            with Client(system.api_url) as api:
                project = api.create_project(name="bench-flows", owner="bench")
                time_to_running(api, project.id)  # warm-up: the worker's first flow imports everything
                samples = [time_to_running(api, project.id) for _ in range(args.runs)]
            figure("6a create run → 运行中 (warm worker)", [s[0] for s in samples], "≤ 5 s")
            figure("6b cancel → 已取消 with checkpoint", [s[1] for s in samples], "≤ 5 s")
            overheads = []
            for i in range(3):
                many_flow, many_bare = orchestration_overhead(system, Path(tmp) / f"o{i}", args.epochs, 10)
                one_flow, one_bare = orchestration_overhead(system, Path(tmp) / f"p{i}", 1, 10)
                per_epoch = ((many_flow - many_bare) - (one_flow - one_bare)) / (args.epochs - 1)
                overheads.append(per_epoch * 1000)
            figure("7  orchestration overhead per epoch vs bare trainer loop", overheads, "≤ 50 ms", unit="ms")
        finally:
            system.stop()


if __name__ == "__main__":
    main()
