"""Domain-agnostic diffusion core: schedules, the Gaussian process, samplers."""

from molgen.diffusion.gaussian import GaussianDiffusion, remove_mean, zero_com_noise
from molgen.diffusion.samplers import AncestralSampler, DDIMSampler, DPMSolverSampler, Sampler, make_sampler
from molgen.diffusion.schedules import (
    CosineSchedule,
    LogLinearSchedule,
    NoiseSchedule,
    PolynomialSchedule,
    make_schedule,
    schedule_from_dict,
)

__all__ = [
    "AncestralSampler",
    "CosineSchedule",
    "LogLinearSchedule",
    "DDIMSampler",
    "DPMSolverSampler",
    "GaussianDiffusion",
    "NoiseSchedule",
    "PolynomialSchedule",
    "Sampler",
    "make_sampler",
    "make_schedule",
    "remove_mean",
    "schedule_from_dict",
    "zero_com_noise",
]
