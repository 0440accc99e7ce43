"""An auxiliary training loss on the clean estimate of diffused features, read as a structure.

The noise-prediction error weighs every feature alike, whatever it does to the structure the
features describe. For features that build a structure sequentially (a backbone's virtual angles,
:mod:`molgen.proteins.internal_coordinates`), a small error in one angle swings everything after it,
and what decides a fold (which strands pair, whether helices pack) is barely rewarded. FrameDiff
(Yim et al. 2023) adds auxiliary losses on the clean structure at low noise for this reason. Here the
model builder offers the losses it knows (``molgen.models.STRUCTURE_LOSSES``: functions (:data:`StructureLossFn`)
such as the CA-CA distance error of rebuilt traces; the core knows no structure), the config names one,
and :class:`~molgen.diffusion.gaussian.GaussianDiffusion` adds it, weighted, for the graphs whose time
is at most ``max_time``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["StructureLoss", "StructureLossFn", "structure_loss_per_graph"]

StructureLossFn = Callable[[Tensor, Tensor, Tensor, int], Tensor]
"""``(estimate [N, F], clean [N, F], batch [N], num_graphs) -> [num_graphs]``: the loss of each graph's
clean-feature estimate against its clean features, differentiable in ``estimate``."""


@dataclass(frozen=True)
class StructureLoss:
    """A :data:`StructureLossFn` with its weight and the highest time it applies at.

    Attributes:
        name: how ``diffusion.structure_loss`` names it.
        fn: the loss.
        weight: its weight against the per-dof noise-prediction error.
        max_time: graphs with ``t > max_time`` get none (at high noise the estimate is a blur).
    """

    name: str
    fn: StructureLossFn
    weight: float
    max_time: float

    def __post_init__(self) -> None:
        if not self.weight > 0:
            raise ValueError(f"diffusion.structure_loss_weight must be positive, got {self.weight}")
        if not 0 < self.max_time <= 1:
            raise ValueError(f"diffusion.structure_loss_max_time must be in (0, 1], got {self.max_time}")


def structure_loss_per_graph(loss: StructureLoss, estimate: Tensor, clean: Tensor, t: Tensor, batch: Tensor) -> Tensor:
    """``[B]``: the weighted loss of each graph with ``t <= loss.max_time``, zero for the others (computed only
    for those graphs). ``estimate`` and ``clean`` ``[N, F]``, ``t`` ``[B]``, ``batch`` ``[N]`` sorted."""
    chosen = t <= loss.max_time
    per_graph = torch.zeros_like(t, dtype=estimate.dtype)
    if not bool(chosen.any()):
        return per_graph
    nodes = chosen[batch]
    renumbered = (torch.cumsum(chosen.long(), dim=0) - 1)[batch[nodes]]
    values = loss.fn(estimate[nodes], clean[nodes], renumbered, int(chosen.sum()))
    return per_graph.index_put((chosen.nonzero().squeeze(1),), loss.weight * values)
