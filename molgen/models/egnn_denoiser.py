"""EGNN noise-prediction network for E(3)-equivariant diffusion on molecules."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from molgen.diffusion.conditioning import GraphCondition
from molgen.diffusion.self_conditioning import GaussianEstimate
from molgen.graph_batch import remove_mean
from molgen.models.condition_embedding import ConditionEmbedding, add_condition, layer_conditions
from molgen.nn.chirality import NUM_TORSION_FEATURES, chain_torsion_features
from molgen.nn.egnn import EGNNLayer
from molgen.nn.graphs import GraphBuilder
from molgen.nn.radial import GaussianRadialBasis
from molgen.nn.time_embedding import TimeEmbedding

__all__ = ["EGNNDenoiser"]


class EGNNDenoiser(nn.Module):
    """Predicts the noise ``(eps_pos, eps_h)`` added to a batch of molecules.

    Architecture (as in EDM, Hoogeboom et al. 2022): the invariant features
    ``h`` are concatenated with a time embedding, linearly embedded to
    ``hidden_dim``, and passed with the coordinates through ``num_layers``
    :class:`~molgen.nn.egnn.EGNNLayer` s. Every layer receives the squared
    distances of the *input* coordinates as an extra edge feature. Then

    - ``eps_pos = x_final - pos`` with each graph's mean removed, so it lies in
      the zero centre-of-mass subspace (E(3)-equivariant, translation
      invariant);
    - ``eps_h = Linear(h_final)`` (E(3)-invariant). The readout maps straight
      to ``in_node_dim`` channels, so no time channel has to be dropped.

    Edges are built once per forward pass by a
    :class:`~molgen.nn.graphs.GraphBuilder`: fully connected within each graph
    (``graph="full"``), the ``knn_k`` nearest neighbours of the input
    coordinates (``graph="knn"``), or kNN plus sequence neighbours with
    sequence-separation edge features (``graph="knn+chain"``, protein
    backbones); those features join the squared distance as edge attributes,
    as do, when ``distance_rbf > 0``, Gaussian radial basis features of the
    input distance (:class:`~molgen.nn.radial.GaussianRadialBasis`).

    Args:
        in_node_dim: number ``F`` of invariant node features in ``h``.
        hidden_dim: width of the hidden node features and messages.
        num_layers: number of EGNN layers.
        attention: gate messages with a learned sigmoid attention.
        aggregation: ``"sum"`` or ``"mean"`` neighbour aggregation.
        normalization_factor: divisor of the ``"sum"`` aggregation.
        tanh: bound per-edge coordinate steps by ``coords_range * tanh``.
        coords_range: bound used with ``tanh`` (units of ``pos``).
        norm_constant: added to distances in the coordinate-update direction.
        time_embedding: ``"scalar"`` (append ``t`` as one feature, as EDM) or
            ``"sinusoidal"`` (append ``sin``/``cos`` of ``t`` at
            ``num_time_frequencies`` frequencies ``2 pi 2^k``).
        num_time_frequencies: frequencies for ``"sinusoidal"``.
        graph: ``"full"``, ``"knn"`` or ``"knn+chain"``.
        knn_k: neighbours per node for the kNN kinds.
        atoms_per_residue, chain_window, max_residue_offset: chain layout,
            sequence window and offset clamp of ``graph="knn+chain"``.
        distance_rbf: number of radial basis features of the input distance
            (0: none, as EDM). Needed when ``pos`` is in a coarse unit (backbones
            in nm), where ``d²`` alone cannot resolve bond lengths.
        rbf_cutoff: last radial basis centre, in the unit of ``pos``.
        self_conditioning: also take the network's previous clean estimate
            (``forward(..., self_condition=GaussianEstimate)``, see
            :mod:`molgen.diffusion.self_conditioning`). On every edge its
            squared distance (and radial basis, with ``distance_rbf``) in the
            estimate goes through a linear map into the edge attributes. The
            map starts at zero, so the network starts out as one without
            self-conditioning, and such a network's weights load into it
            (``init_from``) to fine-tune.
        num_conditions: graph-level target properties the network takes
            (``forward(..., condition=GraphCondition)``, see
            :mod:`molgen.diffusion.conditioning`; 0: none), added to the node
            embedding by a :class:`~molgen.models.condition_embedding.ConditionEmbedding`
            (zero at the start, and exactly zero for dropped properties).
        condition_layers: with ``num_conditions``, also add the condition before every layer
            (:meth:`ConditionEmbedding.per_layer`, zero at the start); with ``num_node_labels``, the
            labels likewise (a second map without bias, zero at the start).
        chirality: residue chains (``graph="knn+chain"``, ``atoms_per_residue=1``): add to the node
            embedding a linear map of each residue's signed CA virtual torsion in the input (and, with
            ``self_conditioning``, in the estimate), :func:`~molgen.nn.chirality.chain_torsion_features`.
            The network is then equivariant under rotations and translations but not reflections, so
            it can learn that helices are right-handed (:mod:`molgen.nn.chirality`). The map starts at
            zero: a network without it loads (``init_from``) and starts out unchanged.
        num_node_labels: the last ``num_node_labels`` of the ``in_node_dim`` channels of ``h`` are per-node
            labels (one-hot, all zeros where not given; backbones' secondary structure,
            :mod:`molgen.proteins.secondary_structure`), never noised. They reach the node embedding
            through their own linear map without bias, zero at the start, and the rest of the network
            sees the other channels only: a network without labels loads (``init_from``) and starts out
            as itself, and with every label hidden the network is that network, whatever the weights.
            Their noise prediction is zero.
    """

    def __init__(
        self,
        in_node_dim: int,
        hidden_dim: int = 256,
        num_layers: int = 9,
        attention: bool = True,
        aggregation: str = "sum",
        normalization_factor: float = 1.0,
        tanh: bool = True,
        coords_range: float = 15.0,
        norm_constant: float = 1.0,
        time_embedding: str = "scalar",
        num_time_frequencies: int = 8,
        graph: str = "full",
        knn_k: int = 16,
        atoms_per_residue: int = 4,
        chain_window: int = 2,
        max_residue_offset: int = 16,
        distance_rbf: int = 0,
        rbf_cutoff: float = 2.0,
        self_conditioning: bool = False,
        num_conditions: int = 0,
        condition_layers: bool = False,
        chirality: bool = False,
        num_node_labels: int = 0,
    ) -> None:
        super().__init__()
        if not 0 <= num_node_labels < in_node_dim:
            raise ValueError(
                f"num_node_labels must leave at least one feature channel: 0 <= {num_node_labels} < {in_node_dim}"
            )
        if chirality and (graph != "knn+chain" or atoms_per_residue != 1):
            raise ValueError(
                "chirality reads torsions along residue chains: it needs graph=knn+chain and atoms_per_residue=1, "
                f"got graph={graph!r}, atoms_per_residue={atoms_per_residue}"
            )
        self.in_node_dim, self.num_node_labels = in_node_dim, num_node_labels
        features = in_node_dim - num_node_labels
        self.time_embedding = TimeEmbedding(time_embedding, num_time_frequencies)
        self.graph = GraphBuilder(graph, knn_k, atoms_per_residue, chain_window, max_residue_offset)
        self.radial_basis = GaussianRadialBasis(distance_rbf, rbf_cutoff) if distance_rbf else None

        edge_attr_dim = 1 + distance_rbf + self.graph.num_edge_features
        self.self_conditioning = self_conditioning
        if self_conditioning:
            self.estimate_embedding = nn.Linear(1 + distance_rbf, edge_attr_dim, bias=False)
            nn.init.zeros_(self.estimate_embedding.weight)

        self.embedding = nn.Linear(features + self.time_embedding.dim, hidden_dim)
        self.layers = nn.ModuleList(
            EGNNLayer(
                hidden_dim,
                edge_attr_dim=edge_attr_dim,
                attention=attention,
                aggregation=aggregation,
                normalization_factor=normalization_factor,
                norm_constant=norm_constant,
                tanh=tanh,
                coords_range=coords_range,
            )
            for _ in range(num_layers)
        )
        self.readout = nn.Linear(hidden_dim, features)
        # Made last, so that a seed initialises every other weight as without conditions.
        self.condition_embedding = (
            ConditionEmbedding(num_conditions, hidden_dim, num_layers if condition_layers else 0)
            if num_conditions
            else None
        )
        self.chirality_embedding = None
        if chirality:
            inputs = NUM_TORSION_FEATURES * (2 if self_conditioning else 1)
            self.chirality_embedding = nn.Linear(inputs, hidden_dim, bias=False)
            nn.init.zeros_(self.chirality_embedding.weight)
        self.label_embedding = self.label_layer_embedding = None
        if num_node_labels:
            self.label_embedding = nn.Linear(num_node_labels, hidden_dim, bias=False)
            nn.init.zeros_(self.label_embedding.weight)
            if condition_layers:  # all layers' maps as one matrix: one product per call
                self.label_layer_embedding = nn.Linear(num_node_labels, num_layers * hidden_dim, bias=False)
                nn.init.zeros_(self.label_layer_embedding.weight)

    @property
    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def _distance_features(self, diff: Tensor) -> list[Tensor]:
        """Invariant features of edge vectors ``diff`` [E, 3]: ``[d² [E, 1], radial basis [E, R]]``."""
        # vector_norm, unlike sqrt, has a finite (zero) gradient for coincident atoms.
        radial = [] if self.radial_basis is None else [self.radial_basis(torch.linalg.vector_norm(diff, dim=-1))]
        return [diff.square().sum(dim=-1, keepdim=True), *radial]

    def forward(
        self,
        pos: Tensor,
        h: Tensor,
        t: Tensor,
        batch: Tensor,
        self_condition: GaussianEstimate | None = None,
        condition: GraphCondition | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Predict the noise of the noisy sample ``(pos, h)`` at time ``t``.

        Args:
            pos: ``[N, 3]`` noisy coordinates.
            h: ``[N, F]`` noisy invariant node features (``F = in_node_dim``).
            t: ``[B]`` diffusion time of each graph, in ``[0, 1]``.
            batch: ``LongTensor[N]`` sorted graph index of each node.
            self_condition: the previous clean estimate (its positions ``[N, 3]`` are read), or None
                (none yet); only for a network built with ``self_conditioning``.
            condition: target properties ``[B, P]`` (:mod:`molgen.diffusion.conditioning`), or None
                (unconditional); only for a network built with ``num_conditions``.

        Returns:
            ``(eps_pos [N, 3], eps_h [N, F])``; ``eps_pos`` has zero mean
            within each graph. NaNs are not masked here.
        """
        if self_condition is not None and not self.self_conditioning:
            raise ValueError("this denoiser was built without self_conditioning: it takes no self_condition")
        num_graphs = t.shape[0]
        edge_index, edge_features = self.graph(pos, batch)
        src, dst = edge_index
        # Invariant edge features shared by all layers: input squared distances (plus the graph's own).
        edge_attr = torch.cat([*self._distance_features(pos[dst] - pos[src]), edge_features], dim=-1)
        if self.self_conditioning:
            # Distances in the estimate are invariant. Without one they are zeros, which still runs the map,
            # so plain DDP sees its weight used at every step.
            estimate = [torch.zeros_like(edge_attr[:, : self.estimate_embedding.in_features])]
            if self_condition is not None:
                estimate = self._distance_features(self_condition.pos[dst] - self_condition.pos[src])
            edge_attr = edge_attr + self.estimate_embedding(torch.cat(estimate, dim=-1))

        t_node = t.to(h.dtype)[batch]
        x = pos
        features, labels = h[:, : h.shape[1] - self.num_node_labels], h[:, h.shape[1] - self.num_node_labels :]
        hidden = self.embedding(torch.cat([features, self.time_embedding(t_node)], dim=-1))
        if self.label_embedding is not None:
            hidden = hidden + self.label_embedding(labels)
        hidden = add_condition(self.condition_embedding, hidden, condition, batch, num_graphs)
        if self.chirality_embedding is not None:
            torsions = [chain_torsion_features(pos, batch)]
            if self.self_conditioning:  # the estimate's torsions, zeros before there is one
                estimate = self_condition.pos if self_condition is not None else torch.zeros_like(pos)
                torsions.append(chain_torsion_features(estimate, batch))
            hidden = hidden + self.chirality_embedding(torch.cat(torsions, dim=-1))
        per_layer = layer_conditions(self.condition_embedding, condition, batch, num_graphs, hidden)
        label_layers = None
        if self.label_layer_embedding is not None:
            label_layers = self.label_layer_embedding(labels).unflatten(-1, (len(self.layers), -1))
        for k, layer in enumerate(self.layers):
            if per_layer is not None:
                hidden = hidden + per_layer[:, k]
            if label_layers is not None:
                hidden = hidden + label_layers[:, k]
            x, hidden = layer(x, hidden, edge_index, edge_attr)

        eps_pos = x - pos
        eps_pos = remove_mean(eps_pos, batch, num_graphs)
        eps_h = self.readout(hidden)
        if self.num_node_labels:
            eps_h = torch.cat([eps_h, torch.zeros_like(labels)], dim=-1)
        return eps_pos, eps_h
