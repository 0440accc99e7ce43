"""The energy-guidance options of `molgen sample` and `molgen evaluate-conditioning`, parsed once.

Energy guidance (:mod:`molgen.diffusion.energy_guidance`) steers a conditional bond model's samples
towards their targets with a property predictor (docs/conditioning.md, "Energy guidance").
"""

from __future__ import annotations

import argparse
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from molgen.diffusion.energy_guidance import EnergyGuidance

__all__ = ["add_energy_guidance_arguments", "check_energy_options", "energy_guidance", "energy_label"]


def add_energy_guidance_arguments(p: argparse.ArgumentParser, several_scales: bool = False) -> None:
    """``--energy-predictor``, ``--energy-scale`` (``several_scales``: a list, one benchmark row each),
    ``--energy-class-scale``, ``--energy-min-time``, ``--energy-max-time``, ``--energy-max-step`` and
    ``--energy-through-network``."""
    from molgen.diffusion.energy_guidance import DEFAULT_CLASS_SCALE, DEFAULT_MAX_TIME, DEFAULT_MIN_TIME, DEFAULT_SCALE

    p.add_argument(
        "--energy-predictor",
        metavar="PREDICTOR",
        help="with targets: also steer every sample towards them with this property predictor (a checkpoint of "
        "`molgen train experiment=qm9_property` or a shipped one, e.g. qm9-guide), moving each call's clean "
        "estimate down the predictor's squared error (energy guidance, docs/conditioning.md)",
    )
    p.add_argument(
        "--energy-scale",
        type=float,
        nargs="+" if several_scales else None,
        default=None,
        help="with --energy-predictor: gradient step of the clean positions, A^2 per unit of squared normalised "
        f"error (default {DEFAULT_SCALE:g}{'; several: one row each' if several_scales else ''})",
    )
    p.add_argument(
        "--energy-class-scale",
        type=float,
        default=None,
        help="with --energy-predictor: tilt of the atom-type logits by the error's gradient "
        f"(default {DEFAULT_CLASS_SCALE:g})",
    )
    p.add_argument(
        "--energy-min-time",
        type=float,
        default=None,
        help="with --energy-predictor: leave the calls at t <= this unguided, so that the last rounds restore bond "
        f"lengths (e.g. 0.05 with polishing rounds at 0.02; default {DEFAULT_MIN_TIME:g})",
    )
    p.add_argument(
        "--energy-max-time",
        type=float,
        default=None,
        help=f"with --energy-predictor: guide only the calls at t <= this (default {DEFAULT_MAX_TIME:g})",
    )
    p.add_argument(
        "--energy-max-step",
        type=float,
        default=None,
        help="with --energy-predictor: the longest step (A) an atom's clean position takes in one guided call "
        "(default: no limit)",
    )
    p.add_argument(
        "--energy-through-network",
        action="store_true",
        default=None,
        help="with --energy-predictor: take the positions' gradient back through the generator's network (with "
        "respect to its noisy input), so that directions the network restores (bond lengths) get no step; one "
        "backward pass per guided call",
    )


def check_energy_options(opts: Any) -> None:
    """Refuse energy options without a predictor, and scales or times out of range (one line, before any load)."""
    names = (
        "energy_scale",
        "energy_class_scale",
        "energy_min_time",
        "energy_max_time",
        "energy_max_step",
        "energy_through_network",
    )
    given = [name for name in names if getattr(opts, name) is not None]
    if given and not opts.energy_predictor:
        raise ValueError(f"--{given[0].replace('_', '-')} applies only with --energy-predictor")
    scales = opts.energy_scale if isinstance(opts.energy_scale, list) else [opts.energy_scale]
    for value in [*scales, opts.energy_class_scale]:
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise ValueError(f"energy guidance scales must be finite numbers >= 0, got {value}")
    if opts.energy_max_time is not None and not 0 < opts.energy_max_time <= 1:
        raise ValueError(f"--energy-max-time must be in (0, 1], got {opts.energy_max_time}")
    if opts.energy_max_step is not None and not (math.isfinite(opts.energy_max_step) and opts.energy_max_step > 0):
        raise ValueError(f"--energy-max-step must be a finite number > 0 (A), got {opts.energy_max_step}")
    if opts.energy_min_time is not None and not 0 <= opts.energy_min_time < 1:
        raise ValueError(f"--energy-min-time must be in [0, 1), got {opts.energy_min_time}")


def energy_guidance(predictor: Any, model: Any, opts: Any, scale: float | None = None) -> EnergyGuidance:
    """The guidance of ``opts`` with a loaded predictor (:class:`~molgen.property_prediction.TrainedPredictor`)
    for ``model`` (a conditional bond model); ``scale`` overrides ``opts.energy_scale``. ValueError (one line)
    if the two share no property or the model has no atom-type channel."""
    from molgen.diffusion.energy_guidance import (
        DEFAULT_CLASS_SCALE,
        DEFAULT_MAX_TIME,
        DEFAULT_MIN_TIME,
        DEFAULT_SCALE,
        EnergyGuidance,
    )

    chosen = opts.energy_scale if scale is None else scale
    return EnergyGuidance(
        predictor.guidance_energy(model.info),
        DEFAULT_SCALE if chosen is None else float(chosen),
        DEFAULT_CLASS_SCALE if opts.energy_class_scale is None else float(opts.energy_class_scale),
        DEFAULT_MAX_TIME if opts.energy_max_time is None else float(opts.energy_max_time),
        DEFAULT_MIN_TIME if opts.energy_min_time is None else float(opts.energy_min_time),
        through_network=bool(opts.energy_through_network),
        max_step=opts.energy_max_step,
    )


def energy_label(source: str, guidance: EnergyGuidance) -> str:
    """``"qm9-guide scale=0.5 class_scale=0 min_time=0.05 max_time=0.3"`` (and ``" max_step=0.1"``,
    ``" through_network"`` where they apply): what an SD tag or a report records."""
    times = f"min_time={guidance.min_time:g} max_time={guidance.max_time:g}"
    label = f"{source} scale={guidance.scale:g} class_scale={guidance.class_scale:g} {times}"
    if guidance.max_step is not None:
        label += f" max_step={guidance.max_step:g}"
    return label + " through_network" if guidance.through_network else label
