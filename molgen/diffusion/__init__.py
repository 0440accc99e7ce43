"""Domain-agnostic diffusion core: schedules, the processes, the sampling loop."""

from molgen.diffusion.gaussian import GaussianDiffusion, zero_com_noise
from molgen.diffusion.joint import JointDiffusion
from molgen.diffusion.process import DiffusionProcess, GraphState, Prediction
from molgen.diffusion.samplers import (
    AncestralSampler,
    ConsistencySampler,
    DDIMSampler,
    DPMSolverSampler,
    Sampler,
    make_sampler,
)
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
    "ConsistencySampler",
    "CosineSchedule",
    "DDIMSampler",
    "DPMSolverSampler",
    "DiffusionProcess",
    "GaussianDiffusion",
    "GraphState",
    "JointDiffusion",
    "LogLinearSchedule",
    "NoiseSchedule",
    "PolynomialSchedule",
    "Prediction",
    "Sampler",
    "make_sampler",
    "make_schedule",
    "schedule_from_dict",
    "zero_com_noise",
]
