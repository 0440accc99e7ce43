"""The interface every diffusion process implements, and the state it works on.

A process defines the forward noising of a batch of graphs, its training loss
and the per-channel parts of its reverse steps. The sampling loop itself lives
once in :class:`molgen.diffusion.samplers.Sampler`, which calls a process
through four methods, in this order:

    prior        draw the state at t = 1
    predictor    bind the network to the batch: (state, t) -> Prediction
    (the sampler's step moves the Gaussian channels: positions, continuous features)
    discrete_step  move the process's other channels (categorical classes) from t to s

Training calls :meth:`DiffusionProcess.state_from_batch` on a data batch and
:meth:`DiffusionProcess.loss` on the result, and :meth:`DiffusionProcess.after_optimizer_step`
after each update (a distillation's target network follows the student there,
:mod:`molgen.diffusion.distillation`). Nothing above ``molgen.diffusion`` needs to
know which process it holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import torch
from torch import Generator, Tensor

from molgen.graph_batch import graph_sizes

if TYPE_CHECKING:
    from molgen.diffusion.conditioning import GraphCondition
    from molgen.diffusion.gaussian import GaussianDiffusion
    from molgen.diffusion.inpainting import KnownPart

__all__ = [
    "BoundDenoiser",
    "ClassConstraint",
    "DiffusionProcess",
    "GraphState",
    "Prediction",
    "bind_inputs",
    "per_item",
]


@dataclass
class GraphState:
    """A batch of graphs at one diffusion time, clean data, or a finished sample.

    Attributes:
        pos: ``[N, 3]`` coordinates, zero centre of mass per graph (model units).
        h: ``[N, F]`` continuous invariant node features, diffused or clean
            conditioning (``F`` may be 0).
        batch: ``[N]`` long, sorted graph index of each node.
        num_graphs: ``B``.
        node_classes: ``[N, C]`` long, one column per categorical node channel, or None.
        pair_index: ``[2, P]`` long, every unordered node pair ``i < j`` of each graph, or None.
        edge_classes: ``[P]`` long, class of each pair (0: no edge), or None.
        condition: target properties of each graph (:mod:`molgen.diffusion.conditioning`), which the
            process gives the denoiser; None: unconditional.
        known: a fixed part the denoiser sees (:class:`~molgen.diffusion.inpainting.KnownPart`), for a
            denoiser trained with fixed parts (``fixed_part_input``); None otherwise.
        node_labels: ``[N]`` long, a label of each node the process gives the denoiser, never noised (-1: not
            given), for a model conditioned on them whose ``h`` is diffused (backbones in internal coordinates:
            secondary structure); None otherwise.
    """

    pos: Tensor
    h: Tensor
    batch: Tensor
    num_graphs: int
    node_classes: Tensor | None = None
    pair_index: Tensor | None = None
    edge_classes: Tensor | None = None
    condition: GraphCondition | None = None
    known: KnownPart | None = None
    node_labels: Tensor | None = None

    @property
    def num_nodes(self) -> Tensor:
        """Nodes per graph, ``[B]`` long."""
        return graph_sizes(self.batch, self.num_graphs)

    def replace(self, **changes: Any) -> GraphState:
        """A copy with the given fields replaced."""
        return dataclasses.replace(self, **changes)


class Prediction(NamedTuple):
    """What one network call predicts for a state.

    ``eps_pos`` [N, 3] position noise projected to zero CoM; ``eps_h`` [N, F] feature
    noise (None when features are not diffused); ``node_logits`` [N, sum K_c] and
    ``edge_logits`` [P, K_e] clean-class logits of categorical processes (else None).
    """

    eps_pos: Tensor
    eps_h: Tensor | None = None
    node_logits: Tensor | None = None
    edge_logits: Tensor | None = None


Predictor = Callable[[GraphState, Tensor], Prediction]
"""A network bound to one batch: ``(state, t) -> Prediction`` for a scalar time ``t`` or per-graph times ``[B]``."""


def per_item(t: Tensor, graph: Tensor) -> Tensor:
    """Times as they apply to items (nodes, pairs) of graphs ``graph`` ``[M]``: a scalar ``t`` unchanged,
    per-graph times ``[B]`` gathered to ``[M]``."""
    return t if t.dim() == 0 else t[graph]


class BoundDenoiser:
    """A denoiser with keyword inputs bound for one batch (a condition, a fixed part); otherwise called like it."""

    def __init__(self, denoiser: Any, inputs: dict[str, Any]) -> None:
        self.denoiser, self.inputs = denoiser, inputs

    @property
    def self_conditioning(self) -> bool:
        return bool(getattr(self.denoiser, "self_conditioning", False))

    def __call__(self, *args: Tensor, **keywords: Any) -> Any:
        return self.denoiser(*args, **self.inputs, **keywords)


def bind_inputs(denoiser: Any, **inputs: Any) -> Any:
    """``denoiser`` with the given keyword ``inputs`` bound (:class:`BoundDenoiser`), those that are None left
    out; the denoiser itself when all are None."""
    given = {name: value for name, value in inputs.items() if value is not None}
    return BoundDenoiser(denoiser, given) if given else denoiser


class ClassConstraint(Protocol):
    """A domain's rule on the final pair classes of a sample (molecules: no atom above its largest
    valence, :mod:`molgen.molecules.valence_decoding`), applied by the sampler's ``constrained_decoding``.

    Shapes: node_classes [N, C] and edge_classes [P] (long, as drawn), pair_index [2, P],
    edge_log_probs [P, K] (the predicted clean classes' log-probabilities), frozen [P] bool (pairs to
    keep as drawn: a fixed part's) or None -> edge classes [P] long.
    """

    def __call__(
        self,
        node_classes: Tensor,
        pair_index: Tensor,
        edge_classes: Tensor,
        edge_log_probs: Tensor,
        frozen: Tensor | None = None,
    ) -> Tensor: ...


class DiffusionProcess(torch.nn.Module):
    """Base class of the diffusion processes (see the module docstring).

    Subclasses set ``schedule`` (the positions' noise schedule) and :attr:`gaussian` (the
    Gaussian part samplers step; a purely Gaussian process is its own), and implement the
    methods that raise ``NotImplementedError`` here.
    """

    #: Whether the process generates categorical channels (``class_temperature`` applies).
    has_classes: bool = False
    #: Weight of each named loss term (``positions`` and each categorical channel); a missing name weighs 1.
    loss_weights: Mapping[str, float] = MappingProxyType({})
    #: The Gaussian part samplers step (positions, continuous features).
    gaussian: GaussianDiffusion

    @property
    def conditions_on_features(self) -> bool:
        """Whether the node features are clean conditioning the network never predicts
        (its feature readout then gets no gradient)."""
        return False

    def network_dims(self, num_features: int) -> dict[str, int]:
        """Input and output sizes of the network this process trains, as denoiser constructor
        arguments (``in_node_dim``, and ``num_edge_classes`` for pair channels), given the
        data's continuous feature width ``num_features``."""
        return {"in_node_dim": num_features}

    def wrap_network(self, network: torch.nn.Module) -> torch.nn.Module:
        """The denoiser the process calls, around the trained ``network`` (e.g. a conversion of
        its output); the network itself by default."""
        return network

    def guide_with_energy(self, denoiser: torch.nn.Module, guidance: Any) -> torch.nn.Module:
        """``denoiser`` steered by an :class:`~molgen.diffusion.energy_guidance.EnergyGuidance` (its energy
        reads clean positions and node-class probabilities, so it needs categorical node channels)."""
        raise ValueError("energy guidance needs a process with categorical node classes (a bond model's)")

    def state_from_batch(self, data: Any) -> GraphState:
        """The clean state of a torch_geometric ``Batch`` of training data."""
        raise NotImplementedError

    def sample_time(self, num_graphs: int, device: torch.device, generator: torch.Generator | None = None) -> Tensor:
        """Uniform training times, ``[B]``."""
        return torch.rand(num_graphs, generator=generator, device=device)

    def loss(
        self, denoiser: torch.nn.Module, clean: GraphState, t: Tensor | None = None, generator: Generator | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Training loss per graph ``[B]`` at times ``t`` [B] (uniform draws when None), and its
        named unweighted components ``{name: [B]}`` (empty for a single-term loss)."""
        raise NotImplementedError

    def noise(self, clean: GraphState, t: Tensor, generator: Generator | None = None) -> GraphState:
        """A draw of every diffused channel of ``clean`` from ``q(z_t | x)`` at per-graph times ``t`` ``[B]``
        (positions first); clean conditioning features are kept."""
        raise NotImplementedError

    def class_loss(self, state: GraphState, out: Prediction, target: Prediction | None = None) -> dict[str, Tensor]:
        """Loss per graph ``{channel: [B]}`` of the clean classes ``out`` predicts for ``state``: the cross-entropy
        against the classes of ``state`` (training on data) when ``target`` is None, else the KL divergence from
        the classes ``target`` predicts (a teacher's, in distillation). Empty without categorical channels."""
        return {}

    def after_optimizer_step(self, denoiser: torch.nn.Module) -> None:
        """Called by training after each optimizer step with the network being trained; a process that tracks
        it (a distillation's target network) updates itself here. Nothing by default."""

    def prior(self, start: GraphState, generator: Generator | None = None) -> GraphState:
        """The state at ``t = 1``, drawn after the positions.

        ``start`` holds the batch layout, the prior positions (zero-CoM standard normal,
        drawn by the sampler) and the features: the clean condition of a process that
        conditions on them, else zeros of the diffused features' width.
        """
        raise NotImplementedError

    def predictor(self, denoiser: torch.nn.Module, state: GraphState) -> Predictor:
        """``denoiser`` bound to the batch of ``state`` (its graphs and pairs)."""
        raise NotImplementedError

    def inpaint(self, state: GraphState, known: KnownPart, t: Tensor | None, generator: Generator | None) -> GraphState:
        """``state`` with its known part (:class:`~molgen.diffusion.inpainting.KnownPart`) replaced by
        the true values noised to time ``t`` (None: exact). Positions here; processes with more
        channels replace those too."""
        if t is None:
            return state.replace(pos=known.positions(state))
        schedule = self.gaussian.schedule
        return state.replace(pos=known.positions(state, schedule.alpha(t), schedule.sigma(t), generator))

    def renoise(self, state: GraphState, s: Tensor, t: Tensor, generator: Generator | None) -> GraphState:
        """A draw from the forward transition ``q(z_t | z_s)``, ``s < t``, scalars or per-graph ``[B]``
        (RePaint's resampling jump; distillation's pairs of adjacent times): positions here (zero-CoM
        noise); processes with more channels renoise those too."""
        s_node, t_node = per_item(s, state.batch)[..., None], per_item(t, state.batch)[..., None]
        return state.replace(pos=self.gaussian.renoise_values(state.pos, s_node, t_node, generator, state.batch))

    def renoise_classes(self, state: GraphState, s: Tensor, t: Tensor, generator: Generator | None) -> GraphState:
        """The categorical channels alone drawn from ``q(x_t | x_s)`` (:meth:`renoise` without the positions;
        the sampler's refinement of the classes); a process without them has none."""
        return state

    def discrete_step(
        self, state: GraphState, out: Prediction, t: Tensor, s: Tensor, generator: Generator | None, temperature: float
    ) -> GraphState:
        """Move the non-Gaussian channels from time ``t`` to ``s < t`` (scalars, or per graph ``[B]``); a Gaussian
        process has none."""
        return state

    def transition_loss(
        self, state: GraphState, out: Prediction, t: Tensor, s: Tensor, target: GraphState, temperature: float
    ) -> dict[str, Tensor]:
        """Per categorical channel, the mean over each graph's items of ``-log p(target's class at s | state at t)``
        under the reverse step that :meth:`discrete_step` draws from with ``out`` (``[B]`` each; ``t``, ``s``
        scalars or per graph ``[B]``): how well one step reproduces classes another sampler reached at ``s``
        (progressive distillation). A process without categorical channels has none."""
        return {}

    def constrain_classes(
        self,
        state: GraphState,
        out: Prediction,
        constraint: ClassConstraint,
        temperature: float,
        frozen: Tensor | None = None,
    ) -> GraphState:
        """The final state with its pair classes repaired by ``constraint`` (constrained decoding); a
        process without pair classes has nothing to repair."""
        return state
