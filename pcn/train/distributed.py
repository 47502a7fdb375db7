"""torch.distributed helpers for training under ``torchrun`` (DDP), rank 0 doing all I/O.

The collectives inside the network (global batch statistics) are in :mod:`pcn.nn.collectives`,
whose :func:`~pcn.nn.collectives.is_initialized` this module uses too. The launcher's
environment (RANK, WORLD_SIZE, LOCAL_RANK) is read by the stage script and passed in as a
:class:`DistInfo`; nothing here reads the environment.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

from pcn.nn.collectives import is_initialized


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def all_gather_objects(obj) -> list:
    """``[obj of rank 0, obj of rank 1, ...]`` (a one-element list outside torch.distributed)."""
    if not is_initialized():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def init_distributed(info: DistInfo, device_type: str) -> None:
    """Join the process group (NCCL on CUDA, gloo on CPU); no-op for a single process."""
    if not info.enabled or is_initialized():
        return
    if device_type == "cuda":
        torch.cuda.set_device(info.local_rank)
    dist.init_process_group("nccl" if device_type == "cuda" else "gloo", rank=info.rank, world_size=info.world_size)


def barrier() -> None:
    if is_initialized():
        dist.barrier()


def cleanup() -> None:
    if is_initialized():
        dist.destroy_process_group()


def torchrun_command(nproc: int, script: str, argv: list[str]) -> list[str]:
    """The command that runs ``script argv`` in ``nproc`` DDP processes on this machine."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", script, *argv]
