"""Transformer denoiser of per-residue chain features without coordinates (internal-coordinate backbones)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch_geometric.utils import to_dense_batch

__all__ = ["ChainTransformer", "sinusoidal_encoding"]


def sinusoidal_encoding(values: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """``[...]`` numbers -> ``[..., dim]`` (``dim`` even): cosines then sines of ``values / max_period^(k / (dim/2))``,
    the transformer's position encoding (Vaswani et al. 2017)."""
    half = dim // 2
    frequencies = torch.exp(-math.log(max_period) * torch.arange(half, device=values.device) / half)
    angles = values.to(frequencies.dtype)[..., None] * frequencies
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


class ChainTransformer(nn.Module):
    """Predicts the noise of every residue's features from the whole chain, by self-attention along it.

    The nodes of each graph are a chain in residue order (torch_geometric layout); the network pads them to
    ``[B, L_max]`` and attends within each chain. Each residue's input is a linear map of its noisy features
    plus an encoding of its distances from both chain ends (so the ends are known without a length token)
    plus an embedding of the time. The features carry no coordinates (``pos`` is ``[N, 0]``), so nothing
    here has to be equivariant: internal coordinates are invariant under rotations and translations by
    construction (:mod:`molgen.proteins.internal_coordinates`).

    Shapes: ``pos [N, 0]``, ``h [N, F]``, ``t [B]`` in [0, 1], ``batch [N]`` sorted -> ``(eps_pos [N, 0],
    eps_h [N, F])``.

    Args:
        in_node_dim: ``F``.
        hidden_dim: width of the residue tokens (even).
        num_layers: pre-norm transformer encoder layers.
        num_heads: attention heads (dividing ``hidden_dim``).
        feedforward_dim: width of each layer's feed-forward block.
    """

    def __init__(
        self,
        in_node_dim: int,
        hidden_dim: int = 128,
        num_layers: int = 6,
        num_heads: int = 8,
        feedforward_dim: int = 384,
    ) -> None:
        super().__init__()
        if hidden_dim % 2 or hidden_dim % num_heads:
            raise ValueError(f"hidden_dim must be even and divisible by num_heads, got {hidden_dim} and {num_heads}")
        self.hidden_dim = hidden_dim
        self.embed = nn.Linear(in_node_dim, hidden_dim)
        self.index = nn.Linear(2 * hidden_dim, hidden_dim)
        self.time = nn.Sequential(nn.Linear(hidden_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, hidden_dim))
        layer = nn.TransformerEncoderLayer(
            hidden_dim, num_heads, feedforward_dim, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden_dim)
        self.out = nn.Linear(hidden_dim, in_node_dim)

    def forward(self, pos: Tensor, h: Tensor, t: Tensor, batch: Tensor) -> tuple[Tensor, Tensor]:
        tokens, mask = to_dense_batch(h, batch, batch_size=t.shape[0])  # [B, L, F], [B, L]
        index = torch.arange(tokens.shape[1], device=h.device).expand(mask.shape)
        from_end = mask.sum(dim=1, keepdim=True) - 1 - index
        ends = torch.cat(
            [sinusoidal_encoding(index, self.hidden_dim), sinusoidal_encoding(from_end, self.hidden_dim)], -1
        )
        # 1000 t: the encoding's frequencies resolve times a thousandth apart
        time = self.time(sinusoidal_encoding(1000.0 * t, self.hidden_dim).to(h.dtype))
        x = self.embed(tokens) + self.index(ends.to(h.dtype)) + time[:, None]
        x = self.layers(x, src_key_padding_mask=~mask)
        return torch.zeros_like(pos), self.out(self.norm(x))[mask]
