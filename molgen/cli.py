"""The ``molgen`` command: ``molgen train``, ``molgen sample`` and ``molgen evaluate``.

The CLI only wires arguments and configs to library objects; every error a
user can cause is reported as one ``molgen <command>: error: ...`` line with
a non-zero exit status.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

USAGE = """usage: molgen <command> [options]

commands:
  train    train a diffusion model (Hydra overrides, e.g. experiment=qm9 trainer.max_steps=200)
  sample   sample molecules (SDF) or protein backbones (PDB files) from a checkpoint or shipped model
  evaluate validate molecules in an SDF file (EDM, RDKit, PoseBusters, distribution)
           or protein backbones in PDB/mmCIF files (geometry, DSSP, radius of gyration)
  models   list the pretrained models shipped with molgen

Run `molgen <command> --help` for the options of a command."""


def _fail(command: str, message: str, status: int = 1) -> int:
    print(f"molgen {command}: error: {message}", file=sys.stderr)
    return status


# ----- train -------------------------------------------------------------
# Keys Lightning takes in several types (devices: 2, auto or [0, 1]; precision: 32 or bf16-mixed).
_ANY_TYPE_KEYS = {"trainer.devices", "trainer.precision"}


def _type_errors(base, full, prefix: str = "") -> list[str]:
    """Keys whose overridden value has another type than the default (null defaults accept anything)."""
    from omegaconf import DictConfig

    errors = []
    for key in full:
        if key not in base:
            continue
        default, value = base[key], full[key]
        if isinstance(default, DictConfig) and isinstance(value, DictConfig):
            errors += _type_errors(default, value, f"{prefix}{key}.")
        elif default is not None and value is not None and f"{prefix}{key}" not in _ANY_TYPE_KEYS:
            expected = (int, float) if isinstance(default, float) else type(default)
            if not isinstance(value, expected) or (isinstance(value, bool) and not isinstance(default, bool)):
                errors.append(f"{prefix}{key} must be {type(default).__name__}, got {value!r}")
    return errors


def _validate_overrides(overrides: list[str]) -> str | None:
    """Compose the config with Hydra's compose API first; return an error line or None.

    Catches unknown keys, groups and options, malformed overrides, and
    values of the wrong type (against the defaults of the chosen groups).
    """
    from hydra import compose, initialize_config_module
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    groups_only = [o for o in overrides if "." not in o.split("=")[0]]
    try:
        with initialize_config_module(config_module="molgen.conf", version_base="1.3"):
            compose(config_name="config", overrides=overrides, return_hydra_config=True)
            not_hydra = [o for o in overrides if not o.lstrip("+~").startswith("hydra.")]
            full = compose(config_name="config", overrides=not_hydra)
            base = compose(config_name="config", overrides=[o for o in groups_only if o in not_hydra])
    except (HydraException, OmegaConfBaseException) as err:
        message = str(err).splitlines()[0]
        if err.__cause__ is not None:  # e.g. "Key 'foo' is not in struct"
            message += f" ({str(err.__cause__).splitlines()[0]})"
        if isinstance(err, MissingConfigException) and err.options:
            message += f"; available: {', '.join(err.options)}"
        return message
    errors = _type_errors(base, full)
    return "; ".join(errors) if errors else None


def _train(args: list[str]) -> int:
    if any(a in ("-h", "--help") for a in args):
        print(
            "usage: molgen train [key=value ...]\n\n"
            "Hydra overrides of molgen/conf/config.yaml; groups: data, model, diffusion, trainer, experiment.\n"
            "Example: molgen train experiment=qm9 trainer.max_steps=200 model.hidden_dim=64 "
            "data.subset=2000 hydra.run.dir=runs/try1\n"
            "Use --cfg job to print the composed config."
        )
        return 0
    multirun = any(a in ("-m", "--multirun") for a in args)
    if not multirun and not any(a.startswith("-") for a in args):
        error = _validate_overrides(args)
        if error:
            return _fail("train", error)

    import hydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    @hydra.main(config_path="conf", config_name="config", version_base="1.3")
    def run(cfg) -> None:
        import logging

        from molgen.training.train import train

        # Hydra's handlers already print and file Lightning's records; drop Lightning's own duplicate.
        for name in ("lightning", "lightning.pytorch"):
            logging.getLogger(name).handlers.clear()
            logging.getLogger(name).propagate = True

        from lightning.fabric.utilities.exceptions import MisconfigurationException

        # Lightning's DDP launcher starts the other ranks by re-running this command line: give it back.
        sys.argv = command
        try:
            hydra_cfg = HydraConfig.get()
            train(cfg, Path(hydra_cfg.runtime.output_dir), sweep=hydra_cfg.mode == RunMode.MULTIRUN)
        except (ValueError, TypeError, OSError, FloatingPointError, MisconfigurationException) as err:
            # TypeError: a config value of the wrong type reached a constructor
            print(f"molgen train: error: {type(err).__name__}: {err}", file=sys.stderr)
            sys.exit(1)

    command = [sys.argv[0], "train", *args]
    sys.argv = ["molgen-train", *args]  # Hydra parses the overrides from sys.argv
    run()
    return 0


# ----- shared options ---------------------------------------------------
def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _add_evaluation_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--reference",
        default="qm9",
        help="novelty/distribution reference: qm9 (training split, cached after the first use), "
        "none, or an SDF file (default qm9)",
    )
    p.add_argument(
        "--posebusters",
        type=_non_negative,
        default=100,
        metavar="N",
        help="PoseBusters' mol checks on a seeded random subset of N molecules (0 = skip; default 100)",
    )
    p.add_argument(
        "--posebusters-energy",
        action="store_true",
        help="include PoseBusters' internal-energy check (slow: ~0.5-1 s per molecule)",
    )
    p.add_argument("--workers", type=_positive, default=1, help="processes for PoseBusters (default 1)")
    p.add_argument("--json", dest="json_out", help="also write the report as JSON to this file")


def _load_reference(spec: str, progress: bool):
    from molgen.molecules.metrics.reference import Reference, qm9_reference
    from molgen.molecules.sdf import read_records

    if spec == "none":
        return None
    if spec == "qm9":
        return qm9_reference(progress=progress)
    records, _ = read_records(spec)
    return Reference.from_records(Path(spec).name, records, progress=progress)


def _evaluate_and_report(records, opts, problems=None):
    """Evaluate, print the table, write --json; returns the Evaluation."""
    from molgen.molecules.evaluate import evaluate_molecules, format_report

    evaluation = evaluate_molecules(
        records,
        reference=_load_reference(opts.reference, progress=not opts.no_progress),
        problems=problems,
        posebusters_max=opts.posebusters,
        posebusters_energy=opts.posebusters_energy,
        posebusters_workers=opts.workers,
    )
    print(format_report(evaluation.report))
    if opts.json_out:
        _write_json(opts.json_out, evaluation.report)
    return evaluation


def _write_json(path: str, report: dict) -> None:
    from molgen.io import atomic_write_text

    atomic_write_text(path, json.dumps(report, indent=2))


# ----- sample ------------------------------------------------------------
FILTERS = {"valid": "rdkit_valid", "stable": "edm_mol_stable"}
#: Samplers offered by `molgen sample` (`ancestral` is an alias of ddpm in the registry).
SAMPLER_CHOICES = ["ddpm", "ddim", "dpm-solver"]


def _sample_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="molgen sample",
        description="Sample from a trained checkpoint: 3D molecules into one SDF file, or protein backbones into "
        "one PDB file each (the checkpoint knows which it generates).",
        epilog="Sharded sampling: `torchrun --nproc_per_node N -m molgen.cli sample ...` splits the batches over N "
        "processes (with --device cuda, local rank i uses cuda:i); rank 0 writes the output, the same as a "
        "single-process run with the same --seed and --batch-size. See docs/distributed.md.",
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument("--ckpt", help="checkpoint written by `molgen train` (e.g. <run dir>/checkpoints/last.ckpt)")
    source.add_argument(
        "--model",
        help="a pretrained model shipped with molgen (`molgen models` lists them); the default when --ckpt is "
        "not given is the QM9 model",
    )
    p.add_argument("--num-samples", type=_positive, default=100, help="number of molecules or backbones (default 100)")
    p.add_argument(
        "--out",
        default=None,
        help="molecules: output SDF, written atomically (default samples.sdf); backbones: output folder, one "
        "backbone_NNNN.pdb per sample, created if needed (default designs)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="random seed; same seed and batch size give the same output (default 0)"
    )
    p.add_argument(
        "--steps",
        type=_positive,
        default=None,
        help="reverse-diffusion steps (default: the shipped model's recommendation, 1000 for checkpoints)",
    )
    p.add_argument(
        "--sampler",
        default=None,
        choices=SAMPLER_CHOICES,
        help="reverse-process sampler: ancestral ddpm, deterministic ddim, or dpm-solver (DPM-Solver++(2M), "
        "good in few steps, e.g. --steps 50); default: the shipped model's recommendation, ddpm for checkpoints",
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
        default=None,
        help="after the last step, re-noise the coordinates to --refine-time and replace them by the network's clean "
        "prediction, this many times (one network call each; default 0). Sharpens bond lengths that few-step "
        "samplers leave coarse, e.g. --steps 49 --refine-steps 1; backbones gain from many, e.g. --steps 100 "
        "--refine-steps 100",
    )
    p.add_argument(
        "--refine-time",
        type=float,
        default=None,
        help="diffusion time in (0, 1) that --refine-steps re-noise to (default 0.02: about 0.03 A of noise for "
        "QM9 models)",
    )
    p.add_argument(
        "--class-temperature",
        type=float,
        default=None,
        help="models that generate bonds: divide the predicted atom-type, charge and bond logits by this before "
        "each step's draw; below 1 (e.g. 0.5) sharpens them, which helps few-step samplers (default 1)",
    )
    p.add_argument(
        "--batch-size",
        type=_positive,
        default=None,
        help="samples denoised together (default 100 molecules or 16 backbones)",
    )
    p.add_argument(
        "--num-atoms",
        type=_positive,
        default=None,
        help="molecules: atoms per molecule (default: drawn from the training set's histogram)",
    )
    p.add_argument(
        "--length",
        default=None,
        help="backbones: residues per backbone, N or a range MIN-MAX drawn uniformly (default: drawn from the "
        "training set's histogram)",
    )
    p.add_argument(
        "--relax",
        action="store_true",
        help="backbones: relax each sample before writing it (restrained minimisation to Engh-Huber bond geometry "
        "without clashes, as structure predictors do before handing structures on; about 1-2 s per 100 residues "
        "on one CPU core); --evaluate then also reports the unrelaxed figures and how far the atoms moved",
    )
    p.add_argument(
        "--relax-restraint",
        type=float,
        default=None,
        help="with --relax: width in A of the restraint holding each atom near the model's position (default 1.0); "
        "smaller moves atoms less but may leave clashes",
    )
    p.add_argument("--device", default=None, choices=["cpu", "cuda"], help="default: cuda when available, else cpu")
    p.add_argument(
        "--compile",
        action="store_true",
        help="run the network through torch.compile (about 30 s once, then about 1.5x faster on CPU; falls back to "
        "eager with a warning if compiling fails); pays for many samples or steps",
    )
    p.add_argument("--evaluate", action="store_true", help="print the `molgen evaluate` report of the samples")
    p.add_argument(
        "--filter",
        choices=sorted(FILTERS),
        default=None,
        help="molecules: write only those that are valid (RDKit protocol: the written bonds sanitize) "
        "or stable (molecule stability: of the generated graph for bond models, EDM protocol otherwise); "
        "implies --evaluate",
    )
    _add_evaluation_options(p)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


def _sample(args: list[str]) -> int:
    opts = _sample_parser().parse_args(args)

    import torch

    from molgen.checkpoint import CheckpointError, load_checkpoint
    from molgen.diffusion.joint import JointDiffusion
    from molgen.diffusion.samplers import sampler_options
    from molgen.distributed import join_torchrun

    device = opts.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        return _fail("sample", "--device cuda requested but CUDA is not available")
    rank = join_torchrun()  # processes started by torchrun each sample a share of the batches
    if device == "cuda" and rank.world_size > 1:
        device = f"cuda:{rank.local_rank % torch.cuda.device_count()}"
    given = {
        key: getattr(opts, key)
        for key in ("eta", "noise_scale", "grid", "refine_steps", "refine_time")
        if getattr(opts, key) is not None
    }
    if opts.class_temperature is not None:
        if not (math.isfinite(opts.class_temperature) and opts.class_temperature > 0):
            return _fail("sample", f"--class-temperature must be a positive number, got {opts.class_temperature}")
        given["class_temperature"] = opts.class_temperature
    opts.sampler_options = given
    try:
        if opts.ckpt:
            model = load_checkpoint(opts.ckpt, device=device)
            opts.source = str(Path(opts.ckpt).resolve())
        else:
            from molgen.pretrained import DEFAULT_MODEL, load_pretrained_model, model_card, recommended_sampling

            opts.model = opts.model or DEFAULT_MODEL
            model = load_pretrained_model(opts.model, device=device)
            opts.source = f"pretrained:{opts.model}"
            opts.sampler, opts.steps, opts.sampler_options = recommended_sampling(
                model_card(opts.model), opts.sampler, opts.steps, given
            )
    except CheckpointError as err:
        return _fail("sample", str(err))
    opts.sampler, opts.steps = opts.sampler or "ddpm", opts.steps or 1000
    if "class_temperature" in given and not isinstance(model.diffusion, JointDiffusion):
        return _fail("sample", "--class-temperature applies to models that generate bonds; this one does not")
    for key in given:
        if key != "class_temperature" and key not in sampler_options(opts.sampler):
            takers = " and ".join(name for name in SAMPLER_CHOICES if key in sampler_options(name))
            return _fail("sample", f"--{key.replace('_', '-')} is an option of --sampler {takers}, not {opts.sampler}")
    if opts.compile:
        model.compile()
    opts.sampler_label = opts.sampler + "".join(f" {key}={value}" for key, value in opts.sampler_options.items())
    if model.dataset_info.get("domain", "molecules") == "backbone":
        return _sample_backbones(opts, model, device, rank)
    return _sample_molecules(opts, model, device, rank)


def _generate_on_ranks(generate, opts, model, device, rank, **domain_options) -> list | None:
    """Run a domain's generator with the shared sampling options on this process's shard.

    Returns every sample, in single-process order, on rank 0 and None on the other ranks.
    """
    from molgen.distributed import gather_to_first
    from molgen.generation import merge_shards

    samples = generate(
        model,
        opts.num_samples,
        steps=opts.steps,
        sampler=opts.sampler,
        sampler_options=opts.sampler_options,
        batch_size=opts.batch_size,
        seed=opts.seed,
        device=device,
        progress=not opts.no_progress and rank.rank == 0,
        shard=(rank.rank, rank.world_size),
        **domain_options,
    )
    shards = gather_to_first(samples, rank)
    return None if shards is None else merge_shards(shards, opts.batch_size)


def _sample_molecules(opts, model, device, rank) -> int:

    from molgen.io import check_writable
    from molgen.molecules.generate import generate_molecules
    from molgen.molecules.metrics.record import MoleculeRecord
    from molgen.molecules.sdf import write_sdf

    if opts.length is not None or opts.relax or opts.relax_restraint is not None:
        return _fail(
            "sample", "--length and --relax are for backbone checkpoints; this one generates molecules (--num-atoms)"
        )
    opts.out = opts.out or "samples.sdf"
    opts.batch_size = opts.batch_size or 100
    try:
        check_writable(opts.out)  # on every rank, so that all of them stop alike
        if opts.json_out:
            check_writable(opts.json_out)
        molecules = _generate_on_ranks(generate_molecules, opts, model, device, rank, num_atoms=opts.num_atoms)
    except (OSError, ValueError) as err:
        return _fail("sample", str(err))
    if molecules is None:  # rank 0 writes the file
        return 0

    sdf_records, molecule_records, unperceived, nonfinite, generated = [], [], 0, 0, 0
    for index, molecule in enumerate(molecules):
        tags = {
            "index": str(index),
            "seed": str(opts.seed),
            "checkpoint": opts.source,
            "steps": str(opts.steps),
            "sampler": opts.sampler_label,
        }
        if not molecule.finite:
            nonfinite += 1
            tags["finite_coordinates"] = "0"
        mol, bonds_ok = molecule.to_rdkit()
        generated += molecule.bonds is not None
        unperceived += not bonds_ok
        sdf_records.append((mol, f"molgen_{index}", tags))
        molecule_records.append(
            MoleculeRecord(molecule.atomic_numbers, molecule.finite_positions, mol if bonds_ok else None, str(index))
        )

    if opts.evaluate or opts.filter:
        try:
            evaluation = _evaluate_and_report(molecule_records, opts)
        except (OSError, ValueError, ImportError) as err:
            return _fail("sample", str(err))
        if opts.filter:
            key = FILTERS[opts.filter]
            if generated and opts.filter == "stable":  # joint models: the stability of the generated graph
                key = "graph_mol_stable"
            sdf_records = [r for r, row in zip(sdf_records, evaluation.per_molecule) if row.get(key)]
            print(
                f"--filter {opts.filter}: kept {len(sdf_records)}, dropped {len(molecule_records) - len(sdf_records)}"
            )
    try:
        write_sdf(opts.out, sdf_records)
    except OSError as err:
        return _fail("sample", str(err))
    bonds_note = (
        "bonds and charges generated by the model"
        if generated
        else f"{unperceived} of {len(molecules)} generated without perceived bond orders"
    )
    print(
        f"wrote {len(sdf_records)} molecules to {opts.out} ({bonds_note}"
        + (f", {nonfinite} with non-finite coordinates set to 0" if nonfinite else "")
        + ")"
    )
    return 0


def _sample_backbones(opts, model, device, rank) -> int:
    import numpy as np

    from molgen.io import check_writable
    from molgen.proteins.generate import generate_backbones, parse_length
    from molgen.proteins.pdb import write_backbone_pdb
    from molgen.proteins.relax import RESTRAINT_SIGMA, relax_backbones

    if opts.num_atoms is not None or opts.filter is not None:
        return _fail("sample", "--num-atoms and --filter are for molecule checkpoints; this one generates backbones")
    if opts.relax_restraint is not None and not opts.relax:
        return _fail("sample", "--relax-restraint applies only with --relax")
    restraint = RESTRAINT_SIGMA if opts.relax_restraint is None else opts.relax_restraint
    if not (math.isfinite(restraint) and restraint > 0):
        return _fail("sample", f"--relax-restraint must be a positive number of A, got {restraint}")
    out = Path(opts.out or "designs")
    opts.batch_size = opts.batch_size or 16

    def generate(model, num_samples, **options) -> list[tuple]:
        """This rank's ``(backbone, relaxed backbone or None)`` pairs; diverged samples stay unrelaxed."""
        backbones = generate_backbones(model, num_samples, **options)
        finite = [opts.relax and bool(np.isfinite(coords).all()) for coords in backbones]
        relaxed = iter(
            relax_backbones(
                [coords for coords, ok in zip(backbones, finite) if ok],
                restraint_sigma=restraint,
                progress=options["progress"],
            )
        )
        return [(coords, next(relaxed) if ok else None) for coords, ok in zip(backbones, finite)]

    try:
        length = parse_length(opts.length) if opts.length is not None else None
        _check_output_folder(out)
        if opts.json_out:
            check_writable(opts.json_out)
        samples = _generate_on_ranks(generate, opts, model, device, rank, length=length)
    except (OSError, ValueError) as err:
        return _fail("sample", str(err))
    if samples is None:  # rank 0 writes the files
        return 0
    backbones = [coords if relaxed is None else relaxed.coords for coords, relaxed in samples]
    if opts.evaluate:
        try:
            _report_backbones(backbones, opts, relaxation=[pair for pair in samples if pair[1] is not None])
        except (OSError, ValueError) as err:
            return _fail("sample", str(err))
    unwritable = []  # a diverged sample (non-finite, or beyond the PDB columns) is reported, not written
    try:
        out.mkdir(exist_ok=True)
        for index, coords in enumerate(backbones):
            try:
                write_backbone_pdb(out / f"backbone_{index:04d}.pdb", coords)
            except ValueError as err:
                unwritable.append(f"{index} ({err})")
    except OSError as err:
        return _fail("sample", str(err))
    written = len(backbones) - len(unwritable)
    if unwritable:
        print(f"molgen sample: {len(unwritable)} backbones not written: " + "; ".join(unwritable), file=sys.stderr)
    if not written:
        return _fail("sample", "no backbone could be written (the model's samples diverged)")
    lengths = sorted(len(b) for b in backbones)
    print(f"wrote {written} backbones of {lengths[0]}-{lengths[-1]} residues to {out}/")
    return 0


