"""Data parallelism under ``torchrun``: one process per device, Gloo on CPU, NCCL on GPUs.

Gradients are averaged across processes by one coalesced all-reduce per optimizer step instead
of wrapping G and D in DistributedDataParallel.  GAN phases freeze and unfreeze whole networks
between steps and run a network several times per step (real and fake through D), which DDP's
reducer does not support without `find_unused_parameters` and static-graph caveats; averaging
the gradients ourselves is the same data-parallel algorithm with none of those limits (it is
also what StyleGAN2-ADA's training loop does).
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside torchrun."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_from_env(device: torch.device) -> None:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)  # NCCL uses the current device for its communicators
    dist.init_process_group(backend=backend)


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def barrier() -> None:
    if world()[1] > 1:
        dist.barrier()


def broadcast_module(module: torch.nn.Module) -> None:
    """Make every process start from rank 0's parameters and buffers."""
    if world()[1] == 1:
        return
    for tensor in [*module.parameters(), *module.buffers()]:
        dist.broadcast(tensor.data, src=0)


def average_gradients(params: list[torch.nn.Parameter]) -> None:
    """All-reduce the gradients of ``params`` as one flat buffer and divide by the world size."""
    size = world()[1]
    if size == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= size
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def broadcast_object(obj: Any) -> Any:
    """Rank 0's value of ``obj`` on every process."""
    if world()[1] == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj: Any) -> list[Any]:
    """Every process's ``obj``, in rank order (on every process)."""
    size = world()[1]
    if size == 1:
        return [obj]
    out: list[Any] = [None] * size
    dist.all_gather_object(out, obj)
    return out


def shutdown() -> None:
    """Leave the process group; a no-op outside torchrun or when already left, so that
    `ganforge.train` may call it at its end in every case."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
