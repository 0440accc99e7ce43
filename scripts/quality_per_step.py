#!/usr/bin/env python
"""Sample quality against the number of steps, for each sampler, on one checkpoint.

For every (sampler, steps) cell: sample N molecules with a fixed seed, run
the EDM and RDKit protocols (and, for bond models, the stability of the
generated graph, whose bonds the RDKit protocol then uses), and append one JSON line to ``--out`` (cells
already in the file are skipped, so an interrupted run resumes). Prints a
Markdown table of what the file holds at the end.

Usage: python scripts/quality_per_step.py (--ckpt CKPT | --model NAME) --out quality.jsonl
           [--num-samples 100] [--cells ddpm:1000,dpm-solver:50,...] [--device cpu]

A cell is ``sampler:steps`` with optional sampler options, ``ddim:50:eta=1`` or
``dpm-solver:50:grid=time``; its row is labelled ``ddim eta=1``. ``precision=bf16`` runs the
network under bfloat16 autocast (:class:`molgen.sampling.SamplingConfig`). A distilled model's rows
are ``consistency:1``, ``consistency:2``, ``consistency:4`` (optionally with
``class_temperature=0.1``); each row records its network calls, which for the consistency
sampler equal its steps (the others call the network once more, plus refinements).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from molgen.checkpoint import load_checkpoint
from molgen.molecules.metrics.edm import evaluate_edm
from molgen.molecules.metrics.graph_stability import evaluate_graph_stability
from molgen.molecules.metrics.rdkit_protocol import evaluate_rdkit
from molgen.molecules.record import MoleculeRecord
from molgen.pretrained import load_pretrained
from molgen.sampler_arguments import option_value
from molgen.sampling import SamplingConfig, generate

DEFAULT_CELLS = (
    "dpm-solver:10,dpm-solver:25,dpm-solver:50,ddim:25,ddim:50,ddpm:50,dpm-solver:100,ddim:100,ddpm:100,"
    "ddpm:250,ddpm:1000"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--ckpt", help="a checkpoint written by `molgen train`")
    source.add_argument("--model", help="a shipped model (`molgen models`), e.g. qm9-fast")
    parser.add_argument("--out", required=True, help="JSON-lines file of results (appended)")
    parser.add_argument("--num-samples", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cells", default=DEFAULT_CELLS, help="comma-separated sampler:steps[:option=value...]")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    out = Path(args.out)
    done = (
        {(r["sampler"], r["steps"]) for r in map(json.loads, out.read_text().splitlines())} if out.exists() else set()
    )
    model = load_checkpoint(args.ckpt, device=args.device) if args.ckpt else load_pretrained(args.model, args.device)
    if model.domain.name != "molecules":
        raise SystemExit(f"error: {args.ckpt or args.model} generates {model.domain.name}, not molecules")
    for cell in args.cells.split(","):
        sampler, steps, *options = cell.split(":")
        label = " ".join([sampler, *options])
        if (label, int(steps)) in done:
            continue
        sampler_options = {key: option_value(value) for key, value in (option.split("=") for option in options)}
        precision = sampler_options.pop("precision", "fp32")  # the network's arithmetic, not a sampler option
        sampling = SamplingConfig(sampler, int(steps), sampler_options, precision)
        start = time.perf_counter()
        molecules = generate(
            model,
            args.num_samples,
            sampling,
            batch_size=args.batch_size,
            seed=args.seed,
            device=args.device,
            progress=False,
        )
        seconds = time.perf_counter() - start
        generated = molecules[0].bonds is not None
        records = [
            MoleculeRecord(m.atomic_numbers, m.positions, m.to_rdkit()[0] if generated else None)
            for m in molecules
            if m.finite
        ]
        edm, rdkit = evaluate_edm(records).summary, evaluate_rdkit(records).summary
        graph = evaluate_graph_stability(records).summary if generated else {}
        row = {
            "sampler": label,
            "steps": int(steps),
            "calls": sampling.make(model.diffusion).network_calls,
            "num_samples": args.num_samples,
            "seconds": seconds,
            "finite": len(records),
            "atom_stability": edm["atom_stability"],
            "mol_stability": edm["mol_stability"],
            "edm_validity": edm["validity"],
            "rdkit_validity": rdkit["validity"],
            "rdkit_uniqueness": rdkit["uniqueness"],
            "graph_mol_stability": graph.get("mol_stability"),
        }
        with out.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)

    rows = sorted(map(json.loads, out.read_text().splitlines()), key=lambda r: (r["sampler"], r["steps"]))
    print(
        "| sampler | steps | network calls | EDM atom stab. | EDM mol stab. | EDM validity | RDKit validity "
        "| RDKit uniqueness | graph mol stab. | s per 100 mol |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")

    def optional(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    for r in rows:
        print(
            f"| {r['sampler']} | {r['steps']} | {r.get('calls', '-')} | {r['atom_stability']:.3f} | "
            f"{r['mol_stability']:.3f} | "
            f"{r['edm_validity']:.3f} | {r['rdkit_validity']:.3f} | {optional(r.get('rdkit_uniqueness'))} | "
            f"{optional(r.get('graph_mol_stability'))} | {100 * r['seconds'] / r['num_samples']:.0f} |"
        )


if __name__ == "__main__":
    main()
