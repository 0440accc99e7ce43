"""A denoiser run under bfloat16 autocast, returning float32.

Sampling spends nearly all its time in the network's matrix products, and
CPUs with AVX512-BF16 (and any recent GPU) run those about twice as fast in
bfloat16. Only the network runs in mixed precision: its outputs are cast back
to float32, so the sampler's updates, the categorical posteriors and the
coordinates themselves stay in float32 (a bfloat16 coordinate of 20 Å would
carry 0.06 Å of rounding). ``torch.cdist`` of the kNN search stays in float32
under autocast. The effect on sample quality is measured per model
(docs/performance.md); float32 stays the default unless a model card recommends
bfloat16 (``sampling.precision``, :class:`molgen.sampling.SamplingConfig`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from molgen.nn.wrapped import DenoiserWrapper

__all__ = ["MixedPrecisionDenoiser", "runs_in_bf16"]


class MixedPrecisionDenoiser(DenoiserWrapper):
    """Call the wrapped denoiser under ``torch.autocast(bfloat16)`` on its inputs' device; outputs as float32.

    The denoiser returns a tensor or a tuple of tensors (positions' prediction, then features or
    class logits); floating-point outputs come back as float32, integer ones unchanged.
    """

    def forward(self, *args, **kwargs):
        device = next((a.device for a in (*args, *kwargs.values()) if isinstance(a, Tensor)), torch.device("cpu"))
        with torch.autocast(device.type, dtype=torch.bfloat16):
            out = self.inner(*args, **kwargs)
        if isinstance(out, tuple):
            return tuple(_as_float32(o) for o in out)
        return _as_float32(out)


def runs_in_bf16(denoiser: torch.nn.Module) -> bool:
    """Whether ``denoiser`` or a wrapper inside it (``.inner``, e.g. under a compiled one) is a
    :class:`MixedPrecisionDenoiser`."""
    while denoiser is not None:
        if isinstance(denoiser, MixedPrecisionDenoiser):
            return True
        denoiser = getattr(denoiser, "inner", None)
    return False


def _as_float32(x):
    return x.float() if isinstance(x, Tensor) and x.is_floating_point() else x
