"""Gaussian radial basis of interatomic distances, an invariant edge feature.

A network fed only the raw squared distance ``d²`` resolves short distances
poorly when coordinates are in a coarse unit: backbones diffused in nanometres
have bonds of ``d² ≈ 0.02`` whose deviations of a few hundredths of an Å barely
move the input. A basis of Gaussians spread over ``[0, cutoff]`` turns the
distance into ``num_basis`` features of order one whatever the unit.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class GaussianRadialBasis(nn.Module):
    """``[E]`` distances -> ``[E, num_basis]`` features ``exp(-((d - mu_k) / width)²)``.

    The centres ``mu_k`` are evenly spaced on ``[0, cutoff]`` and ``width`` is
    their spacing, so neighbouring Gaussians overlap and the features vary
    smoothly with ``d``; beyond ``cutoff`` they decay to zero. Holds no weights.

    Args:
        num_basis: number of Gaussians, at least 2.
        cutoff: last centre, in the unit of the distances.
    """

    def __init__(self, num_basis: int, cutoff: float) -> None:
        super().__init__()
        if num_basis < 2:
            raise ValueError(f"num_basis must be >= 2, got {num_basis}")
        if not cutoff > 0:
            raise ValueError(f"cutoff must be positive, got {cutoff}")
        self.num_basis = int(num_basis)
        self.width = float(cutoff) / (num_basis - 1)
        self.register_buffer("centres", torch.linspace(0.0, float(cutoff), num_basis), persistent=False)

    def forward(self, distance: Tensor) -> Tensor:
        centres = self.centres.to(distance.dtype)
        return torch.exp(-(((distance[:, None] - centres) / self.width) ** 2))
