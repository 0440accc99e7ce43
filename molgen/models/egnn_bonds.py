"""EGNN denoiser of a joint model: coordinates, node classes and pair (bond) classes."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from molgen.diffusion.conditioning import GraphCondition
from molgen.diffusion.inpainting import FixedInput
from molgen.diffusion.self_conditioning import JointEstimate
from molgen.graph_batch import remove_mean
from molgen.models.condition_embedding import ConditionEmbedding, add_condition, layer_conditions
from molgen.nn.egnn import EGNNLayer
from molgen.nn.time_embedding import TimeEmbedding

__all__ = ["EGNNBondDenoiser"]


def _mlp(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, out_dim))


class EGNNBondDenoiser(nn.Module):
    """Predicts ``(eps_pos, node_logits, edge_logits)`` for a :class:`~molgen.diffusion.joint.JointDiffusion`.

    Architecture: the noisy node one-hots (all node channels concatenated)
    and a time embedding are embedded to ``hidden_dim``; the noisy pair
    one-hots and the squared input distance are embedded to ``edge_dim``
    pair features ``e_ij``. ``num_layers`` :class:`~molgen.nn.egnn.EGNNLayer` s
    run over both directions of every listed pair (the fully connected
    graph, as the joint diffusion lists all pairs), each edge carrying
    ``[d0_ij^2, e_ij]`` as invariant attributes. After each layer (if
    ``update_edges``) the pair features are updated with a residual MLP of
    ``[a_i + a_j, a_i * a_j, e_ij, d_ij^2]``, where ``a = Linear(h)`` projects
    the node features to ``edge_dim`` and ``d_ij`` uses the current
    coordinates. Readouts:

    - ``eps_pos = x_final - pos``, mean removed per graph (E(3)-equivariant);
    - node logits ``Linear(h_final)`` (invariant);
    - pair logits ``MLP([h_i + h_j, h_i * h_j, e_ij, d_ij^2, d0_ij^2])``:
      invariant, and symmetric in ``i, j`` (every input is), so a pair has
      one set of logits whichever way round it is listed.

    Args:
        in_node_dim: width of the node one-hots (sum of the node channels' classes).
        num_edge_classes: classes of the pair channel (e.g. none, single, double, triple).
        hidden_dim, num_layers, attention, aggregation, normalization_factor, tanh,
            coords_range, norm_constant, time_embedding, num_time_frequencies:
            as in :class:`~molgen.models.egnn_denoiser.EGNNDenoiser`.
        edge_dim: width of the pair features.
        update_edges: update pair features after every layer.
        self_conditioning: also take the network's previous clean estimate
            (``forward(..., self_condition=JointEstimate)``, see
            :mod:`molgen.diffusion.self_conditioning`), zeros when there is none.
            Its node class probabilities join the node input and, on every pair,
            its pair class probabilities and squared distance in the estimated
            positions join the pair input (so they reach every layer's edge
            attributes through ``e_ij``). Each enters through its own linear
            map, which is the same as widening the input layers; the maps start
            at zero, so the network starts out as one without self-conditioning,
            and such a network's weights load into it (``init_from``) to fine-tune.
        num_conditions: graph-level target properties the network takes
            (``forward(..., condition=GraphCondition)``, see
            :mod:`molgen.diffusion.conditioning`; 0: none), added to the node
            embedding by a :class:`~molgen.models.condition_embedding.ConditionEmbedding`
            (zero at the start, and exactly zero for dropped properties).
        condition_layers: with ``num_conditions``, also add the condition before every layer
            (:meth:`ConditionEmbedding.per_layer`, zero at the start).
        fixed_part_input: also see a fixed part (``forward(..., fixed=FixedInput)``, see
            :mod:`molgen.diffusion.inpainting`): on every node ``[known one-hot, known flag]``
            and on every pair ``[known one-hot, known squared distance, known flag]`` (zeros
            where not known, so invariant and symmetric), each through its own linear map
            without bias into the node and pair embeddings. The maps start at zero, so a
            network trained without it loads into it (``init_from``) and starts out as itself.
    """

    joint = True
    """Marks a denoiser of the joint (coordinates + classes) diffusion."""

    def __init__(
        self,
        in_node_dim: int,
        num_edge_classes: int,
        hidden_dim: int = 256,
        num_layers: int = 9,
        edge_dim: int = 64,
        update_edges: bool = True,
        attention: bool = True,
        aggregation: str = "sum",
        normalization_factor: float = 1.0,
        tanh: bool = True,
        coords_range: float = 15.0,
        norm_constant: float = 1.0,
        time_embedding: str = "scalar",
        num_time_frequencies: int = 8,
        self_conditioning: bool = False,
        num_conditions: int = 0,
        condition_layers: bool = False,
        fixed_part_input: bool = False,
    ) -> None:
        super().__init__()
        if num_edge_classes < 2 or edge_dim < 1:
            raise ValueError(f"need num_edge_classes >= 2 and edge_dim >= 1, got {num_edge_classes}, {edge_dim}")
        self.in_node_dim, self.num_edge_classes = in_node_dim, num_edge_classes
        self.time_embedding = TimeEmbedding(time_embedding, num_time_frequencies)

        self.node_embedding = nn.Linear(in_node_dim + self.time_embedding.dim, hidden_dim)
        self.edge_embedding = nn.Linear(num_edge_classes + 1, edge_dim)
        self.layers = nn.ModuleList(
            EGNNLayer(
                hidden_dim,
                edge_attr_dim=1 + edge_dim,
                attention=attention,
                aggregation=aggregation,
                normalization_factor=normalization_factor,
                norm_constant=norm_constant,
                tanh=tanh,
                coords_range=coords_range,
            )
            for _ in range(num_layers)
        )
        # Pair updates work at the pair width: nodes are projected to edge_dim first (cheap, per node).
        self.edge_node_proj = (
            nn.ModuleList(nn.Linear(hidden_dim, edge_dim) for _ in range(num_layers)) if update_edges else None
        )
        self.edge_updates = (
            nn.ModuleList(_mlp(3 * edge_dim + 1, edge_dim, edge_dim) for _ in range(num_layers))
            if update_edges
            else None
        )
        self.node_readout = nn.Linear(hidden_dim, in_node_dim)
        self.edge_readout = _mlp(2 * hidden_dim + edge_dim + 2, hidden_dim, num_edge_classes)
        # Made last, so that a seed initialises every other weight as without self-conditioning or conditions.
        self.self_conditioning = self_conditioning
        if self_conditioning:
            self.estimate_node_embedding = nn.Linear(in_node_dim, hidden_dim, bias=False)
            self.estimate_pair_embedding = nn.Linear(num_edge_classes + 1, edge_dim, bias=False)
            nn.init.zeros_(self.estimate_node_embedding.weight)
            nn.init.zeros_(self.estimate_pair_embedding.weight)
        self.condition_embedding = (
            ConditionEmbedding(num_conditions, hidden_dim, num_layers if condition_layers else 0)
            if num_conditions
            else None
        )
        self.fixed_part_input = fixed_part_input
        if fixed_part_input:
            self.fixed_node_embedding = nn.Linear(in_node_dim + 1, hidden_dim, bias=False)
            self.fixed_pair_embedding = nn.Linear(num_edge_classes + 2, edge_dim, bias=False)
            nn.init.zeros_(self.fixed_node_embedding.weight)
            nn.init.zeros_(self.fixed_pair_embedding.weight)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    @staticmethod
    def _pair_input(hidden: Tensor, e: Tensor, x: Tensor, pairs: Tensor) -> Tensor:
        """``[h_i + h_j, h_i * h_j, e_ij, d_ij^2]``: symmetric in i and j."""
        h_i, h_j = hidden[pairs[0]], hidden[pairs[1]]
        d2 = (x[pairs[0]] - x[pairs[1]]).square().sum(dim=-1, keepdim=True)
        return torch.cat([h_i + h_j, h_i * h_j, e, d2], dim=-1)

    @staticmethod
    def _estimate_input(estimate: JointEstimate | None, h: Tensor, e: Tensor, pairs: Tensor) -> tuple[Tensor, Tensor]:
        """The estimate's node input ``[N, in_node_dim]`` (class probabilities) and pair input
        ``[P, num_edge_classes + 1]`` (class probabilities, squared distance in the estimated positions):
        invariant, and symmetric in ``i, j``. Zeros without an estimate."""
        if estimate is None:
            return torch.zeros_like(h), e.new_zeros(e.shape[0], e.shape[1] + 1)
        d2 = (estimate.pos[pairs[0]] - estimate.pos[pairs[1]]).square().sum(dim=-1, keepdim=True)
        return estimate.node_probs, torch.cat([estimate.edge_probs, d2], dim=-1)

    @staticmethod
    def _fixed_input(fixed: FixedInput | None, h: Tensor, e: Tensor) -> tuple[Tensor, Tensor]:
        """The fixed part's node input ``[N, in_node_dim + 1]`` and pair input ``[P, num_edge_classes + 2]``
        (see the class docstring); zeros without one."""
        if fixed is None:
            return h.new_zeros(h.shape[0], h.shape[1] + 1), e.new_zeros(e.shape[0], e.shape[1] + 2)
        node_flag, pair_flag = fixed.node_mask[:, None].to(h.dtype), fixed.pair_mask[:, None].to(e.dtype)
        return (
            torch.cat([fixed.node_features.to(h.dtype), node_flag], dim=-1),
            torch.cat([fixed.edge_features.to(e.dtype), fixed.pair_d2.to(e.dtype), pair_flag], dim=-1),
        )

    def forward(
        self,
        pos: Tensor,
        h: Tensor,
        e: Tensor,
        pairs: Tensor,
        t: Tensor,
        batch: Tensor,
        self_condition: JointEstimate | None = None,
        condition: GraphCondition | None = None,
        fixed: FixedInput | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Predict the position noise and clean-class logits.

        Args:
            pos: ``[N, 3]`` noisy coordinates.
            h: ``[N, in_node_dim]`` noisy node one-hots.
            e: ``[P, num_edge_classes]`` noisy pair one-hots.
            pairs: ``[2, P]`` unordered pairs (i < j) of nodes of the same graph
                (all of them: the graph is fully connected).
            t: ``[B]`` diffusion times.
            batch: ``[N]`` sorted graph index of each node.
            self_condition: the previous clean estimate (positions ``[N, 3]`` in the units of ``pos``,
                node class probabilities ``[N, in_node_dim]``, pair class probabilities
                ``[P, num_edge_classes]``), or None (none yet); only for a network built with
                ``self_conditioning``.
            condition: target properties ``[B, P]`` (:mod:`molgen.diffusion.conditioning`), or None
                (unconditional); only for a network built with ``num_conditions``.
            fixed: the known part (:class:`~molgen.diffusion.inpainting.FixedInput`), or None (none);
                only for a network built with ``fixed_part_input``.

        Returns:
            ``(eps_pos [N, 3] zero mean per graph, node_logits [N, in_node_dim],
            edge_logits [P, num_edge_classes])``.
        """
        if self_condition is not None and not self.self_conditioning:
            raise ValueError("this denoiser was built without self_conditioning: it takes no self_condition")
        if fixed is not None and not self.fixed_part_input:
            raise ValueError("this denoiser was built without fixed_part_input: it takes no fixed part")
        num_graphs = t.shape[0]
        # Both directions of every pair (j -> i and i -> j): the fully connected graph when `pairs` lists all pairs.
        edge_index = torch.cat([pairs, pairs.flip(0)], dim=1)
        pair_of_edge = torch.arange(pairs.shape[1], device=pairs.device).repeat(2)
        d0 = (pos[pairs[0]] - pos[pairs[1]]).square().sum(dim=-1, keepdim=True)
        e_hidden = self.edge_embedding(torch.cat([e, d0], dim=-1))

        x = pos
        hidden = self.node_embedding(torch.cat([h, self.time_embedding(t.to(h.dtype)[batch])], dim=-1))
        hidden = add_condition(self.condition_embedding, hidden, condition, batch, num_graphs)
        if self.self_conditioning:
            # Without an estimate the maps still run on zeros, so plain DDP sees their weights used at every step.
            node_estimate, pair_estimate = self._estimate_input(self_condition, h, e, pairs)
            hidden = hidden + self.estimate_node_embedding(node_estimate)
            e_hidden = e_hidden + self.estimate_pair_embedding(pair_estimate)
        if self.fixed_part_input:  # zeros without a fixed part, so the maps run at every step (plain DDP)
            node_fixed, pair_fixed = self._fixed_input(fixed, h, e)
            hidden = hidden + self.fixed_node_embedding(node_fixed)
            e_hidden = e_hidden + self.fixed_pair_embedding(pair_fixed)
        per_layer = layer_conditions(self.condition_embedding, condition, batch, num_graphs, hidden)
        for k, layer in enumerate(self.layers):
            if per_layer is not None:
                hidden = hidden + per_layer[:, k]
            edge_attr = torch.cat([d0, e_hidden], dim=-1)[pair_of_edge]
            x, hidden = layer(x, hidden, edge_index, edge_attr)
            if self.edge_updates is not None:
                node_part = self.edge_node_proj[k](hidden)
                e_hidden = e_hidden + self.edge_updates[k](self._pair_input(node_part, e_hidden, x, pairs))

        eps_pos = x - pos
        eps_pos = remove_mean(eps_pos, batch, num_graphs)
        node_logits = self.node_readout(hidden)
        edge_logits = self.edge_readout(torch.cat([self._pair_input(hidden, e_hidden, x, pairs), d0], dim=-1))
        return eps_pos, node_logits, edge_logits
