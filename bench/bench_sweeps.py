"""Sweep benchmark (figure 20): an ASHA sweep of the simulated trainer against the same configurations run to
completion — steps trained, wall time, and whether ASHA finds the configuration that is truly best.

Run with `make bench` (or `python -m bench.bench_sweeps [--trials N] [--parallelism P] [--epochs E]
[--no-baseline-sweep]`); `--smoke` uses tiny sizes for CI. It starts its own `ltm up` in a temp folder.

The random sampler with a fixed seed asks for the same configurations in the same order in every sweep, so
"the same configurations run to completion" is measured twice: by running the simulated trainer in-process to the
end for each trial's parameters (deterministic given seed and hyperparameters: the true final eval_loss of each),
and by a second sweep with pruner none through the system (its wall time). Both are checked against the figures
the sweeps recorded, so a baseline that silently differs from what the flows train fails the benchmark.
"""

import argparse
import math
import shutil
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ltm import Client
from ltm.models import RunStatus, Sweep, SweepStatus, TrialState
from ltm.testing import LtmSystem, wait_until
from ltm.trainers import TrainerConfig, get_trainer

TASK_TYPE = "文本摘要"
MODEL, DATASET, TRAINER = "m-7b", "d", "simulated"
STEPS_PER_EPOCH = 10
REDUCTION_FACTOR = 3
SEED = 18
SPACE = {
    "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
    "batch_size": {"type": "choice", "values": [4, 8, 16, 32, 64]},
    "warmup_steps": {"type": "int", "low": 0, "high": 50},
}
OBJECTIVE = {"metric": "eval_loss", "direction": "minimize"}
STEPS_TARGET = 0.35
ENDED_WELL = (TrialState.COMPLETED, TrialState.PRUNED)

FULL = {"trials": 64, "parallelism": 4, "epochs": 27, "baseline_sweep": True}
SMOKE = {"trials": 4, "parallelism": 2, "epochs": 6, "baseline_sweep": False}  # warmup_steps ≤ 50 ≤ 60 steps


@dataclass
class Measured:
    sweep: Sweep
    seconds: float
    runs: int
    steps_from_runs: int
    saved_from_runs: int
    queued: float  # median seconds from a run's creation to its start
    running: float  # median seconds from a run's start to its end


def hyperparameters(epochs: int) -> dict:
    return {"num_epochs": epochs, "steps_per_epoch": STEPS_PER_EPOCH, "step_seconds": 0}


def run_sweep(api: Client, project_id: str, name: str, pruner: str, args) -> Measured:
    """Create a sweep, wait for 已完成, and count its runs' steps from the runs API."""
    started = time.perf_counter()
    sweep = api.create_sweep(
        project_id,
        name=name,
        template={
            "model": MODEL,
            "dataset": DATASET,
            "trainer": TRAINER,
            "hyperparameters": hyperparameters(args.epochs),
        },
        space=SPACE,
        objective=OBJECTIVE,
        max_trials=args.trials,
        sampler="random",
        pruner=pruner,
        parallelism=args.parallelism,
        reduction_factor=REDUCTION_FACTOR,
        seed=SEED,
    )
    print(f"   {name}: {sweep.id}, pruner {pruner}, rungs {sweep.rungs} …", flush=True)
    sweep = wait_until(
        lambda: ended(api, project_id, sweep.id),
        timeout=3600,
        interval=1.0,
        message=f"sweep {name} to end",
    )
    seconds = time.perf_counter() - started
    failed = [
        f"{t.number} {t.state.value} at step {t.step}: {t.message}" for t in sweep.trials if t.state not in ENDED_WELL
    ]
    if sweep.status != SweepStatus.COMPLETED or failed or len(sweep.trials) != args.trials:
        states = Counter(t.state.value for t in sweep.trials)
        raise AssertionError(
            f"sweep {name} ended {sweep.status.value} ({sweep.message}); {len(sweep.trials)} trials {dict(states)}; "
            f"not completed or pruned: {failed[:5]}"
        )
    runs = [run for run in api.list_runs(project_id) if run.sweep_id == sweep.id]
    not_done = [f"{run.id} {run.status.value}" for run in runs if run.status != RunStatus.COMPLETED]
    if not_done:
        raise AssertionError(f"sweep {name}: runs not 已完成: {not_done}")
    steps = sum(run.current_step - run.start_step for run in runs)
    saved = sum(run.start_step for run in runs if run.rung)
    queued = statistics.median((run.started_at - run.created_at).total_seconds() for run in runs)
    running = statistics.median((run.finished_at - run.started_at).total_seconds() for run in runs)
    print(f"   {name}: {sweep.status.value} in {seconds:.1f} s, {len(runs)} runs", flush=True)
    return Measured(sweep, seconds, len(runs), steps, saved, queued, running)


