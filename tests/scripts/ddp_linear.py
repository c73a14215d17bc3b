"""A tiny deterministic DDP training script for ltm's script-run tests: gloo on CPU, any number of processes.

Each step's batch depends only on (seed, step, rank), and the checkpoint holds the model, the optimizer (momentum
included) and the step, so a run resumed from any checkpoint logs exactly the losses of an uninterrupted one.
"""

import argparse
import os
import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import ltm.core

FEATURES = 8


def batch(seed: int, step: int, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step * 101 + rank)
    x = torch.randn(16, FEATURES, generator=generator)
    y = x @ torch.arange(1.0, FEATURES + 1) + 0.1 * torch.randn(16, generator=generator)
    return x, y.unsqueeze(1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--save-every", type=int, default=10)
    args = parser.parse_args()

    distributed = int(os.environ.get("WORLD_SIZE", 1)) > 1
    if distributed:
        dist.init_process_group("gloo")
    with ltm.core.init(total_steps=args.steps) as ctx:
        seed = int(ctx.hparams.get("seed", 0))
        pause = float(ctx.hparams.get("step_seconds", 0.1))
        torch.manual_seed(seed)
        model = torch.nn.Linear(FEATURES, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=float(ctx.hparams.get("learning_rate", 0.01)), momentum=0.9)
        step = 0
        if ctx.checkpoint.resume_path:
            state = torch.load(ctx.checkpoint.resume_path / "state.pt")
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            step = state["step"]
            print(f"从第 {step} 步恢复")
        net = DistributedDataParallel(model) if distributed else model

        def save() -> None:
            if ctx.distributed.is_main:
                path = ctx.checkpoint.dir / "state.pt"
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step}, path)
                ctx.checkpoint.save(step, path)

        while step < args.steps:
            x, y = batch(seed, step, ctx.distributed.rank)
            loss = torch.nn.functional.mse_loss(net(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            mean = loss.detach().clone()
            if distributed:
                dist.all_reduce(mean)
                mean /= ctx.distributed.world_size
            ctx.report(step, {"loss": mean.item()})
            print(f"第 {step} 步 loss={mean.item():.6f}")
            if step % args.save_every == 0:
                save()
            if ctx.should_stop():
                print(f"在第 {step} 步停止")
                save()
                break
            time.sleep(pause)
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
