"""Flow benchmarks: create → 运行中 and cancel → 已取消 on a warm worker, per-epoch orchestration overhead, and
concurrent runs on one worker with every metric point and log line accounted for.

Run with `make bench` (or `python -m bench.bench_flows [--runs N] [--only 8]`); `--smoke` uses tiny sizes for CI.
It starts its own `ltm up` in a temp folder.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.common import figure
from ltm import Client
from ltm.models import Run, RunStatus
from ltm.testing import ROOT, LtmSystem, wait_until
from ltm.trainers import TrainerConfig, get_trainer

OVERHEAD_SCRIPT = """
import sys, time
from ltm import Client
from ltm.flows.training import training_run
from ltm.trainers import TrainerConfig
from ltm.trainers.simulated import SimulatedTrainer
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
    run = api.create_run(
        project_id,
        model="m",
        dataset="d",
        hyperparameters={"num_epochs": 1, "steps_per_epoch": 2000, "step_seconds": 0.05},
    )
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
    env = {
        **os.environ,
        "LTM_HOME": str(home),
        "PREFECT_API_URL": system.prefect_api_url,
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    env.pop("LTM_API_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", OVERHEAD_SCRIPT, str(epochs), str(steps)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise AssertionError(f"overhead script exited {done.returncode}:\n{done.stderr[-3000:]}")
    out = done.stdout.split()
    return float(out[-2]), float(out[-1])


def expected_output(run: Run, task_type: str | None) -> tuple[Counter, list[str], int]:
    """Points per series, the trainer's own log lines and the session's line count, from the bare trainer loop."""
    config = TrainerConfig(run.model, run.dataset, task_type, run.hyperparameters, run.resources)
    trainer = get_trainer(run.trainer)(config)
    points, lines = Counter(), []
    while trainer.step < trainer.total_steps:
        out = trainer.train_step()
        points.update(out.metrics.keys())
        if out.log:
            lines.append(out.log)
        if trainer.step % trainer.steps_per_epoch == 0:
            points.update(trainer.evaluate().keys())
    epochs = trainer.total_steps // trainer.steps_per_epoch
    return points, lines, 1 + 2 * epochs


def stored_logs(api: Client, project_id: str, run_id: str, page_size: int = 500) -> tuple[int, Counter]:
    messages, page = Counter(), 1
    while True:
        result = api.get_logs(project_id, run_id, page=page, page_size=page_size)
        messages.update(item.message for item in result.items)
        if page * page_size >= result.total:
            return result.total, messages
        page += 1


def check_run_data(api: Client, run: Run, task_type: str | None) -> tuple[int, int]:
    """Raise unless the API stores exactly the points and lines the flow reported; return their counts."""
    points, lines, session_lines = expected_output(run, task_type)
    stored_points = {s.name: s.total_points for s in api.get_metrics(run.project_id, run.id, max_points=1).series}
    if stored_points != dict(points):
        raise AssertionError(f"run {run.id}: metric points per series {stored_points}, expected {dict(points)}")
    total, messages = stored_logs(api, run.project_id, run.id)
    wrong = {line: messages[line] for line in lines if messages[line] != 1}
    if wrong:
        raise AssertionError(
            f"run {run.id}: {len(wrong)} of {len(lines)} trainer log lines not stored exactly once, "
            f"e.g. {next(iter(wrong.items()))} (line, times stored)"
        )
    expected_total = len(lines) + session_lines
    if total != expected_total or sum(messages.values()) != total:
        raise AssertionError(
            f"run {run.id}: logs total {total} ({sum(messages.values())} paged), "
            f"expected {len(lines)} trainer + {session_lines} session lines = {expected_total}"
        )
    return sum(points.values()), total


def concurrent_runs(api: Client, count: int, steps_per_epoch: int) -> None:
    project = api.create_project(name=f"bench-concurrent-{count}", owner="bench")
    started = time.perf_counter()
    runs = [
        api.create_run(
            project.id,
            model="m",
            dataset="d",
            hyperparameters={"num_epochs": 2, "steps_per_epoch": steps_per_epoch, "step_seconds": 0.01, "seed": index},
        )
        for index in range(count)
    ]
    wait_until(
        lambda: all(r.status.is_terminal for r in api.list_runs(project.id)),
        timeout=600,
        interval=0.5,
        message=f"{count} concurrent runs to end",
    )
    elapsed = time.perf_counter() - started
    finished = [api.get_run(project.id, run.id) for run in runs]
    failed = [f"{run.id} {run.status.value}: {run.message}" for run in finished if run.status != RunStatus.COMPLETED]
    if failed:
        raise AssertionError(f"{len(failed)} of {count} runs did not end 已完成: " + "; ".join(failed))
    counted = [check_run_data(api, run, project.task_type) for run in finished]
    figure(f"8  {count} runs started at once on one worker machine, all 已完成", [elapsed], "all 已完成, none lost")
    print(
        f"8  all {sum(c[0] for c in counted):,} points / {sum(c[1] for c in counted):,} lines accounted for "
        f"({count} runs × {2 * steps_per_epoch} steps)",
        flush=True,
    )


FULL = {"runs": 5, "epochs": 41, "samples": 3, "concurrent": 10, "steps": 200}
SMOKE = {"runs": 1, "epochs": 3, "samples": 1, "concurrent": 3, "steps": 20}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for CI: every figure once in about a minute")
    parser.add_argument("--only", choices=["6", "7", "8"], help="run only this figure")
    parser.add_argument("--runs", type=int, help="6a/6b samples")
    parser.add_argument("--epochs", type=int, help="7: epochs of the long flow")
    parser.add_argument("--samples", type=int, help="7: samples")
    parser.add_argument("--concurrent", type=int, help="8: runs started at once")
    parser.add_argument("--steps", type=int, help="8: steps per epoch of each run (2 epochs)")
    args = parser.parse_args()
    for key, value in (SMOKE if args.smoke else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)

    def wanted(number: int) -> bool:
        return args.only in (None, number)

    with tempfile.TemporaryDirectory() as tmp:
        system = LtmSystem(Path(tmp) / "home").start()
        try:
            with Client(system.api_url) as api:
                if wanted("6"):
                    project = api.create_project(name="bench-flows", owner="bench")
                    time_to_running(api, project.id)  # warm-up: the worker's first flow imports everything
                    samples = [time_to_running(api, project.id) for _ in range(args.runs)]
                    figure("6a create run → 运行中 (warm worker)", [s[0] for s in samples], "≤ 5 s")
                    figure("6b cancel → 已取消 with checkpoint", [s[1] for s in samples], "≤ 5 s")
                if wanted("7"):
                    overheads = []
                    for i in range(args.samples):
                        many_flow, many_bare = orchestration_overhead(system, Path(tmp) / f"o{i}", args.epochs, 10)
                        one_flow, one_bare = orchestration_overhead(system, Path(tmp) / f"p{i}", 1, 10)
                        per_epoch = ((many_flow - many_bare) - (one_flow - one_bare)) / (args.epochs - 1)
                        overheads.append(per_epoch * 1000)
                    figure("7  orchestration overhead per epoch vs bare trainer loop", overheads, "≤ 50 ms", unit="ms")
                if wanted("8"):
                    concurrent_runs(api, args.concurrent, args.steps)
        finally:
            system.stop()


if __name__ == "__main__":
    main()
