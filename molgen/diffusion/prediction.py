"""What the network's output means: the noise ``eps`` or the velocity ``v``.

The diffusion core, its loss and every sampler speak ``eps``. A network trained
to predict ``v = alpha_t * eps - sigma_t * x`` (Salimans & Ho 2022) is wrapped
in :class:`VelocityDenoiser`, which converts its output to

    eps_hat = sigma_t * z_t + alpha_t * v_hat

(exact for a variance-preserving process, ``alpha**2 + sigma**2 = 1``), so the
rest of the library is unchanged. A joint network (positions plus class logits,
:mod:`molgen.diffusion.joint`) is wrapped in :class:`JointVelocityDenoiser`: its
positions are converted the same way and its logits pass through.

Why it matters: at high noise the clean prediction is
``x_hat = (z_t - sigma_t * eps_hat) / alpha_t``, which multiplies any error of an
eps-network by ``1 / alpha_t`` (about 300 at the end of the log-linear schedule).
A v-network's clean prediction is ``alpha_t * z_t - sigma_t * v_hat``, whose
error stays the network's own. Trained with the v-MSE (see
:meth:`GaussianDiffusion.loss`), which equals the eps-MSE times
``1 / alpha_t**2`` = eps-MSE + clean-MSE, high noise gets the weight of the
clean prediction rather than a vanishing one.
"""

from __future__ import annotations

import torch
from torch import Tensor

from molgen.diffusion.schedules import NoiseSchedule
from molgen.graph_batch import remove_mean


class NetworkWrapper(torch.nn.Module):
    """Holds a denoiser ``net`` and forwards the flags the sampling loop reads from it (base of the wrappers
    the core puts around a network: the v-to-eps conversion here, energy guidance)."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    @property
    def fixed_part_input(self) -> bool:
        """Whether the wrapped network sees a fixed part (:mod:`molgen.diffusion.inpainting`)."""
        return bool(getattr(self.net, "fixed_part_input", False))

    @property
    def self_conditioning(self) -> bool:
        """Whether the wrapped network takes ``self_condition`` (:mod:`molgen.diffusion.self_conditioning`)."""
        return bool(getattr(self.net, "self_conditioning", False))


class VelocityDenoiser(NetworkWrapper):
    """Wraps a network that predicts ``v`` so that it returns ``eps``.

    Args:
        net: ``(pos [N, 3], h [N, F], t [B], batch [N]) -> (v_pos [N, 3], v_h [N, F])``.
        schedule: the diffusion's alpha/sigma of t.
        diffuse_features: if False, ``h`` is clean conditioning and the
            network's feature output is passed through untouched (it is unused).
    """

    def __init__(self, net: torch.nn.Module, schedule: NoiseSchedule, diffuse_features: bool) -> None:
        super().__init__(net)
        self.schedule = schedule
        self.diffuse_features = diffuse_features

    def forward(self, pos: Tensor, h: Tensor, t: Tensor, batch: Tensor, **estimate) -> tuple[Tensor, Tensor]:
        """``(eps_pos, eps_h)``; ``estimate`` (``self_condition=...``) goes to the network unchanged."""
        v_pos, v_h = self.net(pos, h, t, batch, **estimate)
        alpha, sigma = self._alpha_sigma(t, batch, pos.dtype)
        eps_h = sigma * h + alpha * v_h if self.diffuse_features else v_h
        return self._position_noise(pos, v_pos, t, batch), eps_h

    def _alpha_sigma(self, t: Tensor, batch: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """``alpha_t``, ``sigma_t`` per node, ``[N, 1]`` each."""
        return self.schedule.alpha(t)[batch, None].to(dtype), self.schedule.sigma(t)[batch, None].to(dtype)

    def _position_noise(self, pos: Tensor, v_pos: Tensor, t: Tensor, batch: Tensor) -> Tensor:
        """``eps = sigma_t * z_t + alpha_t * v`` for the positions, ``[N, 3]``."""
        alpha, sigma = self._alpha_sigma(t, batch, pos.dtype)
        # z_t has zero CoM inside the diffusion; centring keeps the wrapper translation-invariant anyway.
        return sigma * remove_mean(pos, batch, t.shape[0]) + alpha * v_pos


class JointVelocityDenoiser(VelocityDenoiser):
    """Wraps a joint network that predicts the positions' ``v`` (and class logits) so that it returns ``eps``.

    Args:
        net: ``(pos [N, 3], node_features, edge_features, pair_index, t [B], batch [N]) ->
            (v_pos [N, 3], node_logits, edge_logits)`` (:class:`~molgen.diffusion.joint.JointDenoiser`).
        schedule: the positions' alpha/sigma of t.
    """

    def __init__(self, net: torch.nn.Module, schedule: NoiseSchedule) -> None:
        super().__init__(net, schedule, diffuse_features=False)

    def forward(
        self, pos: Tensor, node_features: Tensor, edge_features: Tensor, pair_index: Tensor, t: Tensor, batch: Tensor,
        **inputs,
    ) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
        """``(eps_pos, node_logits, edge_logits)``; ``inputs`` (``condition``, ``fixed``, ``self_condition``) go
        to the network unchanged."""
        v_pos, node_logits, edge_logits = self.net(pos, node_features, edge_features, pair_index, t, batch, **inputs)
        return self._position_noise(pos, v_pos, t, batch), node_logits, edge_logits
