"""Stops making progress after a few steps while still answering: it keeps reporting the same step.

On the stop request it saves a checkpoint and exits, unless --ignore-stop; with --once only a first attempt gets
stuck, and a run resumed from its checkpoint trains to the end.
"""

import argparse
import time

import ltm.core

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=10)
parser.add_argument("--stuck-at", type=int, default=4)
parser.add_argument("--save-every", type=int, default=2)
parser.add_argument("--ignore-stop", action="store_true")
parser.add_argument("--once", action="store_true", help="a run resumed from a checkpoint does not get stuck")
args = parser.parse_args()

with ltm.core.init(total_steps=args.steps) as ctx:
    resumed = ctx.checkpoint.resume_path is not None
    step = int((ctx.checkpoint.resume_path / "state.txt").read_text()) if resumed else 0
    stuck = not (args.once and resumed)
    while step < args.steps:
        if not (stuck and step >= args.stuck_at):
            step += 1
            if step % args.save_every == 0:
                ctx.checkpoint.save(step, {"state.txt": str(step).encode()})
        ctx.report(step, {"loss": 1.0 / step})
        if not args.ignore_stop and ctx.should_stop():
            ctx.checkpoint.save(step, {"state.txt": str(step).encode()})
            break
        time.sleep(0.1)
