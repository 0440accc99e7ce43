"""Base of the sampling-time wrappers of a denoiser (compiled, mixed precision).

A wrapper changes how the network runs, never what it computes from its
weights, so the sampler must still see the wrapped network's capabilities.
The wrapped module stays the owner of the weights (``.inner``), so ``.to()``,
``.eval()`` and parameter counts behave as before; wrappers nest.
"""

from __future__ import annotations

from torch import nn

__all__ = ["DenoiserWrapper"]


class DenoiserWrapper(nn.Module):
    """Hold ``inner`` and forward the flags the diffusion core reads from a denoiser."""

    def __init__(self, denoiser: nn.Module) -> None:
        super().__init__()
        self.inner = denoiser

    @property
    def fixed_part_input(self) -> bool:
        """Whether the wrapped network sees a fixed part (:mod:`molgen.diffusion.inpainting`)."""
        return bool(getattr(self.inner, "fixed_part_input", False))

    @property
    def self_conditioning(self) -> bool:
        """Whether the wrapped denoiser takes ``self_condition`` (:mod:`molgen.diffusion.self_conditioning`)."""
        return bool(getattr(self.inner, "self_conditioning", False))
