"""Inpainting quality of a model on the example scaffold and fragments, per sampler setting.

For each setting, samples ``--num-samples`` molecules with ``--fix data/examples/scaffold.sdf``
(``--num-atoms``) and ``--link data/examples/fragments.sdf`` (``--linker-atoms``) and prints the
fixed-part report (fixed RMSD, substructure kept, valid, linked) and the time.

Usage: python scripts/inpainting_quality.py [--model qm9 | --ckpt CKPT] [--num-samples 100] [--settings card,...]
A setting is ``card`` (the model card's sampler; with ``--ckpt``, the card of ``--model``, so that a model
fine-tuned from a shipped one is compared with the same sampler) or ``SAMPLER@STEPS``, followed by ``:rN`` for N
resampling jumps, ``:v`` for valence-constrained decoding and ``:OPTION=VALUE`` for any other sampler option
(e.g. ``card:r3:v``, ``card:refine_steps=16:refine_time=0.1:polish_steps=2``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import molgen
from molgen.checkpoint import load_checkpoint
from molgen.domains.molecules import fixed_part_report, format_fixed_part_report
from molgen.molecules.fragments import read_fragment
from molgen.sampler_arguments import option_value
from molgen.sampling import SamplingConfig, generate

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"


def sampling_of(setting: str, card: SamplingConfig) -> SamplingConfig:
    name, *suffixes = setting.split(":")
    if name == "card":
        config = card
    else:
        sampler, steps = name.split("@")
        config = SamplingConfig(sampler, int(steps))
    options: dict = {}
    for suffix in suffixes:
        if suffix == "v":
            options["constrained_decoding"] = True
        elif suffix.startswith("r") and suffix[1:].isdigit():
            options["resample"] = int(suffix[1:])
        elif "=" in suffix:
            key, value = suffix.split("=", 1)
            options[key] = option_value(value)
        else:
            raise SystemExit(f"unknown setting suffix {suffix!r} in {setting!r}: use :rN, :v or :OPTION=VALUE")
    return config.updated(options=options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="qm9", help="a shipped model; with --ckpt, whose card sampler `card` is")
    parser.add_argument("--ckpt", help="a checkpoint to measure instead, e.g. of experiment=qm9_fixed")
    parser.add_argument("--num-samples", type=int, default=100)
    parser.add_argument("--scaffold-atoms", type=int, default=14, help="--num-atoms for the scaffold (default 14)")
    parser.add_argument("--linker-atoms", type=int, default=11, help="GABA's middle CH2-CH2 plus the H (default 11)")
    parser.add_argument("--settings", default="card,card:r3,card:r10,ddpm@200,ddpm@200:r3")
    args = parser.parse_args()
    shipped = molgen.load_pretrained(args.model)
    model = load_checkpoint(args.ckpt) if args.ckpt else shipped
    scaffold, fragments = read_fragment(EXAMPLES / "scaffold.sdf"), read_fragment(EXAMPLES / "fragments.sdf")
    tasks = [
        ("fix", scaffold, args.scaffold_atoms),
        ("link", fragments, fragments.num_atoms + args.linker_atoms),
    ]
    for setting in args.settings.split(","):
        sampling = sampling_of(setting, shipped.sampling)
        for task, fragment, atoms in tasks:
            start = time.perf_counter()
            molecules = generate(model, args.num_samples, sampling, fixed=fragment, num_atoms=atoms, progress=False)
            seconds = time.perf_counter() - start
            report = fixed_part_report(molecules, fragment)
            print(f"== {task} {setting} ({sampling.label}, {args.num_samples} samples, {seconds:.0f} s)")
            print(format_fixed_part_report(report))


if __name__ == "__main__":
    main()
