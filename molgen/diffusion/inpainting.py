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

Trained with fixed parts. A network never trained with a fixed part sees it only through
the noisy state; one built with ``fixed_part_input`` (the bond model) also sees the known
part itself at every noise level, as DiffLinker's context: which nodes are known, their
clean classes, and the clean classes and distances of the pairs among them
(:class:`FixedInput`). It learns from random fixed parts in training
(:func:`random_known_part`: a random connected region of each graph is generated, the
rest is known), and samples with the same replacement as every other model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Generator, Tensor

from molgen.diffusion.process import GraphState
from molgen.graph_batch import graph_mean, graph_sizes, graph_sum

__all__ = ["FixedInput", "KnownPart", "is_fixed_part_aware", "random_known_part"]


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


class FixedInput(NamedTuple):
    """What a denoiser trained with fixed parts sees of the known part (module docstring).

    ``node_mask`` ``[N]`` and ``pair_mask`` ``[P]`` bool: the known nodes, and the pairs whose two nodes
    are known; ``node_features`` ``[N, F]`` the known nodes' clean one-hots and ``edge_features``
    ``[P, K_e]`` the known pairs' clean one-hots; ``pair_d2`` ``[P, 1]`` the known pairs' squared
    distance in the given positions (model units). Zeros outside the masks.
    """

    node_mask: Tensor
    node_features: Tensor
    pair_mask: Tensor
    edge_features: Tensor
    pair_d2: Tensor


def is_fixed_part_aware(denoiser: Any) -> bool:
    """Whether ``denoiser`` was built to see a fixed part (``fixed=FixedInput``, module docstring)."""
    return bool(getattr(denoiser, "fixed_part_input", False))


def random_known_part(
    state: GraphState, rate: float, generator: Generator | None = None, free_classes: Sequence[int] = ()
) -> KnownPart | None:
    """A random fixed part of a clean joint state, for training (module docstring).

    Each graph of two or more nodes is chosen with probability ``rate``; in it a connected region
    of ``k`` nodes, ``k`` uniform in ``1 .. n - 1``, is to be generated (grown breadth-first over the
    edges, ``edge_classes > 0``, from a random node, restarting from a random remaining node when a
    component is used up) and the other nodes are known: peripheral regions
    teach decoration, inner ones linking. In half the chosen graphs, the nodes whose first class
    channel is in ``free_classes`` are generated too, wherever they are: users fix heavy atoms and
    leave the hydrogens on them to the model, so a model trained for molecules with hydrogens gets
    ``free_classes`` = the hydrogen class. A graph left with no known node is not chosen. The known
    part holds the state's positions and classes. None when no graph is chosen.
    """
    sizes = graph_sizes(state.batch, state.num_graphs).tolist()
    draws = torch.rand(len(sizes), generator=generator).tolist()
    free_draws = torch.rand(len(sizes), generator=generator).tolist()
    free = torch.isin(state.node_classes[:, 0].cpu(), torch.as_tensor(list(free_classes), dtype=torch.long))
    pairs = state.pair_index[:, state.edge_classes > 0].tolist()
    neighbours: dict[int, list[int]] = {}
    for i, j in zip(*pairs):
        neighbours.setdefault(i, []).append(j)
        neighbours.setdefault(j, []).append(i)
    mask = torch.zeros(state.batch.numel(), dtype=torch.bool)
    start = 0
    for n, draw, free_draw in zip(sizes, draws, free_draws):
        if n >= 2 and draw < rate:
            order = torch.randperm(n, generator=generator).tolist()
            k = 1 + int(torch.randint(n - 1, (), generator=generator))
            region: list[int] = []
            while len(region) < k:
                frontier = [next(start + v for v in order if start + v not in region)]
                while frontier and len(region) < k:
                    node = frontier.pop(0)
                    if node in region:
                        continue
                    region.append(node)
                    frontier += [m for m in neighbours.get(node, []) if m not in region]
            known = torch.ones(n, dtype=torch.bool)
            known[torch.tensor(region) - start] = False
            if free_draw < 0.5:
                known &= ~free[start : start + n]
            mask[start : start + n] = known
        start += n
    if not mask.any():
        return None
    mask = mask.to(state.pos.device)
    pair_mask = mask[state.pair_index[0]] & mask[state.pair_index[1]]
    return KnownPart(mask, state.pos, None, state.node_classes, pair_mask, state.edge_classes)
