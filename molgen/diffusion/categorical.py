"""Discrete diffusion of categorical variables with transitions toward the data marginals.

One :class:`CategoricalDiffusion` describes one channel of ``K`` classes (for
example atom types, formal charges or bond orders) whose items are noised
independently. The forward process (Austin et al. 2021; DiGress, Vignac et
al. 2023; MiDi, Vignac et al. 2023) keeps an item with probability
``abar_t`` and otherwise redraws it from the channel's marginal ``m`` (the
class frequencies of the training data)::

    q(x_t | x_0) = Cat(abar_t * onehot(x_0) + (1 - abar_t) * m)

It converges to ``m`` itself, the prior the reverse chain starts from. The
step from ``s`` to ``t > s`` is the same kind of transition with
``abar_{t|s} = abar_t / abar_s``, so the posterior of one reverse step has a
closed form (:meth:`CategoricalDiffusion.posterior`): for the current class
``j = x_t`` and a distribution ``p(x_0)`` predicted by the network,

    p(x_s = i | x_t = j) = sum_k p(x_0 = k) q(x_t = j | x_s = i) q(x_s = i | x_0 = k) / q(x_t = j | x_0 = k)
                         = A_i * (abar_s * w_i + (1 - abar_s) * m_i * sum_k w_k)

with ``A_i = q(x_t = j | x_s = i) = abar_{t|s} [i = j] + (1 - abar_{t|s}) m_j``
and ``w_k = p(x_0 = k) / q(x_t = j | x_0 = k)``; O(K) per item.

Time ``t`` in [0, 1] is shared with the Gaussian part of a joint model. The
signal fraction is ``abar_t = schedule.alpha_sq(t) ** power``, with any
:class:`~molgen.diffusion.schedules.NoiseSchedule` (e.g. cosine) and a
per-channel exponent ``power`` (MiDi's "adaptive" schedule: a larger power
destroys the channel earlier in the forward process, so that the reverse
process settles it later). Because schedules keep ``alpha_sq`` within
``[precision, 1 - precision]``, ``abar_1`` is ``precision ** power`` (the
prior is the marginal up to that weight) and ``abar_0`` is just below 1.

Nothing here knows about chemistry: items are rows of a long tensor of
class indices, whatever they stand for.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from molgen.diffusion.schedules import NoiseSchedule

__all__ = ["CategoricalDiffusion", "sample_categorical"]


def sample_categorical(probs: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One class index per row of ``probs`` [M, K] (rows sum to 1), by inverting the CDF: [M] long.

    Draws exactly one uniform number per row from ``generator``, so the number
    of random draws does not depend on the probabilities.
    """
    u = torch.rand(probs.shape[0], 1, generator=generator, device=probs.device, dtype=probs.dtype)
    cdf = probs.cumsum(dim=-1)
    index = (cdf < u * cdf[:, -1:]).sum(dim=-1)  # scaled by the total: robust to rows summing to 1 +- eps
    return index.clamp(max=probs.shape[1] - 1)


