"""Data-parallel training of one run under `torchrun` (DDP).

    torchrun --nproc_per_node 4 bench.py --model cwvae --preset paper --device cuda

Every rank draws the same global batch from the same seeded sampler and trains on its
own slice of `train.batch_size / world` sequences; DDP averages the gradients, so a
step equals one process on the whole global batch (for losses that are batch means,
as every model's here). Rank 0 alone generates a missing dataset (the others wait, then
verify it) and writes logs, checkpoints and the evaluation.
Backends: NCCL on CUDA, gloo on CPU (used by the tests).
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside torchrun."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_from_env(device: torch.device) -> torch.device:
    """Join the process group torchrun describes in the environment; return this rank's device."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1 or (dist.is_available() and dist.is_initialized()):
        return device
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend)
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return device


class LossModule(nn.Module):
    """DDP wraps `forward`; this routes it to the model's `loss`."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, video):
        return self.model.loss(video)


def shard(batch, rank: int, size: int):
    """This rank's slice of the global batch (B, ...)."""
    if len(batch) % size:
        raise ValueError(f"train.batch_size={len(batch)} is not divisible by the {size} processes; change one of them")
    per = len(batch) // size
    return batch[rank * per : (rank + 1) * per]


def rank_zero_first(fn):
    """fn() on rank 0, then on the other ranks (data generated once by rank 0, then only verified by the
    others, instead of every rank writing the same files at once); fn() alone outside torchrun."""
    rank, size = world()
    if size > 1 and rank != 0:
        dist.barrier()
    result = fn()
    if size > 1 and rank == 0:
        dist.barrier()
    return result


def mean_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """The global-batch mean of a per-rank batch mean."""
    _, size = world()
    if size == 1:
        return value
    value = value.detach().clone()
    dist.all_reduce(value)
    return value / size


def max_over_ranks(value: int, device: torch.device) -> int:
    """The largest of an integer over the ranks (the value itself outside torchrun)."""
    _, size = world()
    if size == 1:
        return value
    t = torch.tensor(value, dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t)
