#!/usr/bin/env python
"""How well a backbone checkpoint denoises real structures, noise level by noise level.

Noises validation segments to a given per-coordinate noise (``sigma / alpha``, in
Å), asks the network once for the noise, and prints for each level:
(a self-conditioned network is asked twice, the second time with the clean estimate of
the first, as half of its training batches are)

- ``eps MSE``: noise-prediction error per coordinate (1 = no better than guessing 0);
- ``x0 RMSD``: Å distance of the predicted clean atoms from the truth, next to that of
  the noisy input (``input``), so ``x0 < input`` means the network removes noise;
- ``N-CA``: mean ± std of the predicted N-CA bond (ideal 1.459 Å).

The low-noise rows decide bond lengths and angles of samples; the high-noise rows
decide the fold. Schedules differ in which ``t`` gives a noise level, so checkpoints
trained under different schedules are compared here at equal noise.

Usage: python scripts/denoising_error.py --ckpt CKPT [--data ../shared/data/proteins/db55]
           [--num-structures 16] [--noise 0.05,0.15,0.4,1.4,3,6,17] [--seed 0]
"""

from __future__ import annotations

import argparse
import math

import torch
from torch_geometric.data import Batch

from molgen.checkpoint import CheckpointError, load_checkpoint
from molgen.dataset_info import BackboneInfo
from molgen.diffusion.samplers import invert_log_snr
from molgen.diffusion.self_conditioning import is_self_conditioned, training_estimate
from molgen.graph_batch import remove_mean
from molgen.proteins.dataset import backbone_train_val


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--data", default="../shared/data/proteins/db55")
    parser.add_argument("--num-structures", type=int, default=16)
    parser.add_argument("--noise", default="0.05,0.15,0.4,1.4,3,6,17", help="comma-separated noise levels in Å")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    try:
        model = load_checkpoint(args.ckpt)
    except CheckpointError as err:
        raise SystemExit(f"error: {err}") from None
    info = model.info
    if not isinstance(info, BackboneInfo):
        raise SystemExit(f"error: {args.ckpt} is not a backbone model")
    crop = {} if info.max_length is None else {"max_length": info.max_length}
    _, val, _ = backbone_train_val(args.data, length_scale=info.length_scale, **crop)
    batch = Batch.from_data_list([val[i] for i in range(min(args.num_structures, len(val)))])
    scale, schedule = float(info.length_scale), model.diffusion.schedule
    clean = remove_mean(batch.pos, batch.batch)
    generator = torch.Generator().manual_seed(args.seed)

    def rmsd(pos: torch.Tensor) -> float:
        return float((pos - clean).square().sum(dim=1).mean().sqrt()) * scale

    print("| noise (Å) | t | eps MSE | input RMSD (Å) | x0 RMSD (Å) | N-CA (Å) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for noise in map(float, args.noise.split(",")):
        # sigma / alpha = noise (model units) <=> log-SNR = -2 log(noise).
        log_snr = torch.tensor(-2.0 * math.log(noise / scale), dtype=torch.float64)
        t = torch.full((batch.num_graphs,), float(invert_log_snr(schedule, log_snr)))
        pos_t, h_t, eps, _ = model.diffusion.add_noise(batch.pos, batch.h, t, batch.batch, generator)
        with torch.inference_mode():
            inputs, estimate = (pos_t, h_t, t, batch.batch), {}
            if is_self_conditioned(model.denoiser):
                estimate["self_condition"] = training_estimate(
                    model.denoiser, inputs, model.diffusion.self_condition_estimate, rate=1.0
                )
            eps_pred, _ = model.denoiser(*inputs, **estimate)
        eps_pred = remove_mean(eps_pred, batch.batch)
        per_node_t = t[batch.batch, None]
        x0 = model.diffusion.predict_clean(pos_t, eps_pred, per_node_t)
        n_ca = (x0.view(-1, 4, 3)[:, 0] - x0.view(-1, 4, 3)[:, 1]).norm(dim=1) * scale
        print(
            f"| {noise:g} | {float(t[0]):.4f} | {float((eps_pred - eps).square().mean()):.3f} "
            f"| {rmsd(pos_t / schedule.alpha(per_node_t)):.3f} | {rmsd(x0):.3f} "
            f"| {float(n_ca.mean()):.3f} ± {float(n_ca.std()):.3f} |"
        )


if __name__ == "__main__":
    main()
