"""Tensor-product convolution (e3nn) with a gated nonlinearity, for point clouds.

The edge embeddings (spherical harmonics of the edge vectors and a smooth
radial basis of their lengths) are computed once per forward pass with
:class:`EdgeEmbedding` and shared by all :class:`E3NNConv` layers.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from e3nn import o3
from e3nn.math import soft_one_hot_linspace
from e3nn.nn import FullyConnectedNet, Gate
from torch import Tensor, nn
from torch_geometric.utils import scatter

__all__ = ["E3NNConv", "EdgeEmbedding"]

_INV_SQRT2 = 1.0 / math.sqrt(2.0)


class EdgeEmbedding(nn.Module):
    """Spherical harmonics and radial basis of the edges ``j -> i``.

    The edge vector is ``r_ij = pos_j - pos_i`` (from the target ``i`` to the
    source ``j``; ``edge_index[0] = j``, ``edge_index[1] = i``). Its length is
    expanded in ``num_radial`` Gaussians centred on ``linspace(0, max_radius)``
    with width ``max_radius / (num_radial - 1)`` (e3nn's
    ``soft_one_hot_linspace(basis="gaussian")``), scaled by
    ``sqrt(num_radial)`` for an O(1) second moment. Lengths beyond
    ``max_radius`` are still embedded but fade out: two widths past it, the
    basis is ~2% of its peak.

    With a ``cutoff``, edges with ``|r_ij| >= cutoff`` are dropped and the
    basis is multiplied by the polynomial envelope
    ``u(d) = 1 - 28 d^6 + 48 d^7 - 21 d^8``, ``d = |r_ij| / cutoff``
    (DimeNet, p = 6), which vanishes with its first two derivatives at
    ``d = 1``, so the layers' outputs stay smooth in the coordinates as
    edges cross the cutoff.

    Shapes:
        - pos: ``[N, 3]`` coordinates (any length unit; ``max_radius`` and
          ``cutoff`` in the same unit).
        - edge_index: ``LongTensor[2, E]``.
        - output: ``(edge_index [2, E'], edge_sh [E', irreps_sh.dim],
          edge_radial [E', num_radial + D])`` with ``E' = E`` without cutoff
          (``D`` columns of optional ``edge_features``).

    The harmonics are component-normalised (``|Y^l|^2 = 2l + 1``) and ordered
    ``(x, y, z)`` for ``l = 1``; for coincident atoms ``Y^l = 0`` for
    ``l > 0``, with finite gradients.

    Args:
        irreps_sh: spherical-harmonic irreps, e.g. ``o3.Irreps.spherical_harmonics(2)``
            (``0e + 1o + 2e``; all-even labels ``0e + 1e + 2e`` are allowed too).
        num_radial: number of basis functions (``>= 2``).
        max_radius: centre of the last Gaussian.
        cutoff: optional cutoff radius, with the smooth envelope.
    """

    def __init__(
        self, irreps_sh: o3.Irreps | str, num_radial: int, max_radius: float, cutoff: Optional[float] = None
    ) -> None:
        super().__init__()
        if num_radial < 2:
            raise ValueError(f"num_radial must be >= 2, got {num_radial}")
        self.irreps_sh = o3.Irreps(irreps_sh)
        self.num_radial = num_radial
        self.max_radius = float(max_radius)
        self.cutoff = None if cutoff is None else float(cutoff)
        # normalize=True maps a zero vector to zero harmonics instead of NaN.
        self.sh = o3.SphericalHarmonics(self.irreps_sh, normalize=True, normalization="component")

    def forward(
        self, pos: Tensor, edge_index: Tensor, edge_features: Optional[Tensor] = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Embed the edges; see the class docstring for shapes.

        ``edge_features`` ``[E, D]`` (invariant, e.g. sequence separation) are
        appended to the radial basis, after the cutoff filter, so that the
        radial MLP sees them.
        """
        src, dst = edge_index
        vec = pos[src] - pos[dst]
        # vector_norm has a zero (not NaN) gradient at zero length.
        dist = torch.linalg.vector_norm(vec, dim=-1)
        if self.cutoff is not None:
            keep = dist < self.cutoff
            edge_index, vec, dist = edge_index[:, keep], vec[keep], dist[keep]
            edge_features = None if edge_features is None else edge_features[keep]
        edge_sh = self.sh(vec)
        basis = soft_one_hot_linspace(dist, 0.0, self.max_radius, self.num_radial, basis="gaussian", cutoff=False)
        edge_radial = basis * math.sqrt(self.num_radial)
        if self.cutoff is not None:
            d = dist / self.cutoff
            envelope = 1.0 - 28.0 * d**6 + 48.0 * d**7 - 21.0 * d**8
            edge_radial = edge_radial * envelope[:, None]
        if edge_features is not None:
            edge_radial = torch.cat([edge_radial, edge_features], dim=-1)
        return edge_index, edge_sh, edge_radial


class E3NNConv(nn.Module):
    r"""Equivariant tensor-product convolution with a gate and a residual update.

    Update rule for node ``i`` with neighbours ``j`` (edges ``j -> i``)::

        w_ij  = MLP(B(|r_ij|))                              radial weights per edge
        m_ij  = TP_{w_ij}( Lin_in(f_j), Y(r_ij / |r_ij|) )  depthwise ("uvu") tensor product
        a_i   = AGG_j m_ij                                  sum / normalization_factor, or mean
        f_i'  = Gate( (Lin_self(f_i) + Lin_out(a_i)) / sqrt(2) )
        f_i'  = (f_i + f_i') / sqrt(2)                      (only if irreps_in == irreps_out)

    ``B`` and ``Y`` are the radial basis and spherical harmonics from
    :class:`EdgeEmbedding`; ``Lin_*`` are :class:`e3nn.o3.Linear` maps
    (channel mixing within each irrep, biases off). The tensor product has
    one path ``(l_in x l_sh -> l_out)`` per input irrep, spherical harmonic
    and output irrep type present in the gate input, keeping the input
    multiplicity ("uvu"); ``Lin_out`` then mixes channels. A depthwise
    product keeps the per-edge weight count ``~ sum of input multiplicities``
    rather than the ``~ mul_in * mul_out`` of a fully connected one, which
    would need gigabytes for fully connected QM9 graphs.

    The radial MLP (e3nn ``FullyConnectedNet``) has no biases, so an edge
    whose basis is zero (beyond a cutoff) sends no message.

    Irreps: ``irreps_out`` must consist of even scalars ``0e`` (activated by
    SiLU) and ``l > 0`` irreps (each multiplied by its own sigmoid gate, a
    ``0e`` scalar produced alongside). The tensor product therefore targets
    ``irreps_out``'s ``0e`` scalars, one extra ``0e`` per gated irrep, and the
    gated irreps. Parity is respected as labelled: a path exists only if the
    parities multiply correctly, so with correctly labelled irreps (e.g.
    ``0e + 1o + 2e`` and ``Y`` with ``p = -1``) the layer is O(3)-equivariant.

    Shapes:
        - x: ``[N, irreps_in.dim]`` node features.
        - edge_index: ``LongTensor[2, E]``, row 0 source ``j``, row 1 target ``i``.
        - edge_sh: ``[E, irreps_sh.dim]``.
        - edge_radial: ``[E, num_radial]``.
        - output: ``[N, irreps_out.dim]``.

    The ``1 / sqrt(2)`` factors rescale sums of two ~unit-variance terms, so
    that feature magnitudes do not grow with depth at initialisation. A node
    without edges gets ``Gate(Lin_self(f_i) / sqrt(2))`` (plus the residual).

    Works in float32 and float64 (cast the module with ``.double()``). e3nn
    stores the Clebsch-Gordan coefficients in the default dtype at
    construction, so a module built in float32 and cast to float64 keeps
    ~1e-9 relative equivariance errors; build it under
    ``torch.set_default_dtype(torch.float64)`` for float64-exact symmetry.

    Args:
        irreps_in: input node irreps.
        irreps_out: output node irreps (``0e`` scalars and ``l > 0`` irreps).
        irreps_sh: irreps of the edge spherical harmonics.
        num_radial: width of the radial basis.
        radial_hidden: hidden width of the radial MLP (two hidden layers).
        aggregation: ``"sum"`` or ``"mean"``.
        normalization_factor: divisor of the ``"sum"`` aggregation, e.g. the
            typical number of neighbours; ignored for ``"mean"``.
    """

    def __init__(
        self,
        irreps_in: o3.Irreps | str,
        irreps_out: o3.Irreps | str,
        irreps_sh: o3.Irreps | str,
        num_radial: int = 16,
        radial_hidden: int = 64,
        aggregation: str = "sum",
        normalization_factor: float = 1.0,
    ) -> None:
        super().__init__()
        if aggregation not in ("sum", "mean"):
            raise ValueError(f"aggregation must be 'sum' or 'mean', got {aggregation!r}")
        self.irreps_in = o3.Irreps(irreps_in)
        self.irreps_out = o3.Irreps(irreps_out)
        self.irreps_sh = o3.Irreps(irreps_sh)
        self.aggregation = aggregation
        self.normalization_factor = float(normalization_factor)

        scalars = o3.Irreps([(mul, ir) for mul, ir in self.irreps_out if ir.l == 0])
        gated = o3.Irreps([(mul, ir) for mul, ir in self.irreps_out if ir.l > 0])
        if any(ir.p != 1 for _, ir in scalars):
            raise ValueError(f"scalar outputs must be even (0e), got {scalars}")
        if scalars + gated != self.irreps_out:
            raise ValueError(f"irreps_out must list scalars before l > 0 irreps, got {self.irreps_out}")
        gates = o3.Irreps(f"{gated.num_irreps}x0e") if gated.num_irreps > 0 else o3.Irreps("")
        self.gate = Gate(scalars, [nn.functional.silu], gates, [torch.sigmoid], gated)
        gate_in = self.gate.irreps_in  # scalars + gates + gated

        self.linear_in = o3.Linear(self.irreps_in, self.irreps_in)
        # Depthwise tensor product: one path per (input irrep, harmonic, wanted output type).
        wanted = {ir for _, ir in gate_in}
        mid, instructions = [], []
        for i, (mul, ir_in) in enumerate(self.irreps_in):
            for j, (_, ir_sh) in enumerate(self.irreps_sh):
                for ir_out in ir_in * ir_sh:
                    if ir_out in wanted:
                        instructions.append((i, j, len(mid), "uvu", True))
                        mid.append((mul, ir_out))
        # Sorting the product's outputs by irrep lets Lin_out act on merged blocks.
        irreps_mid, perm, _ = o3.Irreps(mid).sort()
        instructions = [(i, j, perm[k], mode, train) for i, j, k, mode, train in instructions]
        self.tp = o3.TensorProduct(
            self.irreps_in,
            self.irreps_sh,
            irreps_mid,
            instructions,
            shared_weights=False,
            internal_weights=False,
        )
        self.radial_mlp = FullyConnectedNet(
            [num_radial, radial_hidden, radial_hidden, self.tp.weight_numel], nn.functional.silu
        )
        self.linear_out = o3.Linear(irreps_mid.simplify(), gate_in)
        self.linear_self = o3.Linear(self.irreps_in, gate_in)
        self.residual = self.irreps_in == self.irreps_out

    def forward(self, x: Tensor, edge_index: Tensor, edge_sh: Tensor, edge_radial: Tensor) -> Tensor:
        """Apply the layer; see the class docstring for shapes."""
        src, dst = edge_index
        weights = self.radial_mlp(edge_radial)  # [E, tp.weight_numel]
        messages = self.tp(self.linear_in(x)[src], edge_sh, weights)  # [E, irreps_mid.dim]
        agg = scatter(messages, dst, dim=0, dim_size=x.shape[0], reduce=self.aggregation)
        if self.aggregation == "sum":
            agg = agg / self.normalization_factor
        out = self.gate((self.linear_self(x) + self.linear_out(agg)) * _INV_SQRT2)
        return (x + out) * _INV_SQRT2 if self.residual else out

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.irreps_in} -> {self.irreps_out}, sh={self.irreps_sh}, "
            f"weights/edge={self.tp.weight_numel}, aggregation={self.aggregation!r})"
        )
