#!/usr/bin/env python
"""What a backbone checkpoint restores of real chains noised part of the way (partial diffusion).

Takes held-out chains (dips by default), noises their coordinates (CA models) or their CA traces' virtual
angle features (internal-coordinate models) to a diffusion time ``t``, runs the sampler (``--sampler``:
ancestral ``ddpm`` or deterministic ``ddim``) from ``t`` to 0 (the grid points of ``--steps`` steps below
``t``, ``logsnr`` grid), decodes (the N, C and O atoms rebuilt) and prints per ``t`` the noise (Å of
coordinates, or the standard deviation of each angle feature in its own units) and, for the noised chains
decoded as they are ("noised": what the noise alone leaves) and for the restored ones, the DSSP helix /
strand / coil fractions beside the real chains' and the fraction of chains passing `molgen evaluate`'s
geometry checks. A model that has learnt secondary structure gives it back from
noise that blurs it (about 1 Å); one that has not returns coil. Compare with unconditional samples to
tell what the model lacks (local structure) from what the sampler loses.

``--chains DIR`` takes the chains of the structure files in a folder instead (e.g. another model's samples:
a cascade, one model's backbones finished by another from time ``t``); ``--out DIR`` writes the restored
chains of each ``t`` as PDB files under ``DIR/t<t>/``, for `molgen evaluate`.

Usage: python scripts/partial_diffusion.py --ckpt CKPT|MODEL [--times 0.1,0.2,0.3,0.5] [--num-chains 16]
           [--data ../shared/data/proteins/dips | --chains DIR] [--out DIR] [--steps 50] [--sampler ddpm]
           [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from molgen.checkpoint import CheckpointError
from molgen.diffusion.gaussian import zero_com_noise
from molgen.diffusion.process import GraphState
from molgen.graph_batch import node_batch, remove_mean
from molgen.proteins.dataset import benchmark_segments
from molgen.proteins.internal_coordinates import angle_features, ca_internal_coordinates
from molgen.proteins.metrics import dssp, secondary_structure_fractions, validate_backbone
from molgen.proteins.pdb import StructureError, read_backbone_folder, write_backbone_pdb
from molgen.sampling import SamplingConfig
from molgen.training.module import load_model_source

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "proteins"


def fractions(backbones) -> str:
    states = secondary_structure_fractions("".join(dssp(b) for b in backbones))
    return " / ".join(f"{100 * states[name]:4.1f}" for name in ("helix", "strand", "coil"))


def grid_from(sampler, t0: float) -> torch.Tensor:
    """``t0`` followed by the sampler's grid points below it: one network call per step and one for the
    final clean prediction, so ``len`` of it calls in all."""
    grid = sampler.timesteps()
    return torch.cat([torch.tensor([t0]), grid[grid < t0]])


def check_model(model) -> None:
    """Refuses models this diagnostic cannot noise: it serves CA traces, in coordinates or in angles."""
    if list(model.info.atom_types) != ["CA"] or model.info.node_vectors:
        raise SystemExit(
            "this diagnostic serves CA-trace checkpoints (experiment=backbone_ca or experiment=backbone_internal)"
        )


def noised(model, chains: list[np.ndarray], t0: float, generator: torch.Generator) -> GraphState:
    """``chains`` (``[L, 4, 3]`` Å) noised to time ``t0``: CA-trace models in their coordinates (model units, zero
    centre of mass), internal-coordinate models in their angle features."""
    check_model(model)
    info, domain = model.info, model.domain
    schedule = model.diffusion.gaussian.schedule
    t = torch.tensor(t0)
    alpha, sigma = schedule.alpha(t), schedule.sigma(t)
    sizes = torch.tensor([len(c) for c in chains])
    batch = node_batch(sizes)
    if info.internal_coordinates:
        features = [angle_features(*ca_internal_coordinates(c[:, 1])) for c in chains]
        clean = torch.from_numpy(np.concatenate(features)).float()
        noise = torch.randn(clean.shape, generator=generator)
        return GraphState(clean.new_zeros(len(clean), 0), alpha * clean + sigma * noise, batch, len(chains))
    clean = torch.cat([torch.from_numpy(c[:, 1]).float() for c in chains]) / float(info.length_scale)
    clean = remove_mean(clean, batch, len(chains))
    noisy = alpha * clean + sigma * zero_com_noise(clean, batch, generator)
    return GraphState(noisy, domain.condition(info, sizes), batch, len(chains))


def as_noised(model, state: GraphState, t0: float) -> list[np.ndarray]:
    """The noised chains decoded as they are (the diffused part divided by ``alpha(t0)``): what the noise alone
    leaves of the real chains' structure, the baseline of what the model restores."""
    alpha = model.diffusion.gaussian.schedule.alpha(torch.tensor(t0))
    h = state.h / alpha if model.info.internal_coordinates else state.h  # an angle model's pos is [N, 0]
    return model.domain.decode(model.info, state.replace(pos=state.pos / alpha, h=h))


