"""Tensor-product (e3nn) noise-prediction network for equivariant diffusion on molecules."""

from __future__ import annotations

from typing import Optional

import torch
from e3nn import o3
from torch import Tensor, nn

from molgen.graph_batch import remove_mean
from molgen.nn.e3nn_conv import E3NNConv, EdgeEmbedding
from molgen.nn.graphs import GraphBuilder

__all__ = ["E3NNDenoiser"]

# Centre of the last radial Gaussian without a cutoff (Å): QM9 molecules span
# up to ~10 Å, so all their pairwise distances fall inside the basis.
MAX_RADIUS_NO_CUTOFF = 10.0


class E3NNDenoiser(nn.Module):
    """Predicts the noise ``(eps_pos, eps_h)`` with e3nn tensor-product convolutions.

    Architecture: the invariant features ``h`` are concatenated with the
    diffusion time ``t`` (one extra scalar feature, as in EDM) and linearly
    embedded to ``hidden_scalars`` scalars. ``num_layers``
    :class:`~molgen.nn.e3nn_conv.E3NNConv` layers then build equivariant
    features with irreps (``parity=True``)::

        hidden_scalars x 0e + hidden_vectors x 1o + hidden_l2 x 2e

    (the ``2e`` block only when ``lmax >= 2``), exchanging messages along edge
    spherical harmonics ``Y^0 .. Y^lmax`` of the noisy coordinates. The
    coordinates themselves are not updated; a final :class:`e3nn.o3.Linear`
    reads out

    - ``eps_pos``: one ``1o`` vector per node (Cartesian ``x, y, z``), with
      each graph's mean removed so it lies in the zero centre-of-mass
      subspace;
    - ``eps_h``: ``in_node_dim`` ``0e`` scalars (with biases).

    Edges are built once per forward pass by a
    :class:`~molgen.nn.graphs.GraphBuilder`: fully connected within each graph
    (``graph="full"``), the ``knn_k`` nearest neighbours of the input
    coordinates (``graph="knn"``), or kNN plus sequence neighbours
    (``graph="knn+chain"``, whose sequence-separation features are appended
    to the radial basis). Messages are summed and divided by
    ``normalization_factor``.

    Radial basis: ``num_radial`` Gaussians centred on ``[0, r_max]`` (see
    :class:`~molgen.nn.e3nn_conv.EdgeEmbedding`), ``r_max = cutoff`` with a
    cutoff, else ``MAX_RADIUS_NO_CUTOFF = 10`` Å, which covers every
    interatomic distance in QM9; pairs more than ~11 Å apart then interact
    only weakly (the basis fades beyond ``r_max``). ``cutoff=None`` keeps all
    edges with no envelope; a ``cutoff`` drops edges at or beyond it and
    multiplies the basis by a smooth envelope.

    Parity (reflections): with ``parity=True`` all features carry their
    O(3) parity, ``0e, 1o, 2e`` (polar vectors, like coordinates), and the
    harmonics are ``0e + 1o + 2e``; tensor-product paths that would produce
    pseudo-tensors (e.g. the cross product ``1o x 1o -> 1e``) are not used.
    The model is then E(3)-equivariant: ``eps_pos`` is equivariant and
    ``eps_h`` invariant under rotations, reflections and translations, like
    EGNN. With ``parity=False`` every irrep is labelled even (``0e, 1e,
    2e``), which admits all SO(3) paths, cross products included: the model
    is only SE(3)-equivariant (reflection equivariance is not guaranteed;
    the output can distinguish a molecule from its mirror image).

    Precision: works in float32 and float64. For float64-exact equivariance
    build the model under ``torch.set_default_dtype(torch.float64)`` (e3nn
    keeps its Clebsch-Gordan coefficients in the construction dtype; a
    float32-built model cast with ``.double()`` is equivariant to ~1e-9).

    Args:
        in_node_dim: number ``F`` of invariant node features in ``h``.
        hidden_scalars: multiplicity of ``l = 0`` hidden features; also the
            hidden width of each layer's radial MLP.
        hidden_vectors: multiplicity of ``l = 1`` hidden features (``>= 1``:
            ``eps_pos`` is read out from them).
        hidden_l2: multiplicity of ``l = 2`` hidden features (0 allowed; must
            be 0 if ``lmax < 2``).
        num_layers: number of convolution layers.
        lmax: highest degree of the edge spherical harmonics (``>= 1``);
            hidden features go up to ``l = min(lmax, 2)``.
        num_radial: number of radial basis functions.
        cutoff: interaction cutoff (Å), or ``None`` for none.
        time_embedding: only ``"scalar"`` (``t`` appended as one feature).
        graph: ``"full"``, ``"knn"`` or ``"knn+chain"``.
        knn_k: neighbours per node for the kNN kinds.
        atoms_per_residue, chain_window, max_residue_offset: chain layout,
            sequence window and offset clamp of ``graph="knn+chain"``.
        parity: O(3) irreps (E(3)-equivariant) if true, SO(3) only if false.
        normalization_factor: divisor of the summed messages, ~ the typical
            number of neighbours (QM9 full graphs: ~17; knn: ``knn_k``).
            Neighbours' messages are strongly correlated at initialisation,
            so their sum grows ~linearly (not as a square root) with their
            number; this keeps features O(1) through the layers.
    """

    def __init__(
        self,
        in_node_dim: int,
        hidden_scalars: int = 64,
        hidden_vectors: int = 16,
        hidden_l2: int = 8,
        num_layers: int = 4,
        lmax: int = 2,
        num_radial: int = 16,
        cutoff: Optional[float] = None,
        time_embedding: str = "scalar",
        graph: str = "full",
        knn_k: int = 16,
        atoms_per_residue: int = 4,
        chain_window: int = 2,
        max_residue_offset: int = 16,
        parity: bool = True,
        normalization_factor: float = 16.0,
    ) -> None:
        super().__init__()
        if time_embedding != "scalar":
            raise ValueError(f"time_embedding must be 'scalar', got {time_embedding!r}")
        if lmax < 1 or hidden_vectors < 1:
            raise ValueError(f"need lmax >= 1 and hidden_vectors >= 1, got {lmax=}, {hidden_vectors=}")
        if hidden_l2 > 0 and lmax < 2:
            raise ValueError(f"hidden_l2 > 0 needs lmax >= 2, got {lmax=}, {hidden_l2=}")
        if cutoff is not None and cutoff <= 0:
            raise ValueError(f"cutoff must be positive or None, got {cutoff}")
        self.in_node_dim = in_node_dim
        self.graph = GraphBuilder(graph, knn_k, atoms_per_residue, chain_window, max_residue_offset)
        self.parity = parity

        # Parity of a degree-l feature: (-1)^l for true vectors/tensors, +1 when parity is ignored.
        p = -1 if parity else 1
        self.irreps_sh = o3.Irreps.spherical_harmonics(lmax, p=p)
        self.irreps_hidden = o3.Irreps(
            [(hidden_scalars, (0, 1)), (hidden_vectors, (1, p))] + ([(hidden_l2, (2, 1))] if hidden_l2 > 0 else [])
        )
        irreps_embed = o3.Irreps(f"{hidden_scalars}x0e")

        max_radius = MAX_RADIUS_NO_CUTOFF if cutoff is None else cutoff
        self.edge_embedding = EdgeEmbedding(self.irreps_sh, num_radial, max_radius, cutoff)
        self.embedding = nn.Linear(in_node_dim + 1, hidden_scalars)
        self.layers = nn.ModuleList(
            E3NNConv(
                irreps_embed if k == 0 else self.irreps_hidden,
                self.irreps_hidden,
                self.irreps_sh,
                num_radial=num_radial + self.graph.num_edge_features,
                radial_hidden=hidden_scalars,
                normalization_factor=normalization_factor,
            )
            for k in range(num_layers)
        )
        irreps_readout = o3.Irreps([(in_node_dim, (0, 1)), (1, (1, p))])
        self.readout = o3.Linear(self.irreps_hidden, irreps_readout, biases=True)

    @property
    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def forward(self, pos: Tensor, h: Tensor, t: Tensor, batch: Tensor) -> tuple[Tensor, Tensor]:
        """Predict the noise of the noisy sample ``(pos, h)`` at time ``t``.

        Args:
            pos: ``[N, 3]`` noisy coordinates (Å).
            h: ``[N, F]`` noisy invariant node features (``F = in_node_dim``).
            t: ``[B]`` diffusion time of each graph, in ``[0, 1]``.
            batch: ``LongTensor[N]`` sorted graph index of each node.

        Returns:
            ``(eps_pos [N, 3], eps_h [N, F])``; ``eps_pos`` has zero mean
            within each graph. NaNs are not masked here.
        """
        num_graphs = t.shape[0]
        edge_index, edge_features = self.graph(pos, batch)
        edge_index, edge_sh, edge_radial = self.edge_embedding(pos, edge_index, edge_features)

        t_node = t.to(h.dtype)[batch, None]
        x = self.embedding(torch.cat([h, t_node], dim=-1))
        for layer in self.layers:
            x = layer(x, edge_index, edge_sh, edge_radial)

        out = self.readout(x)  # [N, F + 3]: F scalars, then one vector
        eps_h, eps_pos = out[:, : self.in_node_dim], out[:, self.in_node_dim :]
        return remove_mean(eps_pos, batch, num_graphs), eps_h
