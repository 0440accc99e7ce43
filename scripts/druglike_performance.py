#!/usr/bin/env python
"""Drug-like pipeline speed: conformer preparation, training throughput, sampling with export.

Prints (and with ``--json`` writes):

    prepare_mol_per_s        conformers prepared per second (ETKDGv3 + MMFF94s, 3 embeddings per
                             molecule, all cores), on MOSES test molecules in a fresh cache folder
    train_mol_per_s          training molecules per second of the experiment=drugs model (forward,
                             loss, backward, AdamW step; batch 64 of prepared MOSES molecules; the
                             threads torch is given)
    sample_100_seconds       `molgen sample` of 100 molecules with the checkpoint's sampler, hydrogens
                             placed and the SDF written, wall time of the command (median of --repeats)

Run on an idle machine; figures are medians. Needs ``molsets`` (``pip install --no-deps molsets``).

Usage: python scripts/druglike_performance.py [--ckpt CKPT | --model drugs] [--precision fp32|bf16] [--skip-prepare]
           [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time

import torch


def prepare_rate(num_molecules: int) -> float:
    from molgen.molecules.drugs import prepare_drugs

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        prepare_drugs("test", num_molecules, folder, progress=False)
        return num_molecules / (time.perf_counter() - start)


def train_rate(steps: int, batch_size: int = 64) -> float:
    import molgen.conf  # noqa: F401 - importing registers the config schemas
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf
    from torch_geometric.loader import DataLoader

    from molgen.molecules.drugs import DrugsDataset
    from molgen.training.module import DiffusionModule

    with initialize_config_module("molgen.conf", version_base="1.3"):
        cfg = compose("config", overrides=["experiment=drugs"])
    data = DrugsDataset("valid", 1000, progress=False)
    info = data.info("drugs", remove_h=True, categorical=data.categorical_info())
    module = DiffusionModule(
        model=OmegaConf.to_container(cfg.model),
        diffusion=OmegaConf.to_container(cfg.diffusion),
        optim=OmegaConf.to_container(cfg.optim),
        dataset_info=info.to_dict(),
    )
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4)
    loader = iter(DataLoader(data, batch_size=batch_size, shuffle=True, drop_last=True))
    times = []
    for step in range(steps + 2):
        batch = next(loader)
        start = time.perf_counter()
        loss, _ = module._loss(batch)  # training_step's loss, without Lightning's logging
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step >= 2:  # the first steps warm up the allocator
            times.append(time.perf_counter() - start)
    return batch_size / statistics.median(times)


def sample_seconds(source: list[str], repeats: int) -> float:
    """Median wall time of `molgen sample ... --num-samples 100` (``source``: the model and any options)."""
    times = []
    with tempfile.TemporaryDirectory() as folder:
        for k in range(repeats):
            command = [sys.executable, "-m", "molgen.cli", "sample", *source, "--num-samples", "100"]
            command += ["--out", f"{folder}/s{k}.sdf", "--no-progress", "--seed", str(k)]
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--ckpt", help="a drugs checkpoint for the sampling figure")
    source.add_argument("--model", help="a shipped drugs model for the sampling figure")
    parser.add_argument("--prepare-molecules", type=int, default=500)
    parser.add_argument("--train-steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", choices=["fp32", "bf16"], help="the network's arithmetic (default: the card's)")
    parser.add_argument("--skip-prepare", action="store_true")
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args()

    figures = {"torch_threads": torch.get_num_threads()}
    if not args.skip_prepare:
        figures["prepare_mol_per_s"] = round(prepare_rate(args.prepare_molecules), 1)
    figures["train_mol_per_s"] = round(train_rate(args.train_steps), 1)
    if args.ckpt or args.model:
        source = ["--ckpt", args.ckpt] if args.ckpt else ["--model", args.model]
        source += ["--precision", args.precision] if args.precision else []
        figures["sample_100_seconds"] = round(sample_seconds(source, args.repeats), 1)
    for key, value in figures.items():
        print(f"{key:24s} {value}")
    if args.json_out:
        with open(args.json_out, "w") as handle:
            json.dump(figures, handle, indent=2)


if __name__ == "__main__":
    main()