@torch.inference_mode()
def restore(
    model, state: GraphState, t0: float, steps: int, generator: torch.Generator, sampler_name: str = "ddpm"
) -> list[np.ndarray]:
    """A :func:`noised` state at time ``t0`` denoised by the sampler's steps (ancestral ``ddpm`` or deterministic
    ``ddim``); decoded backbones ``[L, 4, 3]``."""
    check_model(model)
    sampler = SamplingConfig(sampler_name, steps, {"grid": "logsnr"}).make(model.diffusion)
    grid = grid_from(sampler, t0)
    predict = model.diffusion.predictor(model.denoiser, state)
    for t, s in zip(grid[:-1], grid[1:]):
        out = predict(state, t)
        pos, h = sampler.step(state.pos, state.h, out.eps_pos, out.eps_h, t, s, state.batch, generator)
        state = state.replace(pos=pos, h=h)
    state = sampler.finish(predict, state, grid[-1], generator, lambda state, _: state)
    return model.domain.decode(model.info, state)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True, help="a checkpoint file or a shipped model's name")
    parser.add_argument("--times", default="0.1,0.2,0.3,0.5", help="diffusion times to noise to (default %(default)s)")
    parser.add_argument("--num-chains", type=int, default=16)
    parser.add_argument("--lengths", default="60-128", help="chain lengths to take (default %(default)s)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data", type=Path, default=SHARED / "dips", help="held-out chains (default %(default)s)")
    source.add_argument("--chains", type=Path, help="a folder of structure files whose chains to take instead")
    parser.add_argument("--out", type=Path, help="write the restored chains of each t under OUT/t<t>/")
    parser.add_argument("--steps", type=int, default=50, help="the DDPM grid whose points below t are used")
    parser.add_argument("--sampler", choices=("ddpm", "ddim"), default="ddpm", help="default %(default)s")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        model = load_model_source(args.ckpt, "--ckpt")
    except CheckpointError as err:
        raise SystemExit(f"error: {err}") from None
    low, high = (int(x) for x in args.lengths.split("-"))
    try:
        if args.chains:
            read = read_backbone_folder(args.chains, progress=False)[0]
            chains = [np.array(c.coords) for c in read if low <= len(c.coords) <= high][: args.num_chains]
            if not chains:
                raise ValueError(f"no chains of {low}-{high} residues in {args.chains}")
        else:
            chains = benchmark_segments(args.data, args.num_chains, (low, high))
    except (ValueError, StructureError) as err:
        raise SystemExit(f"error: {err}") from None
    generator = torch.Generator().manual_seed(args.seed)
    scale = float(model.info.length_scale)
    schedule = model.diffusion.gaussian.schedule
    sampler = SamplingConfig(args.sampler, args.steps, {"grid": "logsnr"}).make(model.diffusion)
    print(f"{len(chains)} chains of {(args.chains or args.data).name}, {sum(len(c) for c in chains)} residues")
    unit = "features" if model.info.internal_coordinates else "A"
    print(f"{'t':>5} {'noise (' + unit + ')':>14} {'calls':>5}  {'':8s} helix / strand / coil %   passing")

    def row(name: str, noise: str, calls: str, what: str, backbones) -> None:
        passing = np.mean([validate_backbone(b).passes for b in backbones])
        print(f"{name:>5} {noise:>14} {calls:>5}  {what:8s} {fractions(backbones):22s}  {passing:6.1%}")

    row("real", "", "", "", chains)
    for t0 in (float(x) for x in args.times.split(",")):
        t = torch.tensor(t0)
        noise = float(schedule.sigma(t) / schedule.alpha(t)) * (1.0 if model.info.internal_coordinates else scale)
        state = noised(model, chains, t0, generator)
        row(f"{t0:.2f}", f"{noise:.2f}", "0", "noised", as_noised(model, state, t0))
        backbones = restore(model, state, t0, args.steps, generator, args.sampler)
        row("", "", str(len(grid_from(sampler, t0))), "restored", backbones)
        if args.out:
            folder = args.out / f"t{t0:g}"
            folder.mkdir(parents=True, exist_ok=True)
            for i, backbone in enumerate(backbones):
                write_backbone_pdb(folder / f"restored_{i:04d}.pdb", backbone, remarks=[f"restored from t = {t0:g}"])


if __name__ == "__main__":
    main()
