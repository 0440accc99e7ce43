"""EGNN denoiser of residue-level backbones: one node per residue, with equivariant vector features (issue 29, b)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from molgen.graph_batch import remove_mean
from molgen.nn.egnn import EGNNLayer
from molgen.nn.graphs import GraphBuilder
from molgen.nn.radial import GaussianRadialBasis
from molgen.nn.time_embedding import TimeEmbedding

__all__ = ["EGNNVectorDenoiser"]


class EGNNVectorDenoiser(nn.Module):
    """Predicts the noise of node positions and of ``V`` vector features per node (e.g. the N, C and O atoms of
    a residue relative to its CA), E(3)-equivariantly.

    The vectors ``v`` (``h`` holds them flattened, ``[N, 3V]``, x y z per vector) are diffused like the
    positions; the network must rotate its prediction for them with the input. It sees them through
    invariants only, each through a softsign (bounded): on every node their Gram matrix ``v_a . v_b``
    (``V (V + 1) / 2`` numbers), on every edge ``i <- j`` the projections ``v_a(i) . r_ij`` and ``v_a(j) . r_ij``
    of both ends' vectors on ``r_ij = x_i - x_j`` and ``v_a(i) . v_a(j)`` (``3V`` numbers), beside the squared
    distance, its radial basis and the graph's edge features. ``num_layers``
    :class:`~molgen.nn.egnn.EGNNLayer` s update the node features and the coordinates. Readouts:

    - ``eps_pos = x_final - pos``, mean removed per graph;
    - ``eps_v_a(i) = sum_j w_a(ij) r_ij / ((|r_ij| + norm_constant) normalization_factor) + sum_b u_ab(i)
      v_b(i)`` with invariant weights ``w = coords_range tanh(MLP([h_i, h_j, e_ij]))`` and ``u = tanh(Linear(h_i))``
      (bounded as EGNN's coordinate steps): equivariant under rotations and reflections, invariant under
      translations, and each node's own vectors let it keep or turn what it was given.

    Args:
        in_node_dim: ``3V``.
        hidden_dim, num_layers, attention, aggregation, normalization_factor, tanh, coords_range,
            norm_constant, time_embedding, num_time_frequencies, graph, knn_k, atoms_per_residue,
            chain_window, max_residue_offset, distance_rbf, rbf_cutoff: as in
            :class:`~molgen.models.egnn_denoiser.EGNNDenoiser`.
    """

    def __init__(
        self,
        in_node_dim: int,
        hidden_dim: int = 128,
        num_layers: int = 6,
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
        atoms_per_residue: int = 1,
        chain_window: int = 2,
        max_residue_offset: int = 16,
        distance_rbf: int = 0,
        rbf_cutoff: float = 2.0,
    ) -> None:
        super().__init__()
        if in_node_dim % 3 or in_node_dim == 0:
            raise ValueError(f"in_node_dim must be 3 per vector feature, got {in_node_dim}")
        self.in_node_dim, self.num_vectors = in_node_dim, in_node_dim // 3
        v = self.num_vectors
        self.normalization_factor, self.coords_range, self.norm_constant = (
            normalization_factor,
            coords_range,
            norm_constant,
        )
        self.time_embedding = TimeEmbedding(time_embedding, num_time_frequencies)
        self.graph = GraphBuilder(graph, knn_k, atoms_per_residue, chain_window, max_residue_offset)
        self.radial_basis = GaussianRadialBasis(distance_rbf, rbf_cutoff) if distance_rbf else None
        edge_attr_dim = 1 + distance_rbf + self.graph.num_edge_features + 3 * v
        self.embedding = nn.Linear(v * (v + 1) // 2 + self.time_embedding.dim, hidden_dim)
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
        self.edge_weights = nn.Sequential(
            nn.Linear(2 * hidden_dim + edge_attr_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, v)
        )
        self.self_mix = nn.Linear(hidden_dim, v * v)

    def forward(self, pos: Tensor, h: Tensor, t: Tensor, batch: Tensor) -> tuple[Tensor, Tensor]:
        """Predict the noise of ``(pos, h)`` at times ``t``.

        Args:
            pos: ``[N, 3]`` noisy node coordinates.
            h: ``[N, 3V]`` noisy vector features, flattened (x, y, z of each vector in turn).
            t: ``[B]`` diffusion time of each graph.
            batch: ``[N]`` sorted graph index of each node.

        Returns:
            ``(eps_pos [N, 3] zero mean per graph, eps_h [N, 3V])``.
        """
        num_graphs, v = t.shape[0], self.num_vectors
        vectors = h.reshape(-1, v, 3)
        edge_index, graph_features = self.graph(pos, batch)
        target, source = edge_index[1], edge_index[0]
        r = pos[target] - pos[source]  # [E, 3], r_ij for the edge j -> i
        radial = [] if self.radial_basis is None else [self.radial_basis(torch.linalg.vector_norm(r, dim=-1))]
        # softsign keeps every invariant of the vectors bounded: noisy inputs at high noise cannot blow up the
        # network (the vectors' own scale is about 1, where it changes little)
        projections = F.softsign(
            torch.cat(
                [
                    torch.einsum("evd,ed->ev", vectors[target], r),
                    torch.einsum("evd,ed->ev", vectors[source], r),
                    (vectors[target] * vectors[source]).sum(dim=-1),
                ],
                dim=-1,
            )
        )
        edge_attr = torch.cat([r.square().sum(-1, keepdim=True), *radial, graph_features, projections], dim=-1)
        upper = torch.triu_indices(v, v, device=h.device)  # each pair of vectors once
        gram = F.softsign(torch.einsum("nad,nbd->nab", vectors, vectors)[:, upper[0], upper[1]])
        hidden = self.embedding(torch.cat([gram, self.time_embedding(t.to(h.dtype)[batch])], dim=-1))
        x = pos
        for layer in self.layers:
            x, hidden = layer(x, hidden, edge_index, edge_attr)
        eps_pos = remove_mean(x - pos, batch, num_graphs)

        # bounded as EGNN's coordinate steps: tanh weights on unit-ish directions, and a tanh mix of the node's
        # own vectors (coefficients in (-1, 1): enough to return the input itself, the noise at high noise)
        weights = self.coords_range * torch.tanh(
            self.edge_weights(torch.cat([hidden[target], hidden[source], edge_attr], dim=-1))
        )  # [E, V]
        direction = r / (torch.linalg.vector_norm(r, dim=-1, keepdim=True) + self.norm_constant)
        messages = weights[:, :, None] * direction[:, None, :] / self.normalization_factor  # [E, V, 3]
        eps_vectors = torch.zeros_like(vectors).index_add_(0, target, messages)
        mix = torch.tanh(self.self_mix(hidden)).reshape(-1, v, v)
        eps_vectors = eps_vectors + torch.einsum("nab,nbd->nad", mix, vectors)
        return eps_pos, eps_vectors.reshape(h.shape)
