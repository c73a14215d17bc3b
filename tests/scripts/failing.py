"""Fails on purpose for ltm's tests: a data error on one rank, or CUDA running out of memory."""

import argparse

import ltm.core

parser = argparse.ArgumentParser()
parser.add_argument("--rank", type=int, default=0, help="the rank that fails")
parser.add_argument("--after", type=int, default=3, help="steps before the failure")
parser.add_argument("--oom", action="store_true", help="fail as PyTorch does when CUDA runs out of memory")
args = parser.parse_args()

with ltm.core.init(total_steps=100) as ctx:
    for step in range(1, args.after + 1):
        ctx.report(step, {"loss": 1.0 / step})
        print(f"第 {step} 步")
    if ctx.distributed.world_size > 1:
        # torchrun stops the other ranks as soon as one fails: rank 0 sends its reports, then the ranks meet.
        ctx.close()
        import torch.distributed as dist

        dist.init_process_group("gloo")
        dist.barrier()
    if ctx.distributed.rank == args.rank:
        if args.oom:
            import torch

            raise torch.OutOfMemoryError(
                "CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of 79.15 GiB"
            )
        raise RuntimeError(f"读取第 {args.after + 1} 批数据失败：样本文件损坏")