def _check_output_folder(out: Path) -> None:
    """Fail before sampling if ``out`` cannot become a folder of output files."""
    from molgen.io import check_writable

    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out must be a folder for backbones, but {out} is a file")
    check_writable(out / ".molgen_probe" if out.is_dir() else out)


def _report_backbones(backbones, opts, relaxation: list[tuple] | None = None) -> None:
    """Print the backbone validation report (and write --json).

    ``relaxation``: ``(unrelaxed coords, RelaxedBackbone)`` pairs of the relaxed samples. The report
    then gains a ``relaxation`` section (how far atoms moved, how the unrelaxed samples fared) and
    the JSON the whole unrelaxed report as ``backbone_unrelaxed``.
    """
    import numpy as np

    from molgen.proteins.metrics import evaluate_backbones, format_backbone_report
    from molgen.proteins.relax import relaxation_summary

    finite = [coords for coords in backbones if np.isfinite(coords).all()]
    if not finite:
        raise ValueError("no backbone to evaluate: every sample has non-finite coordinates")
    report = evaluate_backbones(finite, progress=not opts.no_progress)
    if len(finite) < len(backbones):
        report["notes"].append(f"{len(backbones) - len(finite)} samples with non-finite coordinates not evaluated")
    sections = {"backbone": report}
    if relaxation:
        # Relaxation moves atoms by about 0.5 A, which leaves TM-scores alike: align only once.
        unrelaxed = evaluate_backbones([coords for coords, _ in relaxation], tm_score=False)
        report["relaxation"] = {
            **relaxation_summary([relaxed for _, relaxed in relaxation]),
            "unrelaxed_passing_fraction": unrelaxed["validity"]["passing_fraction"],
            "unrelaxed_residue_pass_fraction": unrelaxed["validity"]["residue_pass_fraction"],
        }
        sections["backbone_unrelaxed"] = unrelaxed
    print(format_backbone_report(report))
    if opts.json_out:
        _write_json(opts.json_out, sections)