def ended(api: Client, project_id: str, sweep_id: str) -> Sweep | None:
    sweep = api.get_sweep(project_id, sweep_id)
    return None if sweep.status == SweepStatus.RUNNING else sweep


def eval_losses(params: dict, epochs: int, at_steps: list[int]) -> dict[int, float]:
    """eval_loss at each of `at_steps` of the simulated trainer trained in-process from step 0, as a flow evaluates
    it at an epoch end."""
    config = TrainerConfig(MODEL, DATASET, TASK_TYPE, {**hyperparameters(epochs), **params}, {})
    trainer = get_trainer(TRAINER)(config)
    found = {}
    while trainer.step < trainer.total_steps:
        trainer.train_step()
        if trainer.step in at_steps:
            found[trainer.step] = trainer.evaluate()["eval_loss"]
    return found


def check_objectives(sweep: Sweep, curves: dict[int, dict[int, float]]) -> str:
    """Raise unless every objective the sweep recorded is the in-process eval_loss at the trial's step."""
    worst, final, at_rung = 0.0, 0, 0
    for trial in sweep.trials:
        expected = curves[trial.number][trial.step]
        if trial.objective is None or not math.isclose(trial.objective, expected, rel_tol=1e-12, abs_tol=0.0):
            raise AssertionError(
                f"sweep {sweep.id} trial {trial.number} ({trial.state.value}, step {trial.step}): objective "
                f"{trial.objective!r}, the in-process simulated trainer gives {expected!r}"
            )
        worst = max(worst, abs(trial.objective - expected))
        final += trial.state == TrialState.COMPLETED
        at_rung += trial.state == TrialState.PRUNED
    return (
        f"{len(sweep.trials)} of {len(sweep.trials)} objectives ({final} final, {at_rung} at a rung) equal the "
        f"in-process trainer's eval_loss (max |diff| {worst:.1e})"
    )


def check_steps(measured: Measured, name: str) -> None:
    sweep = measured.sweep
    if measured.steps_from_runs != sweep.steps_trained or measured.saved_from_runs != sweep.steps_saved:
        raise AssertionError(
            f"{name}: sweep says {sweep.steps_trained} steps trained / {sweep.steps_saved} saved, its runs add up "
            f"to {measured.steps_from_runs} / {measured.saved_from_runs}"
        )


def check_same_params(asha: Sweep, baseline: Sweep) -> None:
    first = {t.number: t.params for t in asha.trials}
    second = {t.number: t.params for t in baseline.trials}
    if first != second:
        differing = sorted(n for n in first if first[n] != second.get(n))
        raise AssertionError(f"the two sweeps asked for different configurations, e.g. trial {differing[:3]}")


def row(label: str, asha: str, complete: str, verdict: str) -> None:
    print(f"20 | {label:<44} | {asha:>16} | {complete:>22} | {verdict}", flush=True)


