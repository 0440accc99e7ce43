"""Sampling with a fixed part (inpainting, RePaint-style): keep these nodes, generate the rest.

A :class:`KnownPart` marks nodes of every graph in a batch whose positions (and
features or classes, and the classes of the pairs among them) are given. The one
sampling loop (:meth:`molgen.diffusion.samplers.Sampler.sample`) calls the process's
:meth:`~molgen.diffusion.process.DiffusionProcess.inpaint` after the prior and after
every step: the known part is replaced by a copy of its true value noised to the
step's time, so that the network always sees a state consistent with it, and the
unknown part is generated around it. No model is retrained.

The frame. States keep zero centre of mass over the whole graph, and where the
known part sits relative to the rest is part of what is generated: the replacement
keeps the known part's current centroid in the state and replaces only its shape
(positions relative to its own centroid), noised as the forward process would
(isotropic noise with the known part's mean removed, which is that process's noise
on the shape). The whole-graph centre of mass is therefore unchanged. At the end
(:meth:`KnownPart.place`) the known part is set exactly and every graph is
translated so that the known nodes land where the user put them: the fixed atoms
come back at their input coordinates, with no alignment.

For an isotropic Gaussian target the known part's shape, the unknown part's shape
and the offset between the two centroids are independent, and this replacement
samples the exact conditional (tests/diffusion/test_inpainting.py checks it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Generator, Tensor

from molgen.diffusion.process import GraphState
from molgen.graph_batch import graph_mean, graph_sum

__all__ = ["KnownPart"]


@dataclass
class KnownPart:
    """The fixed nodes of a batch of graphs, in the layout of its states.

    Attributes:
        mask: ``[N]`` bool, the known nodes (every graph must have at least one).
        pos: ``[N, 3]`` their positions in the user's frame (model units); other rows unused.
        h: ``[N, F]`` their clean continuous features, for processes that diffuse them; or None.
        node_classes: ``[N, C]`` long, their classes, for processes with categorical node channels; or None.
        pair_mask: ``[P]`` bool, the pairs (of the state's ``pair_index``) whose two nodes are known; or None.
        edge_classes: ``[P]`` long, those pairs' classes (0: no edge); other entries unused; or None.
    """

    mask: Tensor
    pos: Tensor
    h: Tensor | None = None
    node_classes: Tensor | None = None
    pair_mask: Tensor | None = None
    edge_classes: Tensor | None = None

    def to(self, device: torch.device | str, dtype: torch.dtype) -> KnownPart:
        def move(x: Tensor | None, floating: bool) -> Tensor | None:
            if x is None:
                return None
            return x.to(device=device, dtype=dtype) if floating else x.to(device)

        return KnownPart(
            move(self.mask, False),
            move(self.pos, True),
            move(self.h, True),
            move(self.node_classes, False),
            move(self.pair_mask, False),
            move(self.edge_classes, False),
        )

    def _centroids(self, pos: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        """Per-graph centroid ``[B, 3]`` of ``pos`` over the known nodes."""
        return graph_mean(pos[self.mask], batch[self.mask], num_graphs)

    def check(self, state: GraphState) -> None:
        """ValueError unless every graph of ``state`` has a known node and the shapes fit."""
        if self.mask.shape != state.batch.shape or self.pos.shape != state.pos.shape:
            raise ValueError(f"the known part has {self.mask.numel()} nodes; the batch has {state.batch.numel()}")
        known_per_graph = graph_sum(self.mask.long(), state.batch, state.num_graphs)
        if (known_per_graph == 0).any():
            raise ValueError("every graph needs at least one known node to inpaint")

    def positions(
        self,
        state: GraphState,
        alpha: Tensor | None = None,
        sigma: Tensor | None = None,
        generator: Generator | None = None,
    ) -> Tensor:
        """``state.pos`` with the known nodes replaced by their shape, scaled by ``alpha`` and noised
        with ``sigma`` (both None: exact), at the known part's current centroid in the state. ``[N, 3]``."""
        batch, num_graphs, known = state.batch, state.num_graphs, self.mask
        replaced = self.pos - self._centroids(self.pos, batch, num_graphs)[batch]
        if alpha is not None:
            noise = torch.randn(state.pos.shape, generator=generator, device=state.pos.device, dtype=state.pos.dtype)
            noise = noise - graph_mean(noise[known], batch[known], num_graphs)[batch]  # the noise on the shape only
            replaced = alpha * replaced + sigma * noise
        replaced = replaced + self._centroids(state.pos, batch, num_graphs)[batch]
        return torch.where(known[:, None], replaced, state.pos)

    def place(self, state: GraphState) -> GraphState:
        """The finished sample with the known part exact, translated so that the known nodes are at
        their given positions (the user's frame; the sample's centre of mass is no longer zero)."""
        state = state.replace(pos=self.positions(state))
        offset = self._centroids(self.pos, state.batch, state.num_graphs) - self._centroids(
            state.pos, state.batch, state.num_graphs
        )
        return state.replace(pos=torch.where(self.mask[:, None], self.pos, state.pos + offset[state.batch]))
