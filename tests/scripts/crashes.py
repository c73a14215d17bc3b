"""Crashes after a given step (with --once only on a first attempt: resumed from a checkpoint it trains to the end).

The loss of a step depends only on (seed, step), so a resumed run logs exactly the losses an uninterrupted one would.
"""

import argparse
import time

import ltm.core

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=12)
parser.add_argument("--save-every", type=int, default=4)
parser.add_argument("--crash-at", type=int, default=6, help="the step after which the script crashes")
parser.add_argument("--once", action="store_true", help="a run resumed from a checkpoint does not crash")
parser.add_argument("--error", default="节点上的训练进程意外崩溃", help="the error it crashes with")
args = parser.parse_args()


def loss(seed: int, step: int) -> float:
    return round(1.0 / step + seed / 1000, 6)


with ltm.core.init(total_steps=args.steps) as ctx:
    seed = int(ctx.hparams.get("seed", 0))
    resumed = ctx.checkpoint.resume_path is not None
    step = int((ctx.checkpoint.resume_path / "state.txt").read_text()) if resumed else 0
    print(f"从第 {step} 步恢复" if resumed else "从头开始")
    while step < args.steps:
        step += 1
        ctx.report(step, {"loss": loss(seed, step)})
        if step % args.save_every == 0:
            ctx.checkpoint.save(step, {"state.txt": str(step).encode()})
        if step == args.crash_at and not (args.once and resumed):
            raise RuntimeError(args.error)
        time.sleep(float(ctx.hparams.get("step_seconds", 0.05)))