def report(args, asha: Measured, baseline: Measured | None, curves: dict[int, dict[int, float]]) -> None:
    sweep = asha.sweep
    all_steps = args.trials * sweep.total_steps
    share = sweep.steps_trained / all_steps
    met = "met" if share <= STEPS_TARGET else "MISSED"
    print(f"20 | {'figure':<44} | {'ASHA':>16} | {'all to completion':>22} | target / verdict", flush=True)
    row(
        "steps trained",
        f"{sweep.steps_trained:,}",
        f"{all_steps:,} ({args.trials} × {sweep.total_steps})",
        f"{share:.1%} ≤ {STEPS_TARGET:.0%}: {met}",
    )
    without = sweep.steps_trained + sweep.steps_saved
    row(
        "steps saved by resuming promotions",
        f"{sweep.steps_saved:,}",
        "",
        f"from step 0 ASHA would train {without:,} ({without / all_steps:.1%})",
    )
    counts = {state: sum(t.state == state for t in sweep.trials) for state in ENDED_WELL}
    row(
        "runs (trials completed / pruned)",
        f"{asha.runs} ({counts[TrialState.COMPLETED]}/{counts[TrialState.PRUNED]})",
        f"{baseline.runs}" if baseline else "not run",
        "",
    )
    row(
        "per run, median: queued / running",
        f"{asha.queued:.1f} s / {asha.running:.1f} s",
        f"{baseline.queued:.1f} s / {baseline.running:.1f} s" if baseline else "not run",
        "",
    )
    row(
        "wall time, create → sweep completed",
        f"{asha.seconds:,.1f} s",
        f"{baseline.seconds:,.1f} s" if baseline else "not run",
        f"ASHA / all = {asha.seconds / baseline.seconds:.2f}" if baseline else "",
    )
    if baseline and asha.seconds > baseline.seconds:
        per_step = (asha.seconds - baseline.seconds) * args.parallelism / (all_steps - sweep.steps_trained)
        print(
            f"20 at step_seconds 0 a run costs its start, not its steps; ASHA's {asha.runs - baseline.runs} extra runs "
            f"would be paid back by the {all_steps - sweep.steps_trained:,} steps it skips once a step takes more "
            f"than ~{per_step * 1000:.0f} ms (estimate: the wall-time gap × parallelism / steps skipped)",
            flush=True,
        )
    finals = {number: curve[sweep.rungs[-1]] for number, curve in curves.items()}
    ranked = sorted(finals, key=lambda number: (finals[number], number))
    found = sweep.best.number
    rank = 1 + sum(value < finals[found] for value in finals.values())
    true_best = ranked[0]
    gap = finals[found] - finals[true_best]
    verdict = (
        "the true best"
        if rank == 1
        else f"rank {rank} of {len(finals)}, gap {gap:+.4g} ({gap / finals[true_best]:+.2%})"
    )
    row(
        "best configuration (eval_loss at the end)",
        f"trial {found}: {finals[found]:.4f}",
        f"trial {true_best}: {finals[true_best]:.4f}",
        verdict,
    )
    fate = next(t for t in sweep.trials if t.number == true_best)
    print(
        f"20 the true best, trial {true_best} {fate.params}, ended {fate.state.value} at step {fate.step} in the ASHA "
        f"sweep{': ' + fate.pruned_reason if fate.pruned_reason else ''}",
        flush=True,
    )
    print(
        f"20 its rank among all {len(curves)} by eval_loss at each rung (in-process): {rung_ranks(curves, true_best)}"
    )


def rung_ranks(curves: dict[int, dict[int, float]], number: int) -> str:
    steps = sorted(curves[number])
    ranks = [1 + sum(curve[step] < curves[number][step] for curve in curves.values()) for step in steps]
    return ", ".join(f"step {step}: {rank}" for step, rank in zip(steps, ranks))


def warm_up(api: Client, project_id: str) -> None:
    """One short run, so the worker's first flow (which imports everything) is not inside a measured sweep."""
    run = api.create_run(project_id, model=MODEL, dataset=DATASET, hyperparameters=hyperparameters(1))
    wait_until(lambda: api.get_run(project_id, run.id).status.is_terminal, timeout=120, interval=0.2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for CI: about a minute")
    parser.add_argument("--trials", type=int, help="max_trials of each sweep")
    parser.add_argument("--parallelism", type=int, help="trials at once")
    parser.add_argument("--epochs", type=int, help="num_epochs of the template (rungs at 1, 3, 9, … epochs)")
    parser.add_argument(
        "--baseline-sweep",
        action=argparse.BooleanOptionalAction,
        help="also run the same configurations to completion through the system (pruner none) for its wall time",
    )
    parser.add_argument("--keep-logs", type=Path, help="copy the `ltm up` service logs into this folder")
    args = parser.parse_args()
    for key, value in (SMOKE if args.smoke else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)

    with tempfile.TemporaryDirectory() as tmp:
        system = LtmSystem(Path(tmp) / "home").start()
        try:
            with Client(system.api_url) as api:
                project = api.create_project(name="bench-sweeps", owner="bench", task_type=TASK_TYPE)
                warm_up(api, project.id)
                asha = run_sweep(api, project.id, "bench-asha", "asha", args)
                baseline = run_sweep(api, project.id, "bench-none", "none", args) if args.baseline_sweep else None
        finally:
            system.stop()
            if args.keep_logs:
                shutil.copytree(system.home / "logs", args.keep_logs, dirs_exist_ok=True)
    check_steps(asha, "ASHA")
    rungs = asha.sweep.rungs
    curves = {t.number: eval_losses(t.params, args.epochs, rungs) for t in asha.sweep.trials}
    print(f"20 check, ASHA: {check_objectives(asha.sweep, curves)}", flush=True)
    if baseline:
        check_steps(baseline, "pruner none")
        check_same_params(asha.sweep, baseline.sweep)
        if baseline.sweep.steps_trained != args.trials * baseline.sweep.total_steps:
            raise AssertionError(f"pruner none trained {baseline.sweep.steps_trained} steps")
        print(f"20 check, pruner none (same {args.trials} configurations): {check_objectives(baseline.sweep, curves)}")
    report(args, asha, baseline, curves)


if __name__ == "__main__":
    main()
