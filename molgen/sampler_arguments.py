"""The sampler's command-line options, shared by ``molgen sample`` and ``molgen evaluate-conditioning``.

:func:`add_sampler_arguments` declares them, :func:`given_options` collects the ones a user gave and
:func:`resolve_sampling` lays them over a model's recommended :class:`~molgen.sampling.SamplingConfig`
(its card's), refusing an option the chosen sampler does not take.
"""

from __future__ import annotations

import argparse
from typing import Any

from molgen.commands import positive_int

__all__ = ["SAMPLER_CHOICES", "add_sampler_arguments", "given_options", "option_value", "resolve_sampling"]

#: Samplers offered on the command line (`ancestral` is an alias of ddpm in the registry).
SAMPLER_CHOICES = ["ddpm", "ddim", "dpm-solver", "consistency"]
#: The sampler options of :func:`add_sampler_arguments`, as ``argparse`` destinations and sampler keywords.
OPTION_KEYS = (
    "eta",
    "noise_scale",
    "grid",
    "refine_steps",
    "refine_time",
    "polish_steps",
    "polish_time",
    "polish_average",
    "class_temperature",
    "constrained_decoding",
    "final_call",
    "refine_classes",
)
#: Options of models that generate bonds (categorical channels), refused for the others.
CLASS_OPTIONS = ("class_temperature", "constrained_decoding", "refine_classes")


