#!/usr/bin/env python
"""What a backbone checkpoint restores of real chains noised part of the way (partial diffusion).

Takes held-out chains (dips by default), noises their coordinates to a diffusion time ``t``, runs the
ancestral sampler from ``t`` to 0 (the grid points of ``--steps`` DDPM steps below ``t``, ``logsnr``
grid, full noise), decodes (CA models: the N, C and O atoms rebuilt) and prints per ``t``: the noise in
Å, the DSSP helix / strand / coil fractions beside the real chains', and the fraction of chains passing
`molgen evaluate`'s geometry checks. A model that has learnt secondary structure gives it back from
noise that blurs it (about 1 Å); one that has not returns coil. Compare with unconditional samples to
tell what the model lacks (local structure) from what the sampler loses.

Usage: python scripts/partial_diffusion.py --ckpt CKPT [--times 0.1,0.2,0.3,0.5] [--num-chains 16]
           [--data ../shared/data/proteins/dips] [--steps 50] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from molgen.checkpoint import CheckpointError, load_checkpoint
from molgen.diffusion.gaussian import zero_com_noise
from molgen.diffusion.process import GraphState
from molgen.graph_batch import node_batch, remove_mean
from molgen.proteins.dataset import benchmark_segments
from molgen.proteins.metrics import dssp, secondary_structure_fractions, validate_backbone
from molgen.sampling import SamplingConfig

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "proteins"


def fractions(backbones) -> str:
    states = secondary_structure_fractions("".join(dssp(b) for b in backbones))
    return " / ".join(f"{100 * states[name]:4.1f}" for name in ("helix", "strand", "coil"))


def grid_from(sampler, t0: float) -> torch.Tensor:
    """``t0`` followed by the sampler's grid points below it: one network call per step and one for the
    final clean prediction, so ``len`` of it calls in all."""
    grid = sampler.timesteps()
    return torch.cat([torch.tensor([t0]), grid[grid < t0]])


@torch.inference_mode()
def restore(model, chains: list[np.ndarray], t0: float, steps: int, generator: torch.Generator) -> list[np.ndarray]:
    """``chains`` noised to time ``t0`` and denoised by ancestral steps; decoded backbones ``[L, 4, 3]``."""
    info, process, domain = model.info, model.diffusion, model.domain
    if list(info.atom_types) != ["CA"] or info.node_vectors:
        raise SystemExit("this diagnostic serves CA-trace checkpoints (experiment=backbone_ca)")
    sizes = torch.tensor([len(c) for c in chains])
    batch = node_batch(sizes)
    clean = torch.cat([torch.from_numpy(c[:, 1]).float() for c in chains]) / float(info.length_scale)
    clean = remove_mean(clean, batch, len(chains))
    sampler = SamplingConfig("ddpm", steps, {"grid": "logsnr"}).make(process)
    grid = grid_from(sampler, t0)
    schedule = process.gaussian.schedule
    t = grid[0]
    noisy = schedule.alpha(t) * clean + schedule.sigma(t) * zero_com_noise(clean, batch, generator)
    state = GraphState(noisy, domain.condition(info, sizes), batch, len(chains))
    predict = process.predictor(model.denoiser, state)
    for t, s in zip(grid[:-1], grid[1:]):
        out = predict(state, t)
        pos, h = sampler.step(state.pos, state.h, out.eps_pos, out.eps_h, t, s, batch, generator)
        state = state.replace(pos=pos, h=h)
    state = sampler.finish(predict, state, grid[-1], generator, lambda state, _: state)
    return domain.decode(info, state)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--times", default="0.1,0.2,0.3,0.5", help="diffusion times to noise to (default %(default)s)")
    parser.add_argument("--num-chains", type=int, default=16)
    parser.add_argument("--lengths", default="60-128", help="chain lengths to take (default %(default)s)")
    parser.add_argument("--data", type=Path, default=SHARED / "dips")
    parser.add_argument("--steps", type=int, default=50, help="the DDPM grid whose points below t are used")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        model = load_checkpoint(args.ckpt)
    except CheckpointError as err:
        raise SystemExit(f"error: {err}") from None
    low, high = (int(x) for x in args.lengths.split("-"))
    try:
        chains = benchmark_segments(args.data, args.num_chains, (low, high))
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    generator = torch.Generator().manual_seed(args.seed)
    scale = float(model.info.length_scale)
    schedule = model.diffusion.gaussian.schedule
    sampler = SamplingConfig("ddpm", args.steps, {"grid": "logsnr"}).make(model.diffusion)
    print(f"{len(chains)} chains of {args.data.name}, {sum(len(c) for c in chains)} residues")
    print(f"{'t':>5} {'noise (A)':>9} {'calls':>5}  helix / strand / coil %   passing")
    real_passing = np.mean([validate_backbone(c).passes for c in chains])
    print(f"{'real':>5} {'':>9} {'':>5}  {fractions(chains):22s}  {real_passing:6.1%}")
    for t0 in (float(x) for x in args.times.split(",")):
        t = torch.tensor(t0)
        noise = float(schedule.sigma(t) / schedule.alpha(t)) * scale
        backbones = restore(model, chains, t0, args.steps, generator)
        calls = len(grid_from(sampler, t0))
        passing = np.mean([validate_backbone(b).passes for b in backbones])
        print(f"{t0:5.2f} {noise:9.2f} {calls:5d}  {fractions(backbones):22s}  {passing:6.1%}")


if __name__ == "__main__":
    main()
