"""Features of the diffusion time that denoisers append to their node inputs."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

TIME_EMBEDDINGS = ("scalar", "sinusoidal")


class TimeEmbedding(nn.Module):
    """``[N]`` times in ``[0, 1]`` -> ``[N, dim]`` invariant features.

    ``"scalar"``: ``t`` itself (EDM), ``dim = 1``. ``"sinusoidal"``: ``sin`` and
    ``cos`` of ``2 pi 2^k t`` for ``k < num_frequencies``, ``dim = 2 num_frequencies``.
    Holds no weights (the frequencies are a non-persistent buffer).
    """

    def __init__(self, kind: str = "scalar", num_frequencies: int = 8) -> None:
        super().__init__()
        if kind not in TIME_EMBEDDINGS:
            raise ValueError(f"time_embedding must be 'scalar' or 'sinusoidal', got {kind!r}")
        self.kind = kind
        self.dim = 1 if kind == "scalar" else 2 * num_frequencies
        if kind == "sinusoidal":
            freqs = 2 * math.pi * 2.0 ** torch.arange(num_frequencies)
            self.register_buffer("frequencies", freqs, persistent=False)

    def forward(self, t_node: Tensor) -> Tensor:
        if self.kind == "scalar":
            return t_node[:, None]
        angles = t_node[:, None] * self.frequencies
        return torch.cat([angles.sin(), angles.cos()], dim=-1)