# ----- evaluate ----------------------------------------------------------
def _evaluate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="molgen evaluate",
        description="Validate 3D molecules in an SDF file (any SDF, with or without bonds), or protein backbones in "
        "a PDB/mmCIF file or a folder of them (e.g. the output of `molgen sample` with a backbone checkpoint).",
    )
    p.add_argument("path", help="SDF file; or a structure file (.pdb, .ent, .cif, .mmcif, optionally .gz) or folder")
    _add_evaluation_options(p)
    p.add_argument(
        "--annotate", help="molecules: write every molecule back to this SDF with its per-molecule results as SD tags"
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


def _is_structure_input(path: Path) -> bool:
    from molgen.proteins.pdb import STRUCTURE_SUFFIXES

    name = path.name.lower().removesuffix(".gz")
    return path.is_dir() or name.endswith(STRUCTURE_SUFFIXES)


def _evaluate(args: list[str]) -> int:
    opts = _evaluate_parser().parse_args(args)
    if _is_structure_input(Path(opts.path)):
        return _evaluate_backbones(opts)

    from molgen.io import check_writable
    from molgen.molecules.sdf import SDFRecord, read_records, write_sdf

    try:
        for out in (opts.annotate, opts.json_out):
            if out:
                check_writable(out)
        records, problems = read_records(opts.path)
        evaluation = _evaluate_and_report(records, opts, problems)
        if opts.annotate:
            write_sdf(
                opts.annotate,
                (
                    SDFRecord(r.mol, r.name, {k: int(v) if isinstance(v, bool) else v for k, v in row.items()})
                    for r, row in zip(records, evaluation.per_molecule)
                ),
            )
    except (OSError, ValueError, ImportError) as err:
        return _fail("evaluate", str(err))
    return 0


def _evaluate_backbones(opts) -> int:
    """Backbone validation of every chain in a structure file or folder."""
    from molgen.io import check_writable
    from molgen.proteins.pdb import read_backbone_folder, read_backbones

    if opts.annotate:
        return _fail("evaluate", "--annotate is for SDF files of molecules")
    path = Path(opts.path)
    try:
        if opts.json_out:
            check_writable(opts.json_out)
        if path.is_dir():
            chains, parse_report = read_backbone_folder(path, progress=not opts.no_progress)
        else:
            chains, parse_report = read_backbones(path)
            if not chains:
                raise ValueError(f"{path}: no chain with a complete N, CA, C, O residue")
        if parse_report.files_failed:
            print(parse_report.format())
        _report_backbones([c.coords for c in chains], opts)
    except (OSError, ValueError, ImportError) as err:
        return _fail("evaluate", str(err).splitlines()[0])
    return 0


# ----- models ------------------------------------------------------------
def _models(args: list[str]) -> int:
    argparse.ArgumentParser(
        prog="molgen models", description="List the pretrained models shipped with molgen (`molgen sample --model`)."
    ).parse_args(args)
    from molgen.pretrained import DEFAULT_MODEL, available_models

    cards = available_models()
    if not cards:
        print("no pretrained models are installed")
    for name, card in cards.items():
        default = " (default)" if name == DEFAULT_MODEL else ""
        print(f"{name}{default}: {card.get('summary', '')}")
        for key in ("data", "training", "quality"):
            if key in card:
                print(f"    {key}: {card[key] if isinstance(card[key], str) else json.dumps(card[key])}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    commands = {"train": _train, "sample": _sample, "evaluate": _evaluate, "models": _models}
    if argv[0] not in commands:
        print(USAGE, file=sys.stderr)
        return _fail(argv[0], f"unknown command {argv[0]!r}", status=2)
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
