"""Self-conditioning (Chen, Zhang & Hinton 2022): the denoiser also sees its own previous estimate.

A self-conditioned denoiser takes one more keyword, ``self_condition``: the
clean estimate it made before, or None (no estimate yet). Its
``self_conditioning`` attribute is True. What an estimate holds is the
process's business, derived from the denoiser's inputs and output by the
process's ``self_condition_estimate`` (an :data:`Estimator`):

- Gaussian diffusion: a :class:`GaussianEstimate`, the zero-CoM clean
  positions in the units of ``pos`` (:func:`clean_estimate`) and, where the
  process diffuses features, the clean features (all an internal-coordinate
  backbone model generates);
- the joint process (bond-generating denoisers): a :class:`JointEstimate`,
  those positions plus the predicted probabilities of the clean classes of the
  node and pair channels (:func:`class_probabilities`), as in the
  bond-generating FlowMol3 and SemlaFlow.

Both uses below are the same for every process:

- **Sampling** (:class:`EstimateFeedback`) feeds each call the clean prediction
  of the previous call, at no extra network call. Each step then refines an
  estimate of the whole structure rather than starting again from the noisy
  input, which backbone models (RFdiffusion, FrameFlow, Genie2) rely on for
  globally consistent folds.
- **Training** (:func:`training_estimate`) must match both uses: for half of
  the batches the network first predicts without an estimate, with no
  gradient, and is trained on that prediction as its estimate; the other half
  get none, as the first sampling step does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor

from molgen.graph_batch import remove_mean

__all__ = [
    "ESTIMATE_RATE",
    "EstimateFeedback",
    "Estimator",
    "GaussianEstimate",
    "JointEstimate",
    "class_probabilities",
    "clean_estimate",
    "is_self_conditioned",
    "training_estimate",
]

ESTIMATE_RATE = 0.5
"""Fraction of training batches that get the network's own estimate (0.5, as Chen et al.)."""

Estimator = Callable[[tuple, Any], Any]
"""``(inputs, output) -> estimate``: the detached clean estimate implied by one denoiser call on the
positional ``inputs`` that returned ``output`` (a process's ``self_condition_estimate``)."""


class CleanPredictor(Protocol):
    """What turns a noise prediction into clean positions (a Gaussian diffusion)."""

    def predict_clean(self, z_t: Tensor, eps_pred: Tensor, t: Tensor) -> Tensor: ...


class GaussianEstimate(NamedTuple):
    """A Gaussian denoiser's clean estimate of a batch (see the module docstring).

    ``pos`` [N, D] zero-CoM clean positions (units of ``pos``; ``D = 0`` for a layout without coordinates);
    ``h`` [N, F] the clean diffused features, or None where the process does not diffuse them.
    """

    pos: Tensor
    h: Tensor | None


class JointEstimate(NamedTuple):
    """A joint denoiser's clean estimate of a batch (see the module docstring).

    ``pos`` [N, 3] zero-CoM clean positions (units of ``pos``); ``node_probs`` [N, sum K_c]
    the predicted clean-class probabilities of the node channels, concatenated in channel
    order (each channel's block sums to 1); ``edge_probs`` [P, K_e] those of the pair channel.
    """

    pos: Tensor
    node_probs: Tensor
    edge_probs: Tensor


def is_self_conditioned(denoiser: torch.nn.Module) -> bool:
    """Whether ``denoiser`` takes the ``self_condition`` keyword (see the module docstring)."""
    return bool(getattr(denoiser, "self_conditioning", False))


def clean_estimate(
    diffusion: CleanPredictor, pos_t: Tensor, eps_pos: Tensor, t: Tensor, batch: Tensor, num_graphs: int
) -> Tensor:
    """Zero-CoM clean positions ``[N, 3]`` implied by the noise prediction ``eps_pos`` at times ``t`` [B],
    detached from the graph."""
    eps_pos = remove_mean(eps_pos, batch, num_graphs)
    return remove_mean(diffusion.predict_clean(pos_t, eps_pos, t[batch, None]), batch, num_graphs).detach()


def class_probabilities(logits: Tensor, sizes: Sequence[int]) -> Tensor:
    """Softmax of each channel's block of ``logits`` [M, sum sizes] (channels concatenated in order),
    same shape, detached from the graph."""
    return torch.cat([block.softmax(dim=-1) for block in logits.split(list(sizes), dim=-1)], dim=-1).detach()


def training_estimate(
    denoiser: torch.nn.Module,
    inputs: tuple,
    estimator: Estimator,
    generator: torch.Generator | None = None,
    rate: float = ESTIMATE_RATE,
) -> Any:
    """The estimate a training batch conditions on: with probability ``rate`` the denoiser's own clean
    estimate from its positional ``inputs`` (``inputs[0]`` the noisy positions), made without an
    estimate and without gradient and read by ``estimator``; otherwise None. One draw from
    ``generator`` decides (``rate=1``: always, e.g. to measure the second call at one noise level)."""
    if float(torch.rand((), generator=generator, device=inputs[0].device)) >= rate:
        return None
    with torch.no_grad():
        return estimator(inputs, denoiser(*inputs, self_condition=None))


class EstimateFeedback:
    """Calls a denoiser on one batch of graphs, feeding a self-conditioned denoiser its previous
    clean estimate.

    Any other denoiser is called plainly. The first call has no estimate; each
    call stores the one the next call receives, so a sampler's loop, final
    clean prediction and refinement rounds share one chain of estimates.

    Args:
        denoiser: called as ``denoiser(*inputs)``, or ``denoiser(*inputs, self_condition=estimate)``
            when self-conditioned.
        estimator: reads the estimate the next call receives from the inputs and output of this one.
    """

    def __init__(self, denoiser: torch.nn.Module, estimator: Estimator):
        self.denoiser = denoiser
        self.estimator = estimator
        self.self_conditioned = is_self_conditioned(denoiser)
        self.estimate: Any = None

    def __call__(self, *inputs: Tensor) -> Any:
        if not self.self_conditioned:
            return self.denoiser(*inputs)
        output = self.denoiser(*inputs, self_condition=self.estimate)
        self.estimate = self.estimator(inputs, output)
        return output
