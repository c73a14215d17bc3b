"""Never asks `should_stop` (and, with --ignore-sigterm, shrugs off SIGTERM too): ltm must terminate it."""

import argparse
import signal
import time

import ltm.core

parser = argparse.ArgumentParser()
parser.add_argument("--save-every", type=int, default=5)
parser.add_argument("--ignore-sigterm", action="store_true")
args = parser.parse_args()
if args.ignore_sigterm:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

with ltm.core.init(total_steps=100_000) as ctx:
    step = 0
    while True:
        step += 1
        ctx.report(step, {"loss": 1.0 / step})
        if step % args.save_every == 0:
            ctx.checkpoint.save(step, {"state.txt": f"step={step}".encode()})
        time.sleep(0.1)
