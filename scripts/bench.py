#!/usr/bin/env python
"""Throughput benchmark: training and sampling speed of the molecule model.

Prints a table and optionally writes JSON (``--json out.json``):

    train_mol_per_s_small / _paper   training molecules/s (forward, loss,
                                     backward, AdamW step), batch 64 QM9
    train_peak_mem_mb_small / _paper peak memory (CUDA: allocator peak;
                                     CPU: process peak RSS) in MiB
    train_mol_per_s_small_bf16 / _paper_bf16
                                     the same step under bfloat16 autocast
                                     (what trainer.precision=bf16-mixed runs)
    sample_mol_per_s_50steps         DPM-Solver++(2M), 50 steps  } small config, batch of
    sample_mol_per_s_1000steps       ancestral (DDPM), 1000 steps } 100 QM9-size molecules
    sample_mol_per_s_4steps          4 network calls of the shipped ``qm9`` (the consistency
                                     sampler), a batch of 100 molecules of its histogram: the
                                     cost of a 4-call sampler of this network (no distilled
                                     model is shipped; these 4-call samples are poor)
    sample_mol_per_s_fast            the shipped ``qm9-fast`` preset with its card's sampler and
                                     arithmetic, the same batch; its network calls in
                                     ``sample_fast_network_calls``
    sample_backbones_per_s_len100    backbones of 100 residues per second: the
                                     shipped ``backbone`` model with its card's
                                     sampler (atoms rebuilt; an internal-coordinate
                                     model's clashes repaired as ``molgen sample``
                                     does), batch 16
    sample_backbones_per_s_len100_bf16
                                     the same with the network under bfloat16
                                     autocast (``molgen sample --precision bf16``)

Each configuration runs in its own subprocess so peak memory is its own.
Figures are medians over timed repetitions after warm-up; run on an idle
machine. Molecules are real QM9 training molecules when the QM9 cache or
qm9pack is available, otherwise the run stops with an error.

Usage: python scripts/bench.py [--quick] [--device cpu|cuda] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

CONFIGS = {
    "small": {"name": "egnn", "hidden_dim": 128, "num_layers": 6},
    "paper": {"name": "egnn", "hidden_dim": 256, "num_layers": 9},
}
DIFFUSION = {"schedule": {"name": "polynomial", "power": 2.0, "precision": 1e-5}, "diffuse_features": True}


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _peak_mem_mb(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def qm9_module(config: str, device: str):
    from molgen.molecules.qm9 import qm9_train_val
    from molgen.training.module import DiffusionModule

    train, _, info = qm9_train_val(subset=6400, val_subset=1)
    torch.manual_seed(0)
    module = DiffusionModule(CONFIGS[config], DIFFUSION, {"lr": 1e-4}, info.to_dict()).to(device)
    return module, train, info


def training_step(config: str, device: str, bf16: bool = False):
    """``(step, batches)``: ``step(batch)`` runs forward, loss, backward and an AdamW step on a
    batch of 64 QM9 molecules from ``batches`` (100 shuffled batches, moved to ``device``)."""
    from torch_geometric.loader import DataLoader

    module, train, _ = qm9_module(config, device)
    optimizer = module.configure_optimizers()  # the optimizer `molgen train` uses
    loader = DataLoader(train, batch_size=64, shuffle=True)
    batches = (data.to(device) for data in loader)

    def step(data) -> None:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            per_graph, _ = module.diffusion.loss(module.denoiser, module.diffusion.state_from_batch(data))
            loss = per_graph.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step, batches


def bench_train(config: str, device: str, steps: int, bf16: bool = False, warmup: int = 3) -> dict:
    step, batches = training_step(config, device, bf16)
    times = []
    for i in range(warmup + steps):
        data = next(batches)
        sync(device)
        start = time.perf_counter()
        step(data)
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"s_per_batch": median, "mol_per_s": 64 / median, "peak_mem_mb": _peak_mem_mb(device)}


def time_sampling(
    denoiser, process, info, device: str, sampler_name: str, num_steps: int, repeats: int, options: dict | None = None
) -> dict:
    """Median seconds to sample 100 molecules drawn from ``info``'s size histogram (seed 0), after a warm-up;
    ``options`` go to the sampler."""
    from molgen.diffusion import make_sampler
    from molgen.sampling import sample_from_histogram

    sizes = sample_from_histogram(info.size_histogram, 100, seed=0)

    def run(steps: int) -> float:
        sampler = make_sampler(sampler_name, process, steps, **(options or {}))
        sync(device)
        start = time.perf_counter()
        sampler.sample(
            denoiser,
            sizes,
            info.num_features,
            device=device,
            generator=torch.Generator(device).manual_seed(0),
        )
        sync(device)
        return time.perf_counter() - start

    run(3)  # warm-up
    median = statistics.median(run(num_steps) for _ in range(repeats))
    calls = make_sampler(sampler_name, process, num_steps, **(options or {})).network_calls
    return {"s_per_batch": median, "mol_per_s": 100 / median, "s_per_step": median / calls}


def bench_sample(device: str, sampler_name: str, num_steps: int, repeats: int) -> dict:
    module, _, info = qm9_module("small", device)
    module.eval()
    return time_sampling(module.denoiser, module.diffusion, info, device, sampler_name, num_steps, repeats)


def bench_few_steps(device: str, num_steps: int, repeats: int) -> dict:
    """``num_steps`` calls of the shipped ``qm9`` network with the consistency sampler: what any
    ``num_steps``-call sampler of that network costs."""
    from molgen.pretrained import load_pretrained

    model = load_pretrained("qm9", device)
    return time_sampling(model.denoiser, model.diffusion, model.info, device, "consistency", num_steps, repeats)


def bench_fast_preset(device: str, repeats: int) -> dict:
    """The shipped ``qm9-fast`` preset as ``molgen sample --model qm9-fast`` runs it: its card's sampler,
    options and precision."""
    from molgen.pretrained import load_pretrained

    model = load_pretrained("qm9-fast", device)
    sampling = model.sampling
    network = sampling.network(model.denoiser)  # under bfloat16 autocast when the card says so
    timing = time_sampling(
        network, model.diffusion, model.info, device, sampling.sampler, sampling.steps, repeats, sampling.options
    )
    return {**timing, "network_calls": sampling.make(model.diffusion).network_calls, "precision": sampling.precision}


def bench_backbones(device: str, repeats: int, bf16: bool = False, length: int = 100, batch: int = 16) -> dict:
    """The shipped ``backbone`` model with its card's sampler: median seconds for ``batch`` chains of
    ``length`` residues (seed 0), output arrays (atoms rebuilt) and, for an internal-coordinate model, the
    clash repair of ``molgen sample`` (its default rounds) included; after a warm-up run unless
    ``repeats`` is 1 (a batch takes minutes, so the first run's overhead hardly counts). ``bf16``: the
    network under bfloat16 autocast (:meth:`~molgen.checkpoint.TrainedModel.mixed_precision`)."""
    from molgen.domains.backbones import repair_clashes
    from molgen.pretrained import load_pretrained

    model = load_pretrained("backbone", device)
    if bf16:
        model.mixed_precision()

    def run() -> float:
        sync(device)
        start = time.perf_counter()
        backbones = model.sample(batch, seed=0, device=device, length=(length, length), batch_size=batch)
        if model.info.internal_coordinates:
            repair_clashes(model, backbones, model.sampling, seed=1, device=device)
        sync(device)
        return time.perf_counter() - start

    if repeats > 1:
        run()  # warm-up
    median = statistics.median(run() for _ in range(repeats))
    return {"s_per_batch": median, "backbones_per_s": batch / median, "batch": batch}


def _worker(task: str, device: str, quick: bool) -> dict:
    kind, arg = task.split(":")
    arg, _, precision = arg.partition("+")  # "+bf16": the network under bfloat16 autocast
    if kind == "backbones":
        return bench_backbones(device, repeats=1 if quick else 3, bf16=precision == "bf16")
    if kind == "train":
        return bench_train(arg, device, steps=5 if quick else 20, bf16=precision == "bf16")
    if kind == "fewsteps":
        return bench_few_steps(device, int(arg), repeats=1 if quick else 3)
    if kind == "fast":
        return bench_fast_preset(device, repeats=1 if quick else 3)
    name, steps = arg.split("@")
    return bench_sample(device, name, int(steps), repeats=1 if (quick or int(steps) >= 1000) else 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer repetitions; the 1000-step figure is extrapolated from a shorter run",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--json", help="write the figures to this JSON file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(_worker(args.worker, args.device, args.quick)))
        return

    def run(task: str) -> dict:
        cmd = [sys.executable, __file__, "--worker", task, "--device", args.device] + (
            ["--quick"] if args.quick else []
        )
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"bench: {task} failed:\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])

    device_name = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    results: dict = {"device": device_name, "torch": torch.__version__, "quick": args.quick}
    for config in CONFIGS:
        r = run(f"train:{config}")
        results[f"train_mol_per_s_{config}"] = r["mol_per_s"]
        results[f"train_s_per_batch_{config}"] = r["s_per_batch"]
        results[f"train_peak_mem_mb_{config}"] = r["peak_mem_mb"]
        results[f"train_mol_per_s_{config}_bf16"] = run(f"train:{config}+bf16")["mol_per_s"]
    r50 = run("sample:dpm-solver@50")
    results["sample_mol_per_s_50steps"] = r50["mol_per_s"]
    results["sample_mol_per_s_4steps"] = run("fewsteps:4")["mol_per_s"]
    fast = run("fast:card")
    results["sample_mol_per_s_fast"] = fast["mol_per_s"]
    results["sample_fast_network_calls"] = fast["network_calls"]
    if args.quick:
        results["sample_mol_per_s_1000steps"] = 100 / (r50["s_per_step"] * 1001)
        results["sample_1000steps_extrapolated"] = True
    else:
        results["sample_mol_per_s_1000steps"] = run("sample:ddpm@1000")["mol_per_s"]
        results["sample_1000steps_extrapolated"] = False
    results["sample_backbones_per_s_len100"] = run("backbones:card")["backbones_per_s"]
    results["sample_backbones_per_s_len100_bf16"] = run("backbones:card+bf16")["backbones_per_s"]

    print(f"device: {device_name}  torch {torch.__version__}")
    print(f"{'figure':32s} {'value':>12s}")
    for key, value in results.items():
        if isinstance(value, float):
            print(f"{key:32s} {value:12.3f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