def add_sampler_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``--steps``, ``--sampler`` and the sampler options (:data:`OPTION_KEYS`) to ``p``; each defaults to
    None, meaning "the model's recommendation"."""
    p.add_argument(
        "--steps",
        type=positive_int,
        default=None,
        help="reverse-diffusion steps (default: the shipped model's recommendation, 1000 for checkpoints); "
        "--sampler consistency: network calls in all, e.g. 1, 2 or 4",
    )
    p.add_argument(
        "--sampler",
        default=None,
        choices=SAMPLER_CHOICES,
        help="reverse-process sampler: ancestral ddpm, deterministic ddim, dpm-solver (DPM-Solver++(2M), "
        "good in few steps, e.g. --steps 50), or consistency (multistep consistency sampling of a distilled "
        "model, --steps 1 to 4; docs/distillation.md); default: the shipped model's recommendation, ddpm for "
        "checkpoints",
    )
    p.add_argument(
        "--eta",
        type=float,
        default=None,
        help="ddim and dpm-solver: noise scale in [0, 1]; 0 (default) is the deterministic ODE solver, 1 adds "
        "noise as ancestral sampling does (dpm-solver: SDE-DPM-Solver++(2M))",
    )
    p.add_argument(
        "--noise-scale",
        type=float,
        default=None,
        help="ddpm: factor in [0, 1] on the noise drawn at each step (default 1, the exact posterior); below 1 "
        "samples at low temperature, as backbone models such as FrameDiff and Genie do (on molgen's backbone "
        "model: fewer chain breaks, smaller and less diverse structures)",
    )
    p.add_argument(
        "--grid",
        choices=["time", "logsnr"],
        default=None,
        help="time grid of the sampler: uniform in t or in log-SNR (default: logsnr for dpm-solver, time otherwise)",
    )
    p.add_argument(
        "--refine-steps",
        type=int,
        nargs="+",
        default=None,
        help="after the last step, re-noise the coordinates to --refine-time and replace them by the network's clean "
        "prediction, this many times (one network call each; default 0). Sharpens bond lengths that few-step "
        "samplers leave coarse, e.g. --steps 49 --refine-steps 1; backbones gain from many, e.g. --steps 100 "
        "--refine-steps 100. Several counts with as many --refine-time values make a ladder of stages, e.g. "
        "--refine-steps 64 16 --refine-time 0.3 0.1 (docs/druglike.md)",
    )
    p.add_argument(
        "--refine-time",
        type=float,
        nargs="+",
        default=None,
        help="diffusion time in (0, 1) that --refine-steps re-noise to (default 0.02: about 0.03 A of noise for "
        "QM9 models); one per stage for a ladder",
    )
    p.add_argument(
        "--polish-steps",
        type=int,
        default=None,
        help="after the --refine-steps rounds, this many more re-noising to --polish-time (default 0): with "
        "class-refining rounds at a larger time, e.g. --refine-steps 16 --refine-time 0.1 --refine-classes "
        "--polish-steps 2, they restore the bond lengths that a clean prediction from t = 0.1 leaves coarse "
        "(docs/performance.md)",
    )
    p.add_argument(
        "--polish-time",
        type=float,
        default=None,
        help="diffusion time in (0, 1) that --polish-steps re-noise to (default 0.02)",
    )
    p.add_argument(
        "--polish-average",
        type=int,
        default=None,
        help="after all rounds, this many more network calls that each re-noise the final sample to --polish-time "
        "independently; the sample becomes the mean of their clean predictions (coordinates only; the bonds stay). "
        "Removes the noise one round leaves in the coordinates: on the drug model 8 take the median strain down by "
        "1 kcal/mol (default 0; docs/druglike.md)",
    )
    p.add_argument(
        "--refine-classes",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="models that generate bonds: each --refine-steps (and --polish-steps) round also re-noises the atom "
        "types, charges and bonds to its time and draws them again from the network's prediction on the nearly clean "
        "coordinates (default: the shipped model's recommendation, off for checkpoints; docs/distillation.md)",
    )
    p.add_argument(
        "--class-temperature",
        type=float,
        default=None,
        help="models that generate bonds: divide the predicted atom-type, charge and bond logits by this before "
        "each step's draw; below 1 (e.g. 0.5) sharpens them, which helps few-step samplers (default 1)",
    )
    p.add_argument(
        "--constrained-decoding",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="models that generate bonds: repair the final bond draw so that no atom exceeds its element's "
        "largest valence, lowering the bonds whose lowering costs the model the least likelihood "
        "(docs/bonds.md); --no-constrained-decoding keeps the bonds as drawn (default: the shipped model's "
        "recommendation, off for checkpoints)",
    )
    p.add_argument(
        "--final-call",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="after the last step has reached t = 0, call the network once more for its clean prediction "
        "(default); --no-final-call returns the last step's state, one call fewer and nearly the same sample "
        "(a difference of about 0.005 times the predicted noise): what few-step distilled samplers use "
        "(docs/distillation.md). Not for --sampler consistency, whose last call is its last step",
    )


def option_value(text: str) -> bool | int | float | str | list[int | float]:
    """A sampler option's value written as text in a benchmark's cell (``refine_classes=true``,
    ``refine_steps=16``, ``eta=0.5``, ``grid=time``, ``refine_time=0.3,0.1``): a flag, a whole number, a number,
    a comma-separated list of numbers, or the text itself."""
    if "," in text:
        return [option_value(item) for item in text.split(",")]
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for number in (int, float):
        try:
            return number(text)
        except ValueError:
            pass
    return text


def given_options(opts: argparse.Namespace, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """The sampler options the user gave (:data:`OPTION_KEYS` and ``extra``, e.g. ``("guidance",)``), their values
    checked against their ranges before any model loads.

    Raises:
        ValueError: ``"--refine-time must be in (0, 1), ..."``: the first value out of its range, named as its flag.
    """
    from molgen.diffusion.samplers import check_option_values

    given = {key: getattr(opts, key) for key in OPTION_KEYS + extra if getattr(opts, key, None) is not None}
    # a flag given one value (``--refine-steps 16``) is that number, as a card writes it
    given = {key: value[0] if isinstance(value, list) and len(value) == 1 else value for key, value in given.items()}
    try:
        check_option_values(given)
    except ValueError as err:
        raise ValueError("--" + str(err).replace("_", "-", 1)) from None
    return given


def resolve_sampling(model: Any, opts: argparse.Namespace, given: dict[str, Any]) -> Any:
    """``model.sampling`` (the card's recommendation) with ``--sampler``, ``--steps``, ``given`` and ``--precision``
    (where the command has it) laid over it.

    Raises:
        ValueError: ``--class-temperature`` for a model without categorical channels, or an option the resolved
            sampler does not take (naming the samplers that do).
    """
    from molgen.diffusion.samplers import sampler_options

    sampling = model.sampling.updated(opts.sampler, opts.steps, given, getattr(opts, "precision", None))
    for key in CLASS_OPTIONS:
        if key in given and not model.diffusion.has_classes:
            raise ValueError(f"--{key.replace('_', '-')} applies to models that generate bonds; this one does not")
    for key in given:
        if key not in CLASS_OPTIONS and key not in sampler_options(sampling.sampler):
            takers = " and ".join(name for name in SAMPLER_CHOICES if key in sampler_options(name))
            raise ValueError(f"--{key.replace('_', '-')} is an option of --sampler {takers}, not {sampling.sampler}")
    return sampling
