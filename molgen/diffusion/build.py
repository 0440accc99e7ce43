"""Build a diffusion process from its config (the ``diffusion`` group of a run, kept in checkpoints)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from molgen.diffusion.gaussian import GaussianDiffusion
from molgen.diffusion.joint import JointDiffusion, build_joint_diffusion
from molgen.diffusion.process import DiffusionProcess
from molgen.diffusion.schedules import schedule_from_dict
from molgen.diffusion.structure_loss import StructureLoss, StructureLossFn
from molgen.registry import Registry

__all__ = ["PROCESSES", "build_diffusion"]

ProcessBuilder = Callable[[dict[str, Any], dict[str, Any] | None, Mapping[str, StructureLossFn]], DiffusionProcess]
"""``(config, categorical, structure_losses) -> process``."""

#: ``diffusion.kind`` -> its :data:`ProcessBuilder`.
PROCESSES: Registry[ProcessBuilder] = Registry("diffusion kind")


@PROCESSES.register("gaussian")
def _gaussian(
    config: dict[str, Any], categorical: dict[str, Any] | None, structure_losses: Mapping[str, StructureLossFn]
) -> GaussianDiffusion:
    return GaussianDiffusion(
        schedule_from_dict(config["schedule"]),
        diffuse_features=bool(config.get("diffuse_features", True)),
        prediction=config.get("prediction", "eps"),
        structure_loss=_structure_loss(config, structure_losses),
    )


def _structure_loss(config: dict[str, Any], available: Mapping[str, StructureLossFn]) -> StructureLoss | None:
    """The loss ``diffusion.structure_loss`` names (with its ``structure_loss_weight`` and
    ``structure_loss_max_time``) among those the caller offers; None when it names none."""
    name = config.get("structure_loss")
    if not name:
        return None
    if name not in available:
        raise ValueError(f"unknown diffusion.structure_loss {name!r}; choose from {sorted(available)}")
    return StructureLoss(
        name, available[name], float(config["structure_loss_weight"]), float(config["structure_loss_max_time"])
    )


@PROCESSES.register("joint")
def _joint(
    config: dict[str, Any], categorical: dict[str, Any] | None, structure_losses: Mapping[str, StructureLossFn]
) -> JointDiffusion:
    if not categorical:
        raise ValueError(
            "diffusion=joint generates categorical channels (e.g. bonds) that this dataset does not provide; "
            "use data with bonds (e.g. experiment=qm9_bonds)"
        )
    return build_joint_diffusion(
        schedule_from_dict(config["schedule"]),
        schedule_from_dict(config["categorical_schedule"]),
        {c["name"]: c["marginals"] for c in categorical["node"]},
        (categorical["edge"]["name"], categorical["edge"]["marginals"]),
        powers=config.get("categorical_power"),
        loss_weights=config.get("loss_weights"),
        prediction=config.get("prediction", "eps"),
    )


def build_diffusion(
    config: dict[str, Any],
    categorical: dict[str, Any] | None = None,
    structure_losses: Mapping[str, StructureLossFn] | None = None,
) -> DiffusionProcess:
    """The process of a ``diffusion`` config.

    ``kind: gaussian`` (the default; configs from before joint models have no
    ``kind``): ``{"schedule": {"name": ..., **kwargs}, "diffuse_features": bool,
    "prediction": "eps" | "v"}`` (``prediction`` defaults to ``eps``).
    ``kind: joint``: ``schedule`` (positions), ``categorical_schedule``,
    ``categorical_power``, ``loss_weights`` (per channel name) and ``prediction`` (as above); the
    channels, their classes and marginals come from the data's ``categorical``
    description (``{"node": [channel, ...], "edge": channel}``, see
    :class:`~molgen.dataset_info.MoleculeInfo`).
    A Gaussian config may name a ``structure_loss`` (with ``structure_loss_weight`` and
    ``structure_loss_max_time``, :mod:`molgen.diffusion.structure_loss`) among ``structure_losses``,
    which the model builder offers (the core knows no domain's structure).
    """
    return PROCESSES[config.get("kind", "gaussian")](config, categorical, structure_losses or {})
