"""Energy guidance: steer sampling towards target properties with a separately trained regressor.

Classifier-free guidance (:mod:`molgen.diffusion.conditioning`) asks the generator alone to follow
its condition. Energy guidance (EEGSDE, Bao et al. 2023) adds a differentiable regressor ``g`` of
the properties, trained on its own (here: on the generator's training data, never on held-out data
it is judged with). At every network call with ``t <= max_time`` the call's clean estimate is
scored with the energy, per graph,

    E = 1/2 * sum_k m_k (g_k(x0_hat, p) - c_k)^2        (normalised units; m: the given properties)

where ``x0_hat = (z_t - sigma_t eps_hat) / alpha_t`` is the clean-position estimate and ``p`` the
predicted clean-class probabilities of the node channels, and the call's outputs are changed:

- **positions**: the clean estimate takes one gradient step down the energy,
  ``x0_hat' = x0_hat - scale * dE/dx0_hat``, i.e. ``eps' = eps + scale * (alpha_t / sigma_t) * dE/dx0_hat``;
- **node classes**: each channel's clean-class logits are tilted by the energy's gradient with
  respect to its probabilities, ``logits' = logits - class_scale * dE/dp`` (first-order regressor
  guidance on discrete states, as DiGress's).

With ``through_network`` the position gradient is taken with respect to the noisy input ``z_t``,
back through the denoiser (as DPS and universal guidance do), ``g = alpha_t * dE(x0_hat(z_t), p(z_t))/dz_t``,
and used in place of ``dE/dx0_hat`` above (the two agree where the network ignores its input). The
denoiser's Jacobian damps the directions it restores by itself (bond lengths, angles), so the step
moves the estimate along the data rather than bending it; it costs one backward pass through the
network per guided call. ``max_step`` bounds how far any atom's clean estimate moves in one call (a
trust region: at large scales a step that leaves the data makes the next gradient larger still).

Every sampler then takes its own step from the changed outputs, so guidance composes with any
sampler, with classifier-free guidance (it wraps the guided network) and with refinement rounds.
``max_time`` keeps it off where the clean estimate is a blur a regressor cannot read; ``min_time``
leaves the last calls (e.g. polishing rounds) to restore the local geometry. Nothing
here knows about chemistry: the energy is a callable (for molecules,
:meth:`molgen.property_prediction.TrainedPredictor.guidance_energy`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from molgen.diffusion.conditioning import GraphCondition
from molgen.diffusion.prediction import NetworkWrapper
from molgen.diffusion.schedules import NoiseSchedule
from molgen.diffusion.self_conditioning import class_probabilities

__all__ = [
    "DEFAULT_CLASS_SCALE",
    "DEFAULT_MAX_TIME",
    "DEFAULT_MIN_TIME",
    "DEFAULT_SCALE",
    "EnergyGuidance",
    "EnergyGuidedDenoiser",
    "PropertyEnergy",
]

#: Defaults of :class:`EnergyGuidance` (and of the commands' ``--energy-*`` options).
DEFAULT_SCALE, DEFAULT_CLASS_SCALE, DEFAULT_MIN_TIME, DEFAULT_MAX_TIME = 0.5, 0.0, 0.05, 0.3


class PropertyEnergy(Protocol):
    """``energy(pos [N, 3], node_probabilities [N, sum K_c], batch [N], num_graphs, condition) -> [B]``.

    ``pos`` are clean-position estimates (Å, zero centre of mass per graph), ``node_probabilities``
    the clean-class probabilities of the node channels concatenated in column order, ``condition``
    the sampled graphs' targets (normalised as the generator's training data). Differentiable in
    ``pos`` and ``node_probabilities``; 0 for a graph without given properties.
    """

    def __call__(
        self, pos: Tensor, node_probabilities: Tensor, batch: Tensor, num_graphs: int, condition: GraphCondition
    ) -> Tensor: ...


@dataclass(frozen=True)
class EnergyGuidance:
    """What to steer with and how hard (module docstring).

    Attributes:
        energy: the per-graph energy of the targets (:class:`PropertyEnergy`).
        scale: the clean positions' gradient step, Å² per unit of energy; 0 leaves positions alone.
        class_scale: the node logits' tilt per unit of energy gradient; 0 leaves classes alone.
        min_time: guide only the calls at ``t > min_time`` (in [0, max_time)): calls nearer the end then
            restore the local geometry (bond lengths) the guidance may have bent, and what survives them is
            what the guidance changed for good (composition, shape).
        max_time: guide only the calls at ``t <= max_time`` (in (0, 1]).
        through_network: differentiate the energy through the denoiser, with respect to its noisy input,
            instead of at the clean estimate (module docstring).
        max_step: the longest step (Å) any atom's clean position takes in one call (longer ones are shortened,
            keeping their direction), or None for no limit: a trust region against run-away steps at large scales.
    """

    energy: PropertyEnergy
    scale: float = DEFAULT_SCALE
    class_scale: float = DEFAULT_CLASS_SCALE
    max_time: float = DEFAULT_MAX_TIME
    min_time: float = DEFAULT_MIN_TIME
    through_network: bool = False
    max_step: float | None = None

    def __post_init__(self) -> None:
        if not (self.scale >= 0 and self.class_scale >= 0):
            raise ValueError(f"guidance scales must be >= 0, got {self.scale} and {self.class_scale}")
        if not 0 < self.max_time <= 1:
            raise ValueError(f"max_time must be in (0, 1], got {self.max_time}")
        if not 0 <= self.min_time < self.max_time:
            raise ValueError(f"min_time must be in [0, max_time={self.max_time}), got {self.min_time}")
        if self.max_step is not None and not self.max_step > 0:
            raise ValueError(f"max_step must be > 0 (or None), got {self.max_step}")

    def wrap(self, denoiser: torch.nn.Module, schedule: NoiseSchedule, node_sizes: Sequence[int]) -> torch.nn.Module:
        """``denoiser`` (a joint denoiser returning ``(eps_pos, node_logits, edge_logits)``) steered by this."""
        return EnergyGuidedDenoiser(denoiser, self, schedule, node_sizes)


class EnergyGuidedDenoiser(NetworkWrapper):
    """A joint denoiser whose outputs are moved down :attr:`EnergyGuidance.energy` (module docstring).

    Called like the denoiser; calls without a ``condition`` (e.g. classifier-free guidance's free
    branch, or an unconditional batch) and calls outside ``min_time < t <= max_time`` pass through unchanged.
    The sampler reads the wrapped denoiser's flags (self-conditioning, fixed-part input) through it.
    """

    def __init__(
        self, denoiser: torch.nn.Module, guidance: EnergyGuidance, schedule: NoiseSchedule, node_sizes: Sequence[int]
    ) -> None:
        super().__init__(denoiser)
        self.guidance = guidance
        self.schedule = schedule
        self.node_sizes = list(node_sizes)

    def forward(
        self,
        pos: Tensor,
        node_features: Tensor,
        edge_features: Tensor,
        pair_index: Tensor,
        t: Tensor,
        batch: Tensor,
        *,
        condition: GraphCondition | None = None,
        **keywords: Any,
    ) -> tuple:
        guided = (t > self.guidance.min_time) & (t <= self.guidance.max_time)  # [B]
        if condition is None or not bool(guided.any()):
            return self.net(pos, node_features, edge_features, pair_index, t, batch, condition=condition, **keywords)
        alpha, sigma = self.schedule.alpha(t)[batch, None], self.schedule.sigma(t)[batch, None]
        inputs = (pos, node_features, edge_features, pair_index, t, batch)
        if self.guidance.through_network:
            (eps, node_logits, edge_logits), grad_pos, grad_probabilities = self._gradients_through_network(
                inputs, alpha, sigma, condition, keywords
            )
        else:
            eps, node_logits, edge_logits = self.net(*inputs, condition=condition, **keywords)
            clean = (pos - sigma * eps) / alpha
            probabilities = class_probabilities(node_logits, self.node_sizes)
            grad_pos, grad_probabilities = self._energy_gradients(clean, probabilities, batch, t.shape[0], condition)
        on = guided[batch, None].to(eps.dtype)
        eps = eps + on * (alpha / sigma) * self._position_step(grad_pos)
        node_logits = node_logits - on * self.guidance.class_scale * grad_probabilities
        return eps, node_logits, edge_logits

    def _position_step(self, grad_pos: Tensor) -> Tensor:
        """How far each clean position moves down the energy, ``[N, 3]`` Å: ``scale * grad``, at most ``max_step``."""
        step = self.guidance.scale * grad_pos
        if self.guidance.max_step is None:
            return step
        length = step.norm(dim=-1, keepdim=True)
        return step * (self.guidance.max_step / length.clamp_min(self.guidance.max_step))

    def _energy_gradients(
        self, clean: Tensor, probabilities: Tensor, batch: Tensor, num_graphs: int, condition: GraphCondition
    ) -> tuple[Tensor, Tensor]:
        """``dE/dx0_hat [N, 3]`` and ``dE/dp [N, sum K_c]`` of the summed per-graph energies (float32 or finer).

        Sampling runs under ``torch.inference_mode``; the energy's graph is built from fresh copies outside it.
        """
        dtype = torch.promote_types(clean.dtype, torch.float32)
        with torch.inference_mode(False), torch.enable_grad():
            pos = clean.detach().to(dtype).clone().requires_grad_(True)
            probs = probabilities.detach().to(dtype).clone().requires_grad_(True)
            energy = self.guidance.energy(
                pos, probs, batch.clone(), num_graphs, _ordinary(condition).to(pos.device, dtype)
            )
            grad_pos, grad_probs = torch.autograd.grad(energy.sum(), (pos, probs), allow_unused=True)
        return _or_zeros(grad_pos, pos).to(clean.dtype), _or_zeros(grad_probs, probs).to(clean.dtype)

    def _gradients_through_network(
        self,
        inputs: tuple[Tensor, ...],
        alpha: Tensor,
        sigma: Tensor,
        condition: GraphCondition,
        keywords: dict[str, Any],
    ) -> tuple[tuple[Tensor, Tensor, Tensor], Tensor, Tensor]:
        """The network's outputs, ``alpha_t * dE/dz_t [N, 3]`` back through the network, and ``dE/dp``
        (``alpha``, ``sigma``: ``[N, 1]`` per node).

        The network runs in its own dtype on ordinary copies of the (inference-mode) inputs, with the gradient on.
        """
        with torch.inference_mode(False), torch.enable_grad():
            pos, node_features, edge_features, pair_index, t, batch = _ordinary(inputs)
            alpha, sigma, condition = _ordinary((alpha, sigma, condition))
            z = pos.requires_grad_(True)
            outputs = self.net(
                z, node_features, edge_features, pair_index, t, batch, condition=condition, **_ordinary(keywords)
            )
            clean = (z - sigma * outputs[0]) / alpha
            probabilities = class_probabilities(outputs[1], self.node_sizes)
            if not probabilities.requires_grad:  # logits that do not depend on the input
                probabilities.requires_grad_(True)
            energy = self.guidance.energy(clean, probabilities, batch, t.shape[0], condition)
            grad_z, grad_probs = torch.autograd.grad(energy.sum(), (z, probabilities), allow_unused=True)
        outputs = tuple(output.detach() for output in outputs)
        return outputs, (alpha * _or_zeros(grad_z, z)).detach(), _or_zeros(grad_probs, probabilities).detach()


def _ordinary(value: Any) -> Any:
    """``value`` with every tensor in it (also inside tuples, named tuples, dicts and frozen dataclasses) replaced by
    an ordinary copy that autograd may save (inference-mode tensors may not be saved for backward)."""
    if isinstance(value, Tensor):
        return value.detach().clone()
    if isinstance(value, tuple):
        copies = [_ordinary(item) for item in value]
        return type(value)(*copies) if hasattr(value, "_fields") else tuple(copies)
    if isinstance(value, dict):
        return {key: _ordinary(item) for key, item in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(
            value, **{field.name: _ordinary(getattr(value, field.name)) for field in dataclasses.fields(value)}
        )
    return value


def _or_zeros(gradient: Tensor | None, like: Tensor) -> Tensor:
    """``gradient``, or zeros shaped as ``like`` where the energy did not depend on it."""
    return torch.zeros_like(like) if gradient is None else gradient
