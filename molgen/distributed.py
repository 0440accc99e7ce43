"""Sharded work across processes started by ``torchrun`` (docs/distributed.md).

``torchrun`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` for every
process it starts; :func:`join_torchrun` joins them in a gloo process group
(results travel as Python objects on the CPU, whatever device computed
them). Training does not use this module: Lightning's DDP strategy does its
own process management.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from typing import Any

import torch.distributed as dist


@dataclass(frozen=True)
class Rank:
    """This process's place among ``world_size`` processes; ``local_rank`` counts within its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0


def join_torchrun() -> Rank:
    """Join the process group of a ``torchrun`` launch; ``Rank()`` for a process started otherwise."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Rank()
    if not dist.is_initialized():
        dist.init_process_group("gloo")
        atexit.register(dist.destroy_process_group)
    return Rank(dist.get_rank(), world_size, int(os.environ.get("LOCAL_RANK", "0")))


def gather_to_first(obj: Any, rank: Rank) -> list[Any] | None:
    """Every process's ``obj`` in rank order on rank 0; None on the other ranks."""
    if rank.world_size == 1:
        return [obj]
    gathered = [None] * rank.world_size if rank.rank == 0 else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered
