"""Joint diffusion of continuous coordinates and discrete node and pair (edge) classes.

The state of a batch of graphs (torch_geometric layout, no padding) is

    pos           [N, 3]  coordinates, zero centre of mass per graph (Gaussian diffusion)
    node_classes  [N, C]  long, one column per categorical node channel (e.g. atom type, charge)
    pair_index    [2, P]  every unordered node pair (i < j) of each graph, see :func:`pair_index`
    edge_classes  [P]     long, class of each pair (e.g. bond order; class 0 = no edge)

All channels share one time ``t`` in [0, 1]. Positions follow the existing
:class:`~molgen.diffusion.gaussian.GaussianDiffusion` (features not
diffused: it only sees positions); every categorical channel is a
:class:`~molgen.diffusion.categorical.CategoricalDiffusion` with its own
marginals and schedule exponent. Pairs are unordered, so an edge state is
symmetric by construction (a dense matrix is the upper triangle mirrored).

The denoiser (see :class:`JointDenoiser`) sees the noisy positions, the
noisy classes as one-hots and ``t``, and predicts the position noise and
logits of the clean classes. A self-conditioned one also sees its previous
clean estimate, positions and class probabilities
(:class:`~molgen.diffusion.self_conditioning.JointEstimate`), in training and
sampling alike (:mod:`molgen.diffusion.self_conditioning`). The training loss of a graph is the weighted sum

    w_pos * ||eps_pred - eps||^2 / (3 (n - 1))  +  sum_c w_c * mean cross-entropy of channel c

(node channels averaged over the graph's nodes, the edge channel over its
pairs). Sampling runs the one loop of :class:`~molgen.diffusion.samplers.Sampler`
(any registered sampler): coordinates move with the sampler's ``step``, and
every categorical channel takes an ancestral step
(:meth:`JointDiffusion.discrete_step`) from the posterior marginalised over
the predicted clean classes.

Nothing here knows about chemistry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Generator, Tensor

from molgen.diffusion.categorical import CategoricalDiffusion
from molgen.diffusion.conditioning import condition_from_batch
from molgen.diffusion.gaussian import GaussianDiffusion, position_dof
from molgen.diffusion.inpainting import FixedInput, KnownPart
from molgen.diffusion.prediction import JointVelocityDenoiser
from molgen.diffusion.process import (
    ClassConstraint,
    DiffusionProcess,
    GraphState,
    Prediction,
    Predictor,
    bind_inputs,
    per_item,
)
from molgen.diffusion.schedules import NoiseSchedule
from molgen.diffusion.self_conditioning import (
    EstimateFeedback,
    JointEstimate,
    class_probabilities,
    clean_estimate,
    is_self_conditioned,
    training_estimate,
)
from molgen.graph_batch import graph_sizes, graph_sum, pair_index, remove_mean

__all__ = [
    "POSITIONS",
    "JointDenoiser",
    "JointDiffusion",
    "build_joint_diffusion",
    "edge_classes_from_list",
    "pair_lookup",
]

POSITIONS = "positions"
"""Name of the coordinate term in loss weights and loss components."""


class JointDenoiser(Protocol):
    """What the joint diffusion calls.

    Shapes: pos [N, 3], node_features [N, sum K_c] (one-hots of the node
    channels, concatenated in channel order), edge_features [P, K_e],
    pair_index [2, P], t [B], batch [N] ->
    ``(eps_pos [N, 3], node_logits [N, sum K_c], edge_logits [P, K_e])``.
    A self-conditioned denoiser also takes ``self_condition``, a
    :class:`~molgen.diffusion.self_conditioning.JointEstimate` or None.
    """

    def __call__(
        self, pos: Tensor, node_features: Tensor, edge_features: Tensor, pair_index: Tensor, t: Tensor, batch: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]: ...


# --------------------------------------------------------------------------- #
# Unordered pairs of a batch
# --------------------------------------------------------------------------- #


def pair_lookup(pairs: Tensor, query: Tensor, num_nodes: int) -> Tensor:
    """Column of ``pairs`` [2, P] holding each unordered pair of ``query`` [2, Q] (either orientation): [Q] long.

    Raises:
        ValueError: a query pair is not among ``pairs`` (e.g. nodes of different graphs, or a self-pair).
    """
    keys = pairs.min(dim=0).values * num_nodes + pairs.max(dim=0).values
    order = torch.argsort(keys)
    sorted_keys = keys[order]
    wanted = query.min(dim=0).values * num_nodes + query.max(dim=0).values
    pos = torch.searchsorted(sorted_keys, wanted).clamp(max=max(keys.numel() - 1, 0))
    if keys.numel() == 0 and wanted.numel() > 0 or (wanted.numel() and (sorted_keys[pos] != wanted).any()):
        raise ValueError("some edges join nodes that are not a pair of the same graph (or a node to itself)")
    return order[pos]


def edge_classes_from_list(
    pairs: Tensor, edge_index: Tensor, edge_class: Tensor, num_nodes: int, num_classes: int | None = None
) -> Tensor:
    """Class of every pair: ``edge_class`` [Q] for the listed edges ``edge_index`` [2, Q], 0 elsewhere; [P] long."""
    classes = torch.zeros(pairs.shape[1], dtype=torch.long, device=pairs.device)
    if edge_index.numel():
        if num_classes is not None and ((edge_class < 0) | (edge_class >= num_classes)).any():
            raise ValueError(f"edge classes must be in 0..{num_classes - 1}, got {edge_class.unique().tolist()}")
        classes[pair_lookup(pairs, edge_index, num_nodes)] = edge_class.long()
    return classes


# --------------------------------------------------------------------------- #
# The joint process
# --------------------------------------------------------------------------- #


class JointDiffusion(DiffusionProcess):
    """Gaussian positions plus categorical node and edge channels under one time.

    States (:class:`~molgen.diffusion.process.GraphState`) carry no continuous
    features (``h`` is ``[N, 0]``); ``node_classes``, ``pair_index`` and
    ``edge_classes`` are set.

    Args:
        schedule: the positions' noise schedule.
        node_channels: ``{name: CategoricalDiffusion}`` in the column order of ``node_classes``.
        edge_channel: ``(name, CategoricalDiffusion)`` of the pair classes.
        loss_weights: weight of ``"positions"`` and of each channel name
            (missing names weigh 1).
        prediction: what the network's position output is, ``"eps"`` or ``"v"``
            (:mod:`molgen.diffusion.prediction`; with ``"v"`` the network is wrapped in
            :class:`~molgen.diffusion.prediction.JointVelocityDenoiser` and the positions' loss is the v-MSE).
    """

    def __init__(
        self,
        schedule: NoiseSchedule,
        node_channels: Mapping[str, CategoricalDiffusion],
        edge_channel: tuple[str, CategoricalDiffusion],
        loss_weights: Mapping[str, float] | None = None,
        prediction: str = "eps",
    ) -> None:
        super().__init__()
        if not node_channels:
            raise ValueError("a joint diffusion needs at least one categorical node channel")
        self.gaussian = GaussianDiffusion(schedule, diffuse_features=False, prediction=prediction)
        self.schedule = schedule
        self.node_channels = dict(node_channels)
        self.edge_name, self.edge_channel = edge_channel
        names = [POSITIONS, *self.node_channels, self.edge_name]
        if len(set(names)) != len(names):
            raise ValueError(f"channel names must be distinct and not {POSITIONS!r}, got {names[1:]}")
        weights = dict(loss_weights or {})
        unknown = sorted(set(weights) - set(names))
        if unknown:
            raise ValueError(f"loss weights for unknown channels {unknown}; channels are {names}")
        self.loss_weights = {name: float(weights.get(name, 1.0)) for name in names}

    @property
    def node_sizes(self) -> list[int]:
        """Number of classes of each node channel, in column order."""
        return [c.num_classes for c in self.node_channels.values()]

    @property
    def num_node_features(self) -> int:
        return sum(self.node_sizes)

    @property
    def num_edge_classes(self) -> int:
        return self.edge_channel.num_classes

    def node_features(self, node_classes: Tensor, dtype: torch.dtype) -> Tensor:
        """Concatenated one-hots of the node channels: [N, C] long -> [N, sum K_c]."""
        return torch.cat(
            [F.one_hot(node_classes[:, c], k).to(dtype) for c, k in enumerate(self.node_sizes)], dim=-1
        ).reshape(node_classes.shape[0], self.num_node_features)

    def edge_features(self, edge_classes: Tensor, dtype: torch.dtype) -> Tensor:
        return F.one_hot(edge_classes, self.num_edge_classes).to(dtype)

    def split_node_logits(self, logits: Tensor) -> list[Tensor]:
        return list(logits.split(self.node_sizes, dim=-1))

    def _check_classes(self, node_classes: Tensor, edge_classes: Tensor) -> None:
        if node_classes.dim() != 2 or node_classes.shape[1] != len(self.node_channels):
            raise ValueError(
                f"node_classes must be [N, {len(self.node_channels)}] (channels {list(self.node_channels)}), "
                f"got {tuple(node_classes.shape)}"
            )
        for c, (name, k) in enumerate(zip(self.node_channels, self.node_sizes)):
            if node_classes.numel() and (node_classes[:, c].min() < 0 or node_classes[:, c].max() >= k):
                raise ValueError(f"node channel {name!r} has classes outside 0..{k - 1}")
        if edge_classes.numel() and (edge_classes.min() < 0 or edge_classes.max() >= self.num_edge_classes):
            raise ValueError(f"edge channel {self.edge_name!r} has classes outside 0..{self.num_edge_classes - 1}")

    # ----- forward process -------------------------------------------------
    def add_noise(
        self,
        pos: Tensor,
        node_classes: Tensor,
        pairs: Tensor,
        edge_classes: Tensor,
        t: Tensor,
        batch: Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Sample the whole state at time ``t`` [B]: ``(pos_t, eps_pos, node_classes_t, edge_classes_t)``.

        Draws in this order: position noise, each node channel, the edge channel.
        """
        empty = pos.new_zeros(pos.shape[0], 0)
        pos_t, _, eps_pos, _ = self.gaussian.add_noise(pos, empty, t, batch, generator)
        t_node = t[batch]
        noisy_nodes = [
            channel.add_noise(node_classes[:, c], t_node, generator)
            for c, channel in enumerate(self.node_channels.values())
        ]
        node_t = torch.stack(noisy_nodes, dim=1) if noisy_nodes else node_classes
        edge_t = self.edge_channel.add_noise(edge_classes, t_node[pairs[0]], generator)
        return pos_t, eps_pos, node_t, edge_t

    has_classes = True

    @property
    def prediction(self) -> str:
        """What the network's position output is, ``"eps"`` or ``"v"`` (its Gaussian part's)."""
        return self.gaussian.prediction

    def wrap_network(self, network: torch.nn.Module) -> torch.nn.Module:
        """A network whose position output is ``v`` is wrapped to return ``eps`` (:class:`JointVelocityDenoiser`)."""
        return JointVelocityDenoiser(network, self.schedule) if self.prediction == "v" else network

    def guide_with_energy(self, denoiser: torch.nn.Module, guidance: Any) -> torch.nn.Module:
        return guidance.wrap(denoiser, self.schedule, self.node_sizes)

    def network_dims(self, num_features: int) -> dict[str, int]:
        """The node inputs are the one-hots of the node channels (``num_features`` is not used)."""
        return {"in_node_dim": self.num_node_features, "num_edge_classes": self.num_edge_classes}

    def state_from_batch(self, data: Any) -> GraphState:
        """Clean state of a torch_geometric ``Batch`` with ``pos`` [N, 3], ``node_classes`` [N, C],
        and the listed pairs ``pair_class_index`` [2, Q] with their classes ``pair_class`` [Q]
        (unlisted pairs are class 0), and its ``y`` [B, P] (target properties) when it has them."""
        pairs = pair_index(data.batch)
        edge_classes = edge_classes_from_list(
            pairs, data.pair_class_index, data.pair_class, data.num_nodes, self.num_edge_classes
        )
        empty = data.pos.new_zeros(data.pos.shape[0], 0)
        return GraphState(
            data.pos,
            empty,
            data.batch,
            data.num_graphs,
            data.node_classes,
            pairs,
            edge_classes,
            condition_from_batch(data),
        )

    def noise(self, clean: GraphState, t: Tensor, generator: Generator | None = None) -> GraphState:
        """Positions, each node channel, then the pair channel (:meth:`add_noise`)."""
        pos_t, _, node_t, edge_t = self.add_noise(
            clean.pos, clean.node_classes, clean.pair_index, clean.edge_classes, t, clean.batch, generator
        )
        return clean.replace(pos=pos_t, node_classes=node_t, edge_classes=edge_t)

    # ----- training objective ---------------------------------------------
    def loss(
        self, denoiser: JointDenoiser, clean: GraphState, t: Tensor | None = None, generator: Generator | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Weighted joint loss per graph, [B], and its unweighted components ``{name: [B]}``.

        ``positions``: epsilon squared error per zero-CoM degree of freedom
        (the prediction is projected first, as in
        :meth:`GaussianDiffusion.loss`); each channel: the mean
        cross-entropy of its clean-class prediction over the graph's nodes
        (or pairs; a graph without pairs contributes 0).

        A self-conditioned denoiser gets its own detached estimate for half of
        the batches, decided by one draw from ``generator`` after the noise
        (:func:`~molgen.diffusion.self_conditioning.training_estimate`).
        """
        pos, batch, num_graphs = clean.pos, clean.batch, clean.num_graphs
        node_classes, pairs, edge_classes = clean.node_classes, clean.pair_index, clean.edge_classes
        self._check_classes(node_classes, edge_classes)
        if t is None:
            t = self.sample_time(num_graphs, pos.device, generator).to(pos.dtype)
        pos_t, eps_pos, node_t, edge_t = self.add_noise(pos, node_classes, pairs, edge_classes, t, batch, generator)
        inputs = (pos_t, self.node_features(node_t, pos.dtype), self.edge_features(edge_t, pos.dtype), pairs, t, batch)
        estimate = {}
        denoiser = bind_inputs(denoiser, condition=clean.condition, fixed=self.fixed_input(clean))
        if is_self_conditioned(denoiser):
            estimate["self_condition"] = training_estimate(denoiser, inputs, self.self_condition_estimate, generator)
        eps_pred, node_logits, edge_logits = denoiser(*inputs, **estimate)
        eps_pred = remove_mean(eps_pred, batch, num_graphs)

        num_nodes = graph_sizes(batch, num_graphs)
        sq_err = graph_sum(((eps_pred - eps_pos) ** 2).sum(dim=1), batch, num_graphs)
        parts = {POSITIONS: sq_err / position_dof(num_nodes).clamp(min=1).to(pos.dtype)}
        if self.prediction == "v":  # eps - eps_hat = alpha_t (v - v_hat): the v-MSE
            parts[POSITIONS] = parts[POSITIONS] / self.schedule.alpha_sq(t)
        parts.update(self.class_loss(clean, Prediction(eps_pred, None, node_logits, edge_logits)))
        total = sum(self.loss_weights[name] * value for name, value in parts.items())
        return total, parts

    def class_loss(self, state: GraphState, out: Prediction, target: Prediction | None = None) -> dict[str, Tensor]:
        """Per channel, in column order then the pair channel, a per-item loss of ``out``'s clean-class logits
        averaged over each graph's nodes (or pairs; a graph without pairs contributes 0), ``[B]``: the
        cross-entropy against ``state``'s classes, or the divergence from ``target``'s predicted classes
        (:meth:`CategoricalDiffusion.divergence`)."""
        batch, num_graphs, dtype = state.batch, state.num_graphs, state.pos.dtype
        if target is None:
            item_loss, node_targets, edge_target = (
                CategoricalDiffusion.loss,
                state.node_classes.unbind(1),
                state.edge_classes,
            )
        else:
            item_loss, node_targets, edge_target = (
                CategoricalDiffusion.divergence,
                self.split_node_logits(target.node_logits),
                target.edge_logits,
            )
        parts = {}
        node_count = graph_sizes(batch, num_graphs).clamp(min=1).to(dtype)
        for name, logits, classes in zip(self.node_channels, self.split_node_logits(out.node_logits), node_targets):
            parts[name] = graph_sum(item_loss(logits, classes).to(dtype), batch, num_graphs) / node_count
        pair_graph = batch[state.pair_index[0]]
        pair_count = graph_sizes(pair_graph, num_graphs).clamp(min=1).to(dtype)
        edge_loss = graph_sum(item_loss(out.edge_logits, edge_target).to(dtype), pair_graph, num_graphs)
        parts[self.edge_name] = edge_loss / pair_count
        return parts

    # ----- sampling hooks (molgen.diffusion.samplers.Sampler) ---------------
    def prior(self, start: GraphState, generator: Generator | None = None) -> GraphState:
        """Draws, after the positions: each node channel's prior classes, in column order, then the
        pair channel's. The process has no continuous features (its node features are the one-hots
        of the classes), so ``start``'s are dropped."""
        n_total, device, dtype = start.pos.shape[0], start.pos.device, start.pos.dtype
        pairs = pair_index(start.batch)
        nodes = [c.sample_prior(n_total, generator, device, dtype) for c in self.node_channels.values()]
        edge_classes = self.edge_channel.sample_prior(pairs.shape[1], generator, device, dtype)
        return start.replace(
            h=start.pos.new_zeros(n_total, 0),
            node_classes=torch.stack(nodes, dim=1),
            pair_index=pairs,
            edge_classes=edge_classes,
        )

    def inpaint(self, state: GraphState, known: KnownPart, t: Tensor | None, generator: Generator | None) -> GraphState:
        """Positions, then the known nodes' classes (each channel, in column order) and the classes of
        the pairs among them, each drawn from ``q(x_t | x_0)`` (exact when ``t`` is None)."""
        state = super().inpaint(state, known, t, generator)
        node_classes, edge_classes = known.node_classes, known.edge_classes
        if t is not None:
            t_node = t.expand(node_classes.shape[0])
            node_classes = torch.stack(
                [
                    channel.add_noise(node_classes[:, c], t_node, generator)
                    for c, channel in enumerate(self.node_channels.values())
                ],
                dim=1,
            )
            edge_classes = self.edge_channel.add_noise(edge_classes, t.expand(edge_classes.shape[0]), generator)
        return state.replace(
            node_classes=torch.where(known.mask[:, None], node_classes, state.node_classes),
            edge_classes=torch.where(known.pair_mask, edge_classes, state.edge_classes),
        )

    def renoise(self, state: GraphState, s: Tensor, t: Tensor, generator: Generator | None) -> GraphState:
        """Positions, then each node channel and the pair channel (:meth:`CategoricalDiffusion.renoise`)."""
        return self.renoise_classes(super().renoise(state, s, t, generator), s, t, generator)

    def renoise_classes(self, state: GraphState, s: Tensor, t: Tensor, generator: Generator | None) -> GraphState:
        """Each node channel, then the pair channel, drawn from ``q(x_t | x_s)``."""
        s_node, t_node = per_item(s, state.batch), per_item(t, state.batch)
        node_classes = torch.stack(
            [
                channel.renoise(state.node_classes[:, c], s_node, t_node, generator)
                for c, channel in enumerate(self.node_channels.values())
            ],
            dim=1,
        )
        pair_graph = state.batch[state.pair_index[0]]
        edge_classes = self.edge_channel.renoise(
            state.edge_classes, per_item(s, pair_graph), per_item(t, pair_graph), generator
        )
        return state.replace(node_classes=node_classes, edge_classes=edge_classes)

    def fixed_input(self, state: GraphState) -> FixedInput | None:
        """What a denoiser trained with fixed parts sees of ``state.known``
        (:class:`~molgen.diffusion.inpainting.FixedInput`), or None without one."""
        known = state.known
        if known is None:
            return None
        dtype, pairs = state.pos.dtype, state.pair_index
        node_mask, pair_mask = known.mask[:, None].to(dtype), known.pair_mask[:, None].to(dtype)
        d2 = (known.pos[pairs[0]] - known.pos[pairs[1]]).square().sum(dim=-1, keepdim=True).to(dtype)
        return FixedInput(
            known.mask,
            self.node_features(known.node_classes, dtype) * node_mask,
            known.pair_mask,
            self.edge_features(known.edge_classes, dtype) * pair_mask,
            d2 * pair_mask,
        )

    def self_condition_estimate(self, inputs: tuple, output: tuple[Tensor, Tensor, Tensor]) -> JointEstimate:
        """The estimate a self-conditioned denoiser gets next (:mod:`molgen.diffusion.self_conditioning`),
        from a call on ``inputs = (pos_t, node_features, edge_features, pairs, t [B], batch)`` that returned
        ``output = (eps_pos, node_logits, edge_logits)``: the zero-CoM clean positions and the softmax of
        each channel's logits (untempered, as in training), detached."""
        pos_t, _, _, _, t, batch = inputs
        eps_pos, node_logits, edge_logits = output
        return JointEstimate(
            clean_estimate(self.gaussian, pos_t, eps_pos, t, batch, t.shape[0]),
            class_probabilities(node_logits, self.node_sizes),
            class_probabilities(edge_logits, [self.num_edge_classes]),
        )

    def predictor(self, denoiser: JointDenoiser, state: GraphState) -> Predictor:
        """Calls ``denoiser`` with the one-hots of a state's classes and the batch's pairs, feeding a
        self-conditioned one its previous estimate (:class:`~molgen.diffusion.self_conditioning.EstimateFeedback`)."""
        inputs = {"condition": state.condition, "fixed": self.fixed_input(state)}
        denoise = EstimateFeedback(bind_inputs(denoiser, **inputs), self.self_condition_estimate)

        def predict(current: GraphState, t: Tensor) -> Prediction:
            dtype = current.pos.dtype
            eps, node_logits, edge_logits = denoise(
                current.pos,
                self.node_features(current.node_classes, dtype),
                self.edge_features(current.edge_classes, dtype),
                current.pair_index,
                t.expand(current.num_graphs),
                current.batch,
            )
            return Prediction(remove_mean(eps, current.batch, current.num_graphs), None, node_logits, edge_logits)

        return predict

    def discrete_step(
        self, state: GraphState, out: Prediction, t: Tensor, s: Tensor, generator: Generator | None, temperature: float
    ) -> GraphState:
        """Each categorical channel draws ``x_s`` from ``p(x_s | x_t)``
        (:meth:`CategoricalDiffusion.reverse_step`) with the predicted clean-class
        probabilities, sharpened by ``temperature`` below 1; node channels first, in
        column order, then the pair channel. At ``s = 0`` the posterior is (up to the
        schedule's precision) the predicted clean distribution itself."""
        node_logits = self.split_node_logits(out.node_logits)
        t_node, s_node = per_item(t, state.batch), per_item(s, state.batch)
        node_classes = torch.stack(
            [
                channel.reverse_step(
                    state.node_classes[:, c], logits, t_node, s_node, generator, temperature=temperature
                )
                for c, (channel, logits) in enumerate(zip(self.node_channels.values(), node_logits))
            ],
            dim=1,
        )
        pair_graph = state.batch[state.pair_index[0]]
        t_pair, s_pair = per_item(t, pair_graph), per_item(s, pair_graph)
        edge_classes = self.edge_channel.reverse_step(
            state.edge_classes, out.edge_logits, t_pair, s_pair, generator, temperature=temperature
        )
        return state.replace(node_classes=node_classes, edge_classes=edge_classes)

    def transition_loss(
        self, state: GraphState, out: Prediction, t: Tensor, s: Tensor, target: GraphState, temperature: float
    ) -> dict[str, Tensor]:
        """Per channel, in column order then the pair channel: the mean over each graph's nodes (pairs) of
        ``-log p(x_s = target's class | x_t)`` under the reverse step :meth:`discrete_step` draws from
        (:meth:`CategoricalDiffusion.step_probs`), ``[B]`` (a graph without pairs contributes 0)."""
        batch, num_graphs, dtype = state.batch, state.num_graphs, state.pos.dtype
        pair_graph = batch[state.pair_index[0]]
        channels = [
            (name, channel, logits, state.node_classes[:, c], target.node_classes[:, c], batch)
            for c, (name, channel, logits) in enumerate(
                zip(self.node_channels, self.node_channels.values(), self.split_node_logits(out.node_logits))
            )
        ]
        channels.append(
            (self.edge_name, self.edge_channel, out.edge_logits, state.edge_classes, target.edge_classes, pair_graph)
        )
        parts = {}
        for name, channel, logits, x_t, x_s, graph in channels:
            probs = channel.step_probs(x_t, logits, per_item(t, graph), per_item(s, graph), temperature)
            nll = -probs.gather(1, x_s[:, None]).squeeze(1).clamp(min=torch.finfo(probs.dtype).tiny).log()
            count = graph_sizes(graph, num_graphs).clamp(min=1).to(dtype)
            parts[name] = graph_sum(nll.to(dtype), graph, num_graphs) / count
        return parts

    def constrain_classes(
        self,
        state: GraphState,
        out: Prediction,
        constraint: ClassConstraint,
        temperature: float,
        frozen: Tensor | None = None,
    ) -> GraphState:
        """``state``'s final pair classes repaired by ``constraint`` given its node classes and the
        log-probabilities of the clean pair classes ``out`` predicted (sharpened by ``temperature``,
        as the draw was); ``frozen`` [P] bool pairs stay as they are."""
        log_probs = torch.log_softmax(out.edge_logits / temperature, dim=-1)
        edge_classes = constraint(state.node_classes, state.pair_index, state.edge_classes, log_probs, frozen)
        return state.replace(edge_classes=edge_classes)


def build_joint_diffusion(
    schedule: NoiseSchedule,
    categorical_schedule: NoiseSchedule,
    node_marginals: Mapping[str, Sequence[float]],
    edge_marginals: tuple[str, Sequence[float]],
    powers: Mapping[str, float] | None = None,
    loss_weights: Mapping[str, float] | None = None,
    prediction: str = "eps",
) -> JointDiffusion:
    """A :class:`JointDiffusion` from marginals per channel name and per-channel schedule exponents."""
    powers = dict(powers or {})
    names = [*node_marginals, edge_marginals[0]]
    unknown = sorted(set(powers) - set(names))
    if unknown:
        raise ValueError(f"schedule powers for unknown channels {unknown}; channels are {names}")
    nodes = {
        name: CategoricalDiffusion(m, categorical_schedule, float(powers.get(name, 1.0)))
        for name, m in node_marginals.items()
    }
    edge_name, edge_m = edge_marginals
    edge = CategoricalDiffusion(edge_m, categorical_schedule, float(powers.get(edge_name, 1.0)))
    return JointDiffusion(schedule, nodes, (edge_name, edge), loss_weights, prediction)
