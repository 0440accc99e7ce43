"""Transformer denoiser of per-residue chain features without coordinates (internal-coordinate backbones)."""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch_geometric.utils import to_dense_batch

from molgen.diffusion.self_conditioning import GaussianEstimate
from molgen.nn.radial import GaussianRadialBasis
from molgen.proteins.internal_coordinates import ca_traces_from_features, tidied_features

__all__ = ["ChainTransformer", "sinusoidal_encoding"]

#: Grid step (Å) of the table the distance bias is interpolated from.
DISTANCE_STEP = 0.02


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

    A self-conditioned network (``self_conditioning``) also sees its previous clean estimate in space: the
    estimate's angles are embedded into the tokens, and its CA trace is rebuilt
    (:func:`~molgen.proteins.internal_coordinates.ca_traces_from_features`) so that every attention score
    gains a learned bias per head from the distance of the two residues in it. Sequence-local angles alone
    cannot say which strands pair or whether helices pack; the distances of the whole estimate can.

    A fold-conditioned network (``num_node_labels``) also takes one label per residue (``node_labels [N]`` long:
    a secondary-structure state, or -1 where not given, :mod:`molgen.proteins.secondary_structure`), embedded
    into its token by a map without bias that starts at zero: with every label hidden the network is the one
    without labels, whatever the map's weights, and such a network's weights load into it (``init_from``).
    The labels are clean conditioning, never noised: the features ``h`` stay the angles alone.

    Shapes: ``pos [N, 0]``, ``h [N, F]`` (``F = 3``, the angle features, when self-conditioned), ``t [B]`` in
    [0, 1], ``batch [N]`` sorted, ``node_labels [N]`` or None -> ``(eps_pos [N, 0], eps_h [N, F])``.

    Args:
        in_node_dim: ``F``.
        hidden_dim: width of the residue tokens (even).
        num_layers: pre-norm transformer encoder layers.
        num_heads: attention heads (dividing ``hidden_dim``).
        feedforward_dim: width of each layer's feed-forward block.
        self_conditioning: take the previous clean estimate (``forward(..., self_condition=GaussianEstimate)``,
            :mod:`molgen.diffusion.self_conditioning`). Its embedding and distance bias start at zero, so the
            network starts out as one without, and such a network's weights load into it (``init_from``).
        distance_rbf: radial basis features of the estimate's CA-CA distances.
        rbf_cutoff: last radial basis centre (Å).
        num_node_labels: label classes per residue (a fold-conditioned network: the three secondary-structure
            states), 0 for none; from the data, not the config.
    """

    def __init__(
        self,
        in_node_dim: int,
        hidden_dim: int = 128,
        num_layers: int = 6,
        num_heads: int = 8,
        feedforward_dim: int = 384,
        self_conditioning: bool = False,
        distance_rbf: int = 16,
        rbf_cutoff: float = 24.0,
        num_node_labels: int = 0,
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
        if num_node_labels < 0:
            raise ValueError(f"num_node_labels must be >= 0, got {num_node_labels}")
        self.num_node_labels = num_node_labels
        if num_node_labels:
            self.label_embedding = nn.Linear(num_node_labels, hidden_dim, bias=False)
            nn.init.zeros_(self.label_embedding.weight)
        self.self_conditioning = self_conditioning
        if self_conditioning:
            self.estimate_embedding = nn.Linear(in_node_dim, hidden_dim)
            self.distances = GaussianRadialBasis(distance_rbf, rbf_cutoff)
            self.distance_bias = nn.Linear(distance_rbf, num_heads)  # one learned distance profile per head
            for linear in (self.estimate_embedding, self.distance_bias):
                nn.init.zeros_(linear.weight), nn.init.zeros_(linear.bias)

    def forward(
        self,
        pos: Tensor,
        h: Tensor,
        t: Tensor,
        batch: Tensor,
        self_condition: GaussianEstimate | None = None,
        node_labels: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        if self_condition is not None and not self.self_conditioning:
            raise ValueError("this denoiser was built without self_conditioning: it takes no self_condition")
        if node_labels is not None and not self.num_node_labels:
            raise ValueError("this denoiser was built without num_node_labels: it takes no node_labels")
        tokens, mask = to_dense_batch(h, batch, batch_size=t.shape[0])  # [B, L, F], [B, L]
        index = torch.arange(tokens.shape[1], device=h.device).expand(mask.shape)
        from_end = mask.sum(dim=1, keepdim=True) - 1 - index
        ends = torch.cat(
            [sinusoidal_encoding(index, self.hidden_dim), sinusoidal_encoding(from_end, self.hidden_dim)], -1
        )
        # 1000 t: the encoding's frequencies resolve times a thousandth apart
        time = self.time(sinusoidal_encoding(1000.0 * t, self.hidden_dim).to(h.dtype))
        x = self.embed(tokens) + self.index(ends.to(h.dtype)) + time[:, None]
        if node_labels is not None:
            given = (node_labels >= 0).unsqueeze(-1)  # a hidden label (-1) is a row of zeros
            labels = nn.functional.one_hot(node_labels.clamp(min=0), self.num_node_labels).to(h.dtype) * given
            x = x + self.label_embedding(to_dense_batch(labels, batch, batch_size=t.shape[0])[0])
        if not self.self_conditioning:
            x = self.layers(x, src_key_padding_mask=~mask)
        else:
            estimate = None
            if self_condition is not None:
                estimate = to_dense_batch(self_condition.h, batch, batch_size=t.shape[0])[0]
            features, bias = self._estimate_inputs(estimate, tokens)
            # Both masks float: the padded keys' -inf is added to the bias inside attention.
            padding = torch.zeros_like(bias[:, 0, 0]).masked_fill(~mask, -torch.inf)
            with _without_inference_fastpath():
                x = self.layers(
                    x + self.estimate_embedding(features), mask=bias.flatten(0, 1), src_key_padding_mask=padding
                )
        return torch.zeros_like(pos), self.out(self.norm(x))[mask]

    def _estimate_inputs(self, estimate: Tensor | None, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """What the network reads from the dense clean estimate ``[B, L, F]`` (None: none yet, all zeros):
        its angle features re-derived from the angles ``[B, L, F]`` (an estimate at high noise can be far
        off the features' scale) and the attention bias of its CA-CA distances ``[B, H, L, L]``."""
        if estimate is None:  # the map of all-zero distance features: its bias, the same for every pair
            size, length = tokens.shape[:2]
            return torch.zeros_like(tokens), self.distance_bias.bias[:, None, None].expand(size, -1, length, length)
        trace = ca_traces_from_features(estimate)
        return tidied_features(estimate), self._bias_of_distances(torch.cdist(trace, trace))

    def _bias_of_distances(self, distances: Tensor) -> Tensor:
        """Each head's learned function of distance, ``[B, L, L]`` Å -> ``[B, H, L, L]``, read off a table of it
        every :data:`DISTANCE_STEP` Å by linear interpolation: the radial basis of every pair would cost ``K``
        exponentials per pair, the table ``K`` per grid point (the error, quadratic in the step, is below 1e-3
        for weights of order one)."""
        grid = torch.arange(0.0, self.distances.centres[-1] + 3 * self.distances.width, DISTANCE_STEP)
        table = self.distance_bias(self.distances(grid.to(distances))).T  # [H, G]; constant beyond the grid
        position = (distances / DISTANCE_STEP).clamp(max=grid.shape[0] - 1)
        below = position.floor().long().clamp(max=grid.shape[0] - 2)
        low, high = table[:, below], table[:, below + 1]  # [H, B, L, L]
        return (low + (high - low) * (position - below)).transpose(0, 1)


@contextmanager
def _without_inference_fastpath():
    """Turn off torch's transformer inference fast path for the block: it returns NaN for a per-head (3-d) float
    attention mask (torch 2.13), while the standard path handles it."""
    enabled = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(enabled)
