"""Self-conditioning (Chen, Zhang & Hinton 2022): the denoiser also sees its own previous estimate.

A self-conditioned denoiser takes one more keyword, ``self_condition``: ``[N, 3]``
zero-CoM clean positions it predicted before, in the units of ``pos``, or None
(no estimate yet). Its ``self_conditioning`` attribute is True.

- **Sampling** (:class:`EstimateFeedback`) feeds each call the clean prediction
  of the previous call, at no extra network call. Each step then refines an
  estimate of the whole structure rather than starting again from the noisy
  input, which backbone models (RFdiffusion, FrameFlow, Genie2) rely on for
  globally consistent folds.
- **Training** (:func:`training_estimate`) must match both uses: for half of
  the batches the network first predicts without an estimate, with no
  gradient, and is trained on that prediction as its estimate; the other half
  get none, as the first sampling step does.

Only position estimates are fed back; features, when diffused, are not.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from molgen.graph_batch import remove_mean

__all__ = [
    "ESTIMATE_RATE",
    "EstimateFeedback",
    "clean_estimate",
    "is_self_conditioned",
    "training_estimate",
]

ESTIMATE_RATE = 0.5
"""Fraction of training batches that get the network's own estimate (0.5, as Chen et al.)."""


class CleanPredictor(Protocol):
    """What turns a noise prediction into clean positions (a Gaussian diffusion)."""

    def predict_clean(self, z_t: Tensor, eps_pred: Tensor, t: Tensor) -> Tensor: ...


def is_self_conditioned(denoiser: torch.nn.Module) -> bool:
    """Whether ``denoiser`` takes the ``self_condition`` keyword (see the module docstring)."""
    return bool(getattr(denoiser, "self_conditioning", False))


def clean_estimate(
    diffusion: CleanPredictor, pos_t: Tensor, eps_pos: Tensor, t: Tensor, batch: Tensor, num_graphs: int
) -> Tensor:
    """Zero-CoM clean positions ``[N, 3]`` implied by the noise prediction ``eps_pos`` at time ``t``
    (a scalar, or ``[B]`` per graph), detached from the graph."""
    t_node = t if t.dim() == 0 else t[batch, None]
    eps_pos = remove_mean(eps_pos, batch, num_graphs)
    return remove_mean(diffusion.predict_clean(pos_t, eps_pos, t_node), batch, num_graphs).detach()


def training_estimate(
    denoiser: torch.nn.Module,
    diffusion: CleanPredictor,
    pos_t: Tensor,
    h_t: Tensor,
    t: Tensor,
    batch: Tensor,
    num_graphs: int,
    generator: torch.Generator | None = None,
    rate: float = ESTIMATE_RATE,
) -> Tensor | None:
    """The estimate a training batch conditions on: with probability ``rate`` the denoiser's own
    clean prediction ``[N, 3]`` from ``(pos_t, h_t, t [B])``, made without an estimate and without
    gradient; otherwise None. One draw from ``generator`` decides (``rate=1``: always, e.g. to
    measure the second call at one noise level)."""
    if float(torch.rand((), generator=generator, device=pos_t.device)) >= rate:
        return None
    with torch.no_grad():
        eps_pos, _ = denoiser(pos_t, h_t, t, batch, self_condition=None)
    return clean_estimate(diffusion, pos_t, eps_pos, t, batch, num_graphs)


class EstimateFeedback:
    """Calls a denoiser on one batch of graphs as ``(pos_t, h_t, t) -> (eps_pos, eps_h)``
    with a scalar ``t``, feeding a self-conditioned denoiser its previous clean estimate.

    Any other denoiser is called plainly. The first call has no estimate; each
    call stores the one the next call receives, so a sampler's loop, final
    clean prediction and refinement rounds share one chain of estimates.

    Args:
        denoiser: ``(pos [N, 3], h [N, F], t [B], batch [N], **kw) -> (eps_pos, eps_h)``.
        diffusion: turns the noise prediction into the clean estimate.
        batch: ``[N]`` sorted graph index; num_graphs: ``B``.
    """

    def __init__(self, denoiser: torch.nn.Module, diffusion: CleanPredictor, batch: Tensor, num_graphs: int):
        self.denoiser = denoiser
        self.diffusion = diffusion
        self.batch = batch
        self.num_graphs = num_graphs
        self.self_conditioned = is_self_conditioned(denoiser)
        self.estimate: Tensor | None = None

    def __call__(self, pos_t: Tensor, h_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        t_graph = t.expand(self.num_graphs)
        if not self.self_conditioned:
            return self.denoiser(pos_t, h_t, t_graph, self.batch)
        eps_pos, eps_h = self.denoiser(pos_t, h_t, t_graph, self.batch, self_condition=self.estimate)
        self.estimate = clean_estimate(self.diffusion, pos_t, eps_pos, t, self.batch, self.num_graphs)
        return eps_pos, eps_h
