"""Collectives that the network's layers use, so that batch statistics cover the global batch.

Every "is there a process group?" question in pcn goes through :func:`is_initialized`
(any group) or :func:`is_distributed` (a group of more than one process). Outside
``torch.distributed`` every function is the identity (one process).
"""

from __future__ import annotations

import torch.distributed as dist
from torch import Tensor


def is_initialized() -> bool:
    """True inside an initialized process group (of any size)."""
    return dist.is_available() and dist.is_initialized()


def is_distributed() -> bool:
    """True inside an initialized process group of more than one process."""
    return is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def all_reduce_sum_(t: Tensor) -> Tensor:
    """Sum ``t`` over all ranks in place (no autograd); identity outside torch.distributed."""
    if is_distributed():
        dist.all_reduce(t)
    return t


def global_sum(t: Tensor) -> Tensor:
    """Sum of ``t`` over all ranks, differentiable; identity outside torch.distributed.

    Batch statistics built from it are those of the global batch, so a DDP run computes the
    same function as one process on the whole batch.
    """
    if is_distributed():
        from torch.distributed.nn.functional import all_reduce

        return all_reduce(t)
    return t
