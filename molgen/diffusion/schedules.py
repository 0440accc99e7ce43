"""Noise schedules of the variance-preserving diffusion, in continuous time.

A schedule maps a time ``t`` in [0, 1] (0 = data, 1 = noise) to ``alpha_t``
and ``sigma_t`` with ``alpha_t**2 + sigma_t**2 = 1``: the noised state is
``z_t = alpha_t * x + sigma_t * eps``. Every schedule here is defined by a
raw signal curve ``a(t)`` that falls from 1 to 0; the curve is squeezed into
``[precision, 1 - precision]``::

    alpha_t**2 = (1 - 2 * precision) * a(t) + precision

so that neither end is exactly noise-free or signal-free (log-SNR stays
finite). With ``precision = 1e-5`` and ``a(t) = (1 - t**2)**2`` this is EDM's
"polynomial_2" schedule evaluated in continuous time (EDM tabulates it on
its 1000-step grid and additionally clips the per-step ratio of alphas,
which only matters for coarse grids).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from molgen.registry import Registry


class NoiseSchedule:
    """Base class: subclasses implement :meth:`raw_signal` ``a(t)``.

    Args:
        precision: the floor of ``alpha**2`` and ``sigma**2`` (dimensionless).
    """

    name: str = "base"

    def __init__(self, precision: float = 1e-5) -> None:
        if not 0.0 < precision < 0.5:
            raise ValueError(f"precision must be in (0, 0.5), got {precision}")
        self.precision = precision

    def raw_signal(self, t: Tensor) -> Tensor:
        """Signal curve ``a(t)``, 1 at t=0 and 0 at t=1, non-increasing."""
        raise NotImplementedError

    def alpha_sq(self, t: Tensor) -> Tensor:
        """``alpha_t**2``; same shape as ``t``."""
        t = t.clamp(0.0, 1.0)
        return (1.0 - 2.0 * self.precision) * self.raw_signal(t) + self.precision

    def alpha(self, t: Tensor) -> Tensor:
        return self.alpha_sq(t).sqrt()

    def sigma(self, t: Tensor) -> Tensor:
        return (1.0 - self.alpha_sq(t)).sqrt()

    def log_snr(self, t: Tensor) -> Tensor:
        """``log(alpha_t**2 / sigma_t**2)``, strictly decreasing in ``t``."""
        a2 = self.alpha_sq(t)
        return torch.log(a2) - torch.log1p(-a2)

    def to_dict(self) -> dict:
        return {"name": self.name, "precision": self.precision}


class PolynomialSchedule(NoiseSchedule):
    """EDM's polynomial schedule: ``a(t) = (1 - t**power)**2``."""

    name = "polynomial"

    def __init__(self, power: float = 2.0, precision: float = 1e-5) -> None:
        super().__init__(precision)
        if power <= 0:
            raise ValueError(f"power must be positive, got {power}")
        self.power = power

    def raw_signal(self, t: Tensor) -> Tensor:
        return (1.0 - t**self.power) ** 2

    def to_dict(self) -> dict:
        return {**super().to_dict(), "power": self.power}


class CosineSchedule(NoiseSchedule):
    """Nichol & Dhariwal's cosine schedule: ``a(t) = f(t) / f(0)`` with
    ``f(t) = cos(pi/2 * (t + offset) / (1 + offset))**2``."""

    name = "cosine"

    def __init__(self, offset: float = 0.008, precision: float = 1e-5) -> None:
        super().__init__(precision)
        self.offset = offset

    def raw_signal(self, t: Tensor) -> Tensor:
        def f(u: Tensor | float) -> Tensor:
            return torch.cos(torch.as_tensor(u) * 0.5 * math.pi) ** 2

        s = self.offset
        return (f((t + s) / (1.0 + s)) / f(s / (1.0 + s))).clamp(0.0, 1.0)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "offset": self.offset}


class LogLinearSchedule(NoiseSchedule):
    """Log-SNR falling linearly from ``log_snr_max`` to ``log_snr_min``: every noise
    scale gets the same share of time (of training draws and of sampler steps).

    ``a(t) = (S(l(t)) - S(l_min)) / (S(l_max) - S(l_min))`` with ``S`` the logistic
    function and ``l(t) = l_max + t (l_min - l_max)``, so ``a`` runs exactly from 1 to 0
    and ``alpha**2 / sigma**2 ≈ exp(l(t))`` between the ends. The per-coordinate
    noise-to-signal ratio ``sigma / alpha`` at ``t`` is about ``exp(-l(t) / 2)`` in data
    units: for backbones in nm, ``l_max = 10`` starts at 0.07 Å, where bond lengths are
    refined, and ``l_min = -8`` reaches 55 nm, far beyond a domain's radius. The
    polynomial schedule, by contrast, gives only ~3 % of its time to noise below 0.5 Å
    in nm units.

    Pinning ``a(1) = 0`` bends the last stretch of time. With a high ``l_min`` the bend is
    abrupt: at ``l_min = -4``, ``alpha`` grows 11-fold over the first of 200 uniform steps
    (3.3-fold for the polynomial schedule, 2-fold at ``l_min = -8``), and a time-uniform
    ancestral sampler multiplies the network's error there by as much; a log-SNR grid
    (``grid="logsnr"``) avoids it.
    """

    name = "loglinear"

    def __init__(self, log_snr_max: float = 10.0, log_snr_min: float = -8.0, precision: float = 1e-5) -> None:
        super().__init__(precision)
        if not log_snr_max > log_snr_min:
            raise ValueError(f"need log_snr_max > log_snr_min, got {log_snr_max} and {log_snr_min}")
        self.log_snr_max, self.log_snr_min = float(log_snr_max), float(log_snr_min)
        # S(l_min) and S(l_max) - S(l_min): constants of the schedule, not of t.
        self._signal_floor = 1.0 / (1.0 + math.exp(-self.log_snr_min))
        self._signal_span = 1.0 / (1.0 + math.exp(-self.log_snr_max)) - self._signal_floor

    def raw_signal(self, t: Tensor) -> Tensor:
        log_snr = self.log_snr_max + t * (self.log_snr_min - self.log_snr_max)
        return (torch.sigmoid(log_snr) - self._signal_floor) / self._signal_span

    def to_dict(self) -> dict:
        return {**super().to_dict(), "log_snr_max": self.log_snr_max, "log_snr_min": self.log_snr_min}


SCHEDULES: Registry[type[NoiseSchedule]] = Registry("noise schedule")
for _schedule in (PolynomialSchedule, CosineSchedule, LogLinearSchedule):
    SCHEDULES.register(_schedule.name)(_schedule)


def make_schedule(name: str, **kwargs) -> NoiseSchedule:
    """Build a schedule by name (``polynomial``, ``cosine`` or ``loglinear``)."""
    return SCHEDULES[name](**kwargs)


def schedule_from_dict(config: dict) -> NoiseSchedule:
    """Inverse of :meth:`NoiseSchedule.to_dict`."""
    config = dict(config)
    return make_schedule(config.pop("name"), **config)
