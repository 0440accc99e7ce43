"""Graph-level conditions in the core: target properties a network sees, dropped in training, guided in sampling.

A conditional model (issue 26) is trained on graphs with properties (QM9's
polarisability, gap, ...), normalised by training statistics
(:mod:`molgen.targets`), and samples graphs that have requested values. In the
core a condition is a :class:`GraphCondition`: normalised ``values`` and a
``mask`` of which properties are given, per graph. Three pieces, the same for
every process and sampler:

- **The network** takes ``condition=GraphCondition | None``. It sees
  :func:`condition_features` ``[values * mask, mask]`` through a linear map
  without bias (:class:`molgen.models.condition_embedding.ConditionEmbedding`),
  added to its node embedding beside the time. A dropped property contributes
  exactly nothing, so with every property dropped (or ``condition=None``) the
  network is the unconditional one with the same weights.
- **Training** drops each property of each graph independently
  (:func:`drop_conditions`), so that one model samples conditioned on any subset
  of its properties, or unconditionally (the subset that classifier-free
  guidance needs).
- **Sampling** with a guidance scale ``w`` > 0 (:class:`GuidedDenoiser`) calls the
  network with and without the condition and returns
  ``(1 + w) * conditional - w * unconditional`` for every output: the noise of
  positions and features, and the clean-class logits of categorical channels (a
  softmax is unchanged by the per-row constant that separates logits from log
  probabilities, so this is the guided log-probability of Ho & Salimans 2022 for
  the classes too). ``w = 0`` is the conditional model itself, one call per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "GraphCondition",
    "GuidedDenoiser",
    "condition_features",
    "condition_from_batch",
    "drop_conditions",
]


@dataclass(frozen=True)
class GraphCondition:
    """Per-graph target properties: ``values`` ``[B, P]`` normalised (ignored where not given) and
    ``mask`` ``[B, P]`` bool, True where a property is given."""

    values: Tensor
    mask: Tensor

    def to(self, device: torch.device | str, dtype: torch.dtype) -> GraphCondition:
        return GraphCondition(self.values.to(device=device, dtype=dtype), self.mask.to(device))

    def select(self, graphs: Any) -> GraphCondition:
        """The conditions of some graphs (a slice or an index tensor)."""
        return GraphCondition(self.values[graphs], self.mask[graphs])


def condition_features(condition: GraphCondition | None, num_graphs: int, num_conditions: int, like: Tensor) -> Tensor:
    """``[values * mask, mask]``: ``[B, 2P]`` network input (dtype and device of ``like``); zeros for None."""
    if condition is None:
        return like.new_zeros(num_graphs, 2 * num_conditions)
    if condition.values.shape != (num_graphs, num_conditions):
        raise ValueError(
            f"the condition must be [{num_graphs}, {num_conditions}] (graphs, properties), "
            f"got {tuple(condition.values.shape)}"
        )
    mask = condition.mask.to(like.dtype)
    return torch.cat([condition.values.to(like.dtype) * mask, mask], dim=-1)


def condition_from_batch(data: Any) -> GraphCondition | None:
    """The condition of a training batch: its ``y`` ``[B, P]`` (normalised properties), all given; None without."""
    y = getattr(data, "y", None)
    if y is None:
        return None
    return GraphCondition(y, torch.ones_like(y, dtype=torch.bool))


def drop_conditions(
    condition: GraphCondition | None, rate: float, generator: torch.Generator | None = None
) -> GraphCondition | None:
    """``condition`` with each property of each graph dropped (mask False) with probability ``rate``."""
    if condition is None or rate <= 0:
        return condition
    keep = torch.rand(condition.mask.shape, generator=generator, device=condition.mask.device) >= rate
    return GraphCondition(condition.values, condition.mask & keep)


class GuidedDenoiser(torch.nn.Module):
    """Classifier-free guidance around a conditional denoiser (module docstring).

    Called like the denoiser; with a ``condition`` it returns ``(1 + scale) * out(condition) -
    scale * out(None)`` for each output tensor (two network calls), without one the plain output.
    Other keywords (a self-conditioning estimate) reach both calls unchanged.
    """

    def __init__(self, denoiser: torch.nn.Module, scale: float) -> None:
        super().__init__()
        self.denoiser = denoiser
        self.scale = float(scale)

    @property
    def self_conditioning(self) -> bool:
        return bool(getattr(self.denoiser, "self_conditioning", False))

    def forward(self, *inputs: Tensor, condition: GraphCondition | None = None, **keywords: Any) -> tuple:
        if condition is None:
            return self.denoiser(*inputs, **keywords)
        given = self.denoiser(*inputs, condition=condition, **keywords)
        free = self.denoiser(*inputs, **keywords)
        w = self.scale
        return tuple(None if c is None else (1 + w) * c - w * u for c, u in zip(given, free))