class CategoricalDiffusion:
    """Marginal-transition discrete diffusion of one categorical channel.

    Args:
        marginals: ``[K]`` class frequencies of the data (non-negative, any
            scale; normalised here). Classes with zero frequency are given
            ``min_prob`` so that every class stays reachable and the
            posterior never divides by zero.
        schedule: provides ``alpha_sq(t)``; ``abar_t = alpha_sq(t) ** power``.
        power: exponent of the schedule (> 0).
        min_prob: floor of each marginal before renormalising.
    """

    def __init__(
        self, marginals: Sequence[float] | Tensor, schedule: NoiseSchedule, power: float = 1.0, min_prob: float = 1e-6
    ) -> None:
        m = torch.as_tensor(marginals, dtype=torch.float64).flatten()
        if m.numel() < 2 or not torch.isfinite(m).all() or (m < 0).any() or m.sum() <= 0:
            raise ValueError(
                f"marginals must be >= 2 finite non-negative numbers with a positive sum, got {m.tolist()}"
            )
        if power <= 0:
            raise ValueError(f"power must be positive, got {power}")
        m = m / m.sum()
        m = m.clamp(min=min_prob)
        self._marginals = m / m.sum()
        self.schedule = schedule
        self.power = float(power)

    @property
    def num_classes(self) -> int:
        return self._marginals.numel()

    def marginals(self, like: Tensor | None = None) -> Tensor:
        """``[K]`` prior probabilities, on ``like``'s device and floating dtype (float64 on the CPU without it)."""
        if like is None:
            return self._marginals.clone()
        dtype = like.dtype if like.is_floating_point() else torch.get_default_dtype()
        return self._marginals.to(device=like.device, dtype=dtype)

    def abar(self, t: Tensor) -> Tensor:
        """Probability ``abar_t`` that an item is still its clean class at time ``t`` (same shape)."""
        return self.schedule.alpha_sq(t) ** self.power

    # ----- forward process -------------------------------------------------
    def forward_probs(self, x0: Tensor, t: Tensor) -> Tensor:
        """``q(x_t | x_0)`` as ``[M, K]`` probabilities; ``x0`` [M] long, ``t`` [M] float."""
        m = self.marginals(t)
        abar = self.abar(t)[:, None]
        return abar * F.one_hot(x0, self.num_classes).to(t.dtype) + (1.0 - abar) * m

    def add_noise(self, x0: Tensor, t: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Sample ``x_t ~ q(x_t | x_0)``: ``[M]`` long; ``t`` [M] float (one uniform draw per item)."""
        return sample_categorical(self.forward_probs(x0, t), generator)

    def renoise(self, x_s: Tensor, s: Tensor, t: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Sample ``x_t ~ q(x_t | x_s)`` for ``s < t``: keep the class with probability
        ``abar_t / abar_s``, else draw from the marginals. ``[M]`` long; ``s``, ``t`` scalars or ``[M]``."""
        keep = (self.abar(t) / self.abar(s)).clamp(0.0, 1.0)
        keep = keep[:, None] if keep.dim() else keep
        probs = keep * F.one_hot(x_s, self.num_classes).to(keep.dtype) + (1 - keep) * self.marginals(keep)
        return sample_categorical(probs, generator)

    def sample_prior(
        self,
        num_items: int,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """``[num_items]`` long draws from the marginal, the limit of the forward process."""
        m = self._marginals.to(device=device, dtype=dtype)
        return sample_categorical(m.expand(num_items, -1), generator)

    # ----- reverse process -------------------------------------------------
    def posterior(self, x_t: Tensor, p0: Tensor, t: Tensor, s: Tensor) -> Tensor:
        """``p(x_s | x_t) = sum_k p0_k q(x_s | x_t, x_0 = k)`` for ``s < t``: ``[M, K]`` probabilities.

        Args:
            x_t: ``[M]`` long, current classes.
            p0: ``[M, K]`` predicted distribution of the clean class (rows sum to 1).
            t, s: times, broadcastable to ``[M]`` (e.g. 0-dim), ``s < t``.

        With ``p0`` one-hot on ``x_0`` this is the exact posterior
        ``q(x_s | x_t, x_0)`` of the forward process (Bayes' rule; see the
        module docstring for the closed form).
        """
        dtype = p0.dtype
        m = self.marginals(p0)
        t = torch.as_tensor(t, dtype=dtype, device=p0.device).expand(x_t.shape)
        s = torch.as_tensor(s, dtype=dtype, device=p0.device).expand(x_t.shape)
        abar_t, abar_s = self.abar(t)[:, None], self.abar(s)[:, None]
        abar_ts = abar_t / abar_s
        onehot = F.one_hot(x_t, self.num_classes).to(dtype)
        m_j = m[x_t][:, None]
        step = abar_ts * onehot + (1.0 - abar_ts) * m_j  # q(x_t = j | x_s = i), over i
        evidence = abar_t * onehot + (1.0 - abar_t) * m_j  # q(x_t = j | x_0 = k), over k
        w = p0 / evidence.clamp(min=torch.finfo(dtype).tiny)
        probs = step * (abar_s * w + (1.0 - abar_s) * m * w.sum(dim=-1, keepdim=True))
        return probs / probs.sum(dim=-1, keepdim=True).clamp(min=torch.finfo(dtype).tiny)

    def reverse_step(
        self,
        x_t: Tensor,
        logits: Tensor,
        t: Tensor,
        s: Tensor,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
    ) -> Tensor:
        """Sample ``x_s`` from :meth:`step_probs`: ``[M]`` long.

        ``temperature < 1`` sharpens the predicted clean classes. Each step draws
        every item independently, so with few, large steps an unsharpened ``p0``
        changes many mutually dependent classes (the bonds of one atom) at once.
        """
        return sample_categorical(self.step_probs(x_t, logits, t, s, temperature), generator)

    def step_probs(self, x_t: Tensor, logits: Tensor, t: Tensor, s: Tensor, temperature: float = 1.0) -> Tensor:
        """The reverse step's ``[M, K]`` probabilities: :meth:`posterior` with ``p0 = softmax(logits / temperature)``
        (computed in at least float32)."""
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        return self.posterior(x_t, torch.softmax(logits / temperature, dim=-1), t, s)

    # ----- training objective ---------------------------------------------
    @staticmethod
    def loss(logits: Tensor, x0: Tensor) -> Tensor:
        """Cross-entropy of the predicted clean class, per item: ``[M]``."""
        return F.cross_entropy(logits, x0, reduction="none")

    @staticmethod
    def divergence(logits: Tensor, target_logits: Tensor) -> Tensor:
        """``KL(softmax(target_logits) || softmax(logits))`` per item, ``[M]`` (both ``[M, K]``): the cross-entropy
        against another model's predicted clean classes less their entropy, 0 when the two agree (distillation)."""
        log_target = target_logits.log_softmax(dim=-1)
        return (log_target.exp() * (log_target - logits.log_softmax(dim=-1))).sum(dim=-1)

    def to_dict(self) -> dict:
        return {"marginals": self._marginals.tolist(), "power": self.power, "schedule": self.schedule.to_dict()}
