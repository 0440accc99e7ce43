"""E(n)-equivariant graph layer (Satorras et al. 2021) with EDM-style stabilisers."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["EGNNLayer"]


class EGNNLayer(nn.Module):
    r"""One E(n)-equivariant message-passing layer.

    Update rule, for an edge ``j -> i`` (``edge_index[0] = j``,
    ``edge_index[1] = i``, see :mod:`molgen.nn.graphs`)::

        d_ij  = ||x_i - x_j||
        m_ij  = phi_e([h_i, h_j, d_ij^2, a_ij])
        m_ij  = m_ij * sigmoid(phi_att(m_ij))                      (if attention)
        h_i'  = h_i + phi_h([h_i, AGG_j m_ij])
        x_i'  = x_i + AGG_j (x_i - x_j) / (d_ij + norm_constant) * s_ij
        s_ij  = phi_x(m_ij)          or  coords_range * tanh(phi_x(m_ij))  (if tanh)

    The coordinate update reuses the same messages ``m_ij`` as the feature
    update (as in Satorras et al.), so both are computed in one pass over the
    edges. ``AGG`` is either ``sum / normalization_factor`` or ``mean``.

    Stabilisers: ``norm_constant`` keeps the direction term bounded (and
    finite for coincident atoms); ``tanh`` bounds the per-edge displacement by
    ``coords_range``; the last layer of ``phi_x`` is initialised with a tiny
    gain so that a freshly initialised network barely moves the coordinates.

    Equivariance: ``h'`` is invariant and ``x'`` equivariant under rotations,
    reflections and translations of ``x``, and both are permutation
    equivariant, provided ``a_ij`` is invariant.

    Shapes:
        - pos: ``[N, 3]`` coordinates (any length unit; ``coords_range`` and
          ``norm_constant`` are in the same unit).
        - h: ``[N, hidden_dim]`` invariant node features.
        - edge_index: ``LongTensor[2, E]``.
        - edge_attr: ``[E, edge_attr_dim]`` invariant edge features, or
          ``None`` when ``edge_attr_dim == 0``.
        - output: ``(pos' [N, 3], h' [N, hidden_dim])``, in the order of the inputs
          (as every molgen network: positions first).

    Works in any floating dtype (cast the module with ``.double()``); nodes
    without edges keep ``x' = x`` and get ``h' = h + phi_h([h, 0])``.

    Args:
        hidden_dim: width of ``h`` and of the messages.
        edge_attr_dim: width of ``a_ij`` (0 for none).
        attention: gate each message with ``sigmoid(phi_att(m_ij))``.
        aggregation: ``"sum"`` or ``"mean"``.
        normalization_factor: divisor of the ``"sum"`` aggregation (EDM uses
            1 for QM9); ignored for ``"mean"``.
        norm_constant: added to ``d_ij`` in the direction normalisation.
        tanh: bound ``phi_x`` by ``coords_range * tanh``.
        coords_range: bound on the per-edge coordinate step when ``tanh``.
    """

    def __init__(
        self,
        hidden_dim: int,
        edge_attr_dim: int = 0,
        attention: bool = False,
        aggregation: str = "sum",
        normalization_factor: float = 1.0,
        norm_constant: float = 1.0,
        tanh: bool = False,
        coords_range: float = 15.0,
    ) -> None:
        if aggregation not in ("sum", "mean"):
            raise ValueError(f"aggregation must be 'sum' or 'mean', got {aggregation!r}")
        super().__init__()
        self.hidden_dim = hidden_dim
        self.edge_attr_dim = edge_attr_dim
        self.attention = attention
        self.aggregation = aggregation
        self.normalization_factor = float(normalization_factor)
        self.norm_constant = float(norm_constant)
        self.tanh = tanh
        self.coords_range = float(coords_range)

        self.phi_e = nn.Sequential(
            nn.Linear(2 * hidden_dim + 1 + edge_attr_dim, hidden_dim),
            nn.SiLU(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.SiLU(),
        )
        self.phi_att = nn.Linear(hidden_dim, 1) if attention else None
        self.phi_h = nn.Sequential(
            nn.Linear(2 * hidden_dim, hidden_dim),
            nn.SiLU(),
            nn.Linear(hidden_dim, hidden_dim),
        )
        self.phi_x = nn.Sequential(
            nn.Linear(hidden_dim, hidden_dim),
            nn.SiLU(),
            nn.Linear(hidden_dim, 1, bias=False),
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                module.reset_parameters()
        # Near-zero initial coordinate steps (as in EDM) keep early training stable.
        nn.init.xavier_uniform_(self.phi_x[-1].weight, gain=0.001)

    def forward(
        self,
        pos: Tensor,
        h: Tensor,
        edge_index: Tensor,
        edge_attr: Optional[Tensor] = None,
    ) -> tuple[Tensor, Tensor]:
        """Apply the layer; see the class docstring for shapes."""
        if (edge_attr is None) != (self.edge_attr_dim == 0):
            raise ValueError(f"edge_attr must be given iff edge_attr_dim > 0 (edge_attr_dim={self.edge_attr_dim})")
        source, target = edge_index
        size = self.hidden_dim
        # The first layer of phi_e is linear in [h_i, h_j, ...]: apply its h
        # blocks once per node rather than once per edge (~17 edges per node on
        # QM9), then gather. Same weights, same function, about half the
        # per-edge matmul work.
        first = self.phi_e[0]
        h_target = F.linear(h, first.weight[:, :size], first.bias)
        h_source = F.linear(h, first.weight[:, size : 2 * size])

        diff = pos.index_select(0, target) - pos.index_select(0, source)  # [E, 3]
        # vector_norm has a zero (not NaN) gradient for coincident atoms.
        dist = torch.linalg.vector_norm(diff, dim=-1, keepdim=True)  # [E, 1]
        scalars = dist.square() if edge_attr is None else torch.cat([dist.square(), edge_attr], dim=-1)
        # Built in place in one [E, H] buffer: the gathered sum, then the few
        # per-edge scalar columns accumulated by the matrix product itself
        # (an out-of-place addmm would first copy its input). Autocast skips
        # in-place ops, so the operands take the buffer's dtype explicitly
        # (bfloat16 under autocast, as an out-of-place addmm would use).
        pre_activation = h_target.index_select(0, target).add_(h_source.index_select(0, source))
        dtype = pre_activation.dtype
        pre_activation.addmm_(scalars.to(dtype), first.weight[:, 2 * size :].t().to(dtype))
        m = self.phi_e[1:](pre_activation)  # [E, H]
        if self.phi_att is not None:
            m = m * torch.sigmoid(self.phi_att(m))
        scale = self.phi_x(m)  # [E, 1]
        if self.tanh:
            scale = self.coords_range * torch.tanh(scale)
        step = diff / (dist + self.norm_constant) * scale  # [E, 3]

        # Plain index_add_ rather than a generic message-passing wrapper: no
        # concatenated [E, H + 3] message, and its gradient is one gather. The
        # sums are in the messages' dtype (bfloat16 under autocast).
        agg_m = m.new_zeros(h.shape[0], size).index_add_(0, target, m)
        agg_x = step.new_zeros(pos.shape[0], 3).index_add_(0, target, step)
        if self.aggregation == "sum":
            divisor = self.normalization_factor
        else:
            divisor = torch.bincount(target, minlength=h.shape[0]).clamp(min=1).unsqueeze(-1).to(h.dtype)
        h_out = h + self.phi_h(torch.cat([h, agg_m / divisor], dim=-1))
        return pos + agg_x / divisor, h_out

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(hidden_dim={self.hidden_dim}, "
            f"edge_attr_dim={self.edge_attr_dim}, attention={self.attention}, "
            f"aggregation={self.aggregation!r}, tanh={self.tanh})"
        )
