"""The protein backbone domain: N, CA, C, O atoms as nodes, PDB/mmCIF data, PDB output, geometry checks.

Each backbone of ``L`` residues is a graph of ``4 L`` nodes in residue-major
order (N, CA, C, O of residue 0, then residue 1, ...), whose atom types are
fixed conditioning features; only coordinates are generated.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from molgen.commands import fail, generate_on_ranks, write_json
from molgen.dataset_info import BackboneInfo
from molgen.diffusion.inpainting import KnownPart
from molgen.diffusion.process import GraphState
from molgen.domains import DOMAINS, Domain
from molgen.proteins.geometry import BACKBONE_ATOMS
from molgen.proteins.motif import Motif, MotifPlacement, parse_starts, place_motif, read_motif
from molgen.proteins.secondary_structure import UNKNOWN, label_agreement, label_features, label_remarks
from molgen.sampling import sample_from_histogram, seeded_generator

__all__ = [
    "DOMAIN",
    "MAX_LENGTH",
    "BackboneDomain",
    "KnownAngles",
    "backbone_features",
    "parse_length",
    "repair_clashes",
    "report_backbones",
    "write_designs",
]

#: Longest chain the PDB writer numbers (4-digit residue numbers).
MAX_LENGTH = 9999
#: Clash repair of internal-coordinate models: default rounds, and the residues on each side of a clashing residue
#: whose angles are regenerated with it.
REPAIR_ROUNDS = 3
REPAIR_FLANK = 4
REPAIR_NEEDS_ANGLES = "--repair-clashes regenerates angles: it is for internal-coordinate backbone models"
#: The node layouts of backbone models: every backbone atom, or one node per residue at its CA (residue-level
#: models, whose N, C and O are rebuilt from the trace at decoding, :mod:`molgen.proteins.ca_trace`).
NODE_LAYOUTS = (list(BACKBONE_ATOMS), ["CA"])


def parse_length(text: str) -> tuple[int, int]:
    """``"100"`` -> ``(100, 100)``; ``"60-120"`` -> ``(60, 120)`` (inclusive range)."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", text)
    if match is None:
        raise ValueError(f"length must be N or MIN-MAX (e.g. 100 or 60-120), got {text!r}")
    low = int(match.group(1))
    high = int(match.group(2) or low)
    if not 2 <= low <= high <= MAX_LENGTH:
        raise ValueError(f"length range must satisfy 2 <= MIN <= MAX <= {MAX_LENGTH}, got {text!r}")
    return low, high


def backbone_features(num_residues: Tensor, atoms_per_residue: int = len(BACKBONE_ATOMS)) -> Tensor:
    """Clean node features of chains with ``num_residues [B]`` residues: one-hot atom types in
    residue-major order, ``[A * sum(num_residues), A]`` float32 for ``A`` atoms per residue."""
    per_residue = torch.eye(atoms_per_residue)
    return per_residue.repeat(int(num_residues.sum()), 1)


def _atoms_from_offsets(ca: np.ndarray, offsets: np.ndarray, info: BackboneInfo) -> np.ndarray:
    """``[L, 4, 3]`` (N, CA, C, O) from CA positions ``[L, 3]`` and the offsets ``[L, 3, 3]`` (Å) of the atoms
    ``info.node_vectors``."""
    backbone = np.repeat(ca[:, None], len(BACKBONE_ATOMS), axis=1)
    for k, atom in enumerate(info.node_vectors):
        backbone[:, list(BACKBONE_ATOMS).index(atom)] += offsets[:, k]
    return backbone


def _backbones_from_angles(state: GraphState) -> list[np.ndarray]:
    """``[L, 4, 3]`` backbones (Å) of chains whose ``h`` holds internal-coordinate features."""
    from molgen.proteins.ca_trace import backbone_from_ca
    from molgen.proteins.internal_coordinates import angles_from_features, ca_trace_from_internal

    features = state.h.double().cpu().numpy()
    ptr = np.concatenate([[0], np.cumsum(state.num_nodes.cpu().numpy())])
    backbones = []
    for a, b in zip(ptr[:-1], ptr[1:]):
        if not np.isfinite(features[a:b]).all():  # a diverged sample is reported, not written
            backbones.append(np.full((b - a, len(BACKBONE_ATOMS), 3), np.nan))
            continue
        backbones.append(backbone_from_ca(ca_trace_from_internal(*angles_from_features(features[a:b]))))
    return backbones


def repair_clashes(
    model,
    backbones: list[np.ndarray],
    sampling,
    rounds: int = REPAIR_ROUNDS,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = False,
    labels: list[np.ndarray] | None = None,
) -> tuple[list[np.ndarray], list[int]]:
    """Backbones of an internal-coordinate model with their steric clashes regenerated.

    Up to ``rounds`` times, every chain with a clash (:func:`~molgen.proteins.metrics.find_clashes`, the check of
    ``molgen evaluate``; after the first round only the chains just regenerated are checked, the others are
    unchanged) is sampled again with the angles of its residues within :data:`REPAIR_FLANK` of a clashing residue
    generated and all others kept (:class:`KnownAngles`, inpainting with ``sampling``; round ``r`` seeded
    ``seed + r``). Internal coordinates place every residue after a change elsewhere, so a local change moves
    the chain's far end; the kept residues keep their local structure. The first residue, whose angles are
    undefined, is always kept. Non-finite chains are left as they are. The network runs on ``device``. A
    fold-conditioned model regenerates each chain with its secondary-structure ``labels`` (one ``[L]`` per backbone).

    Returns:
        The backbones (the input list is not changed) and the number of chains redone in each round.

    Raises:
        ValueError: the model does not generate internal coordinates.
    """
    from molgen.proteins.internal_coordinates import angle_features, ca_internal_coordinates
    from molgen.proteins.metrics import Tolerances, find_clashes
    from molgen.sampling import generate

    if not model.info.internal_coordinates:
        raise ValueError(REPAIR_NEEDS_ANGLES)
    backbones, redone = list(backbones), []
    window = np.ones(2 * REPAIR_FLANK + 1)
    candidates = range(len(backbones))  # after the first round, only the chains just regenerated can clash anew
    for step in range(rounds):
        todo, keep = [], []
        for index in candidates:
            coords = backbones[index]
            if not np.isfinite(coords).all():
                continue
            clashing = find_clashes(coords, Tolerances())[0]
            if clashing.any():
                # full convolution sliced to the chain: mode="same" returns the window's length for shorter chains
                kept = np.convolve(clashing, window)[REPAIR_FLANK : REPAIR_FLANK + len(clashing)] == 0
                kept[0] = True
                todo.append(index)
                keep.append(kept)
        if not todo:
            break
        redone.append(len(todo))
        features = tuple(angle_features(*ca_internal_coordinates(backbones[index][:, 1])) for index in todo)
        fixed = KnownAngles(features, tuple(keep))
        sizes = torch.tensor(fixed.lengths)
        again = generate(
            model,
            len(todo),
            sampling,
            sizes=sizes,
            fixed=fixed,
            labels=None if labels is None else [labels[index] for index in todo],
            seed=seed + step,
            device=device,
            progress=progress,
        )
        for index, coords in zip(todo, again):
            backbones[index] = coords
        candidates = todo
    return backbones, redone


def motif_offsets(placement: MotifPlacement, index: int, info: BackboneInfo) -> np.ndarray:
    """The vector features ``[L, 3V]`` of chain ``index`` of a placed motif: the motif's atoms
    ``info.node_vectors`` relative to its CA, in units of ``info.vector_scale``; zeros elsewhere."""
    columns = [list(BACKBONE_ATOMS).index(atom) for atom in info.node_vectors]
    residues = placement.lengths[index]
    offsets = np.zeros((residues, len(columns), 3))
    for start, segment in placement.segments(index):
        offsets[start : start + len(segment)] = segment[:, columns] - segment[:, 1:2]
    return (offsets / float(info.vector_scale)).reshape(residues, -1)


@dataclass(frozen=True)
class KnownAngles:
    """Residues whose internal coordinates each chain keeps while the rest are generated (the fixed part of an
    internal-coordinate model, :func:`repair_clashes`): per chain, its features ``[L, 3]``
    (:func:`~molgen.proteins.internal_coordinates.angle_features`) and the kept residues ``[L]`` bool."""

    features: tuple[np.ndarray, ...]
    keep: tuple[np.ndarray, ...]

    @property
    def lengths(self) -> list[int]:
        return [len(mask) for mask in self.keep]


def _check_label_lengths(labels: list[np.ndarray], residues: Tensor) -> None:
    """ValueError unless each chain's labels ``[L]`` match its residue count (``residues [B]``)."""
    if [len(chain) for chain in labels] != residues.tolist():
        raise ValueError("each chain's secondary-structure labels must have one entry per residue")


def _atoms(info: BackboneInfo) -> int:
    """Nodes per residue of a backbone model; ValueError for a layout this molgen does not decode."""
    if list(info.atom_types) not in NODE_LAYOUTS:
        raise ValueError(f"checkpoint atom types {info.atom_types} are none of {NODE_LAYOUTS}")
    return len(info.atom_types)


class BackboneDomain(Domain):
    name = "backbones"
    unit = "backbones"
    default_batch_size = 16
    datasets = ("backbone",)
    size_options = ("length",)
    default_output = "designs"

    def nodes_per_unit(self, info: BackboneInfo) -> int:
        return _atoms(info)

    def build_data(self, dataset: str, **options: Any):
        from molgen.proteins.dataset import backbone_train_val

        if options.get("root") is None:
            raise ValueError("the backbone dataset needs a folder of structure files: set data.root=...")
        return backbone_train_val(**options)

    def sample_sizes(
        self, info: BackboneInfo, num_samples: int, seed: int, length: tuple[int, int] | None = None
    ) -> Tensor:
        """Nodes per backbone (4 or 1 per residue, :data:`NODE_LAYOUTS`): residue counts drawn uniformly
        from the inclusive ``length`` range, or from the training histogram."""
        atoms = _atoms(info)
        if length is None:
            residues = sample_from_histogram(info.size_histogram, num_samples, seed)
        else:
            low, high = length
            residues = torch.randint(low, high + 1, (num_samples,), generator=seeded_generator(seed))
        return residues * atoms

    def condition(self, info: BackboneInfo, num_nodes: Tensor, labels: list[np.ndarray] | None = None) -> Tensor | None:
        """The clean atom-type features (and, for a fold-conditioned model, the one-hot secondary-structure
        ``labels`` of each chain, ``[L]`` each, all hidden when None), or None for a model that diffuses
        its features (vectors, internal coordinates)."""
        if labels is not None and not info.secondary_structure:
            raise ValueError("this model was trained without secondary-structure labels: it takes none")
        if info.node_vectors or info.internal_coordinates:
            return None
        atoms = _atoms(info)
        features = backbone_features(num_nodes // atoms, atoms)
        if not info.secondary_structure:
            return features
        if labels is None:
            labels = [np.full(int(n) // atoms, UNKNOWN) for n in num_nodes]
        _check_label_lengths(labels, num_nodes // atoms)
        onehot = torch.cat([label_features(chain) for chain in labels]).repeat_interleave(atoms, dim=0)
        return torch.cat([features, onehot], dim=-1)

    def node_labels(
        self, info: BackboneInfo, num_nodes: Tensor, labels: list[np.ndarray] | None = None
    ) -> Tensor | None:
        """A fold-conditioned internal-coordinate model's labels, ``[N]`` long, one per residue (its ``h`` is the
        diffused angles, so the labels travel beside it); None without labels or for other models (their labels
        are channels of :meth:`condition`)."""
        if labels is None or not (info.internal_coordinates and info.secondary_structure):
            return None
        _check_label_lengths(labels, num_nodes)
        return torch.as_tensor(np.concatenate(labels), dtype=torch.long)

    def fixed_from_options(self, opts) -> Motif | None:
        """The motif of ``--motif``, ``--motif-residues`` and ``--motif-positions``."""
        if (opts.motif_residues is not None or opts.motif_positions is not None) and opts.motif is None:
            raise ValueError("--motif-residues and --motif-positions apply only with --motif")
        if opts.motif is None:
            return None
        if opts.motif_residues is None:
            raise ValueError("--motif needs --motif-residues, e.g. A12-26,A40-48")
        starts = None if opts.motif_positions is None else parse_starts(opts.motif_positions)
        return read_motif(opts.motif, opts.motif_residues, starts)

    def place_fixed(self, info: BackboneInfo, fixed: Motif | MotifPlacement, num_nodes: Tensor, seed: int):
        """The motif placed in every chain (:func:`~molgen.proteins.motif.place_motif`); a placement made
        before (by `molgen sample`, which writes it out) must be of the same chain lengths."""
        lengths = (num_nodes // _atoms(info)).tolist()
        if isinstance(fixed, KnownAngles):
            if not info.internal_coordinates:
                raise ValueError("kept angles are the fixed part of an internal-coordinate model, not of this one")
            if fixed.lengths != lengths:
                raise ValueError(f"the kept angles are of chains of {fixed.lengths} residues, not {lengths}")
            return fixed
        if info.internal_coordinates:
            raise ValueError(
                "--motif places residues in space: this model generates internal coordinates (use a model with "
                "coordinates, e.g. --model backbone-ca)"
            )
        if isinstance(fixed, Motif):
            return place_motif(fixed, lengths, seed)
        if list(fixed.lengths) != lengths:
            raise ValueError(f"the motif was placed in chains of {list(fixed.lengths)} residues, not {lengths}")
        return fixed

    def known_part(self, info: BackboneInfo, fixed: MotifPlacement, num_nodes: Tensor, first: int) -> KnownPart:
        """The motif's residues (all four atoms, or their CA for residue-level models) at their places in
        chains ``first, first + 1, ...``, in model units; for an internal-coordinate model, the kept residues'
        angle features (:class:`KnownAngles`)."""
        if isinstance(fixed, KnownAngles):
            chains = slice(first, first + len(num_nodes))
            mask = torch.as_tensor(np.concatenate(fixed.keep[chains]))
            h = torch.as_tensor(np.concatenate(fixed.features[chains]))
            return KnownPart(mask, torch.zeros(len(mask), 0), h=h)
        atoms = _atoms(info)
        columns = [list(BACKBONE_ATOMS).index(atom) for atom in info.atom_types]
        chains = range(first, first + len(num_nodes))
        mask, pos = [], []
        for index in chains:
            coords = np.zeros((fixed.lengths[index], atoms, 3))
            for start, segment in fixed.segments(index):
                coords[start : start + len(segment)] = segment[:, columns] / float(info.length_scale)
            mask.append(np.repeat(fixed.mask(index), atoms))
            pos.append(coords.reshape(-1, 3))
        known = KnownPart(torch.as_tensor(np.concatenate(mask)), torch.as_tensor(np.concatenate(pos)))
        if info.node_vectors:  # the motif's N, C and O offsets, as the vector features
            known.h = torch.as_tensor(np.concatenate([motif_offsets(fixed, index, info) for index in chains]))
        return known

    def decode(
        self, info: BackboneInfo, state: GraphState, fixed: MotifPlacement | None = None, first: int = 0
    ) -> list[np.ndarray]:
        """One ``[L, 4, 3]`` float64 array per backbone, in Å, atoms N, CA, C, O, centred on the
        mean of its generated atoms; a residue-level model's N, C and O rebuilt from its CA trace
        (:func:`~molgen.proteins.ca_trace.backbone_from_ca`), an internal-coordinate model's trace first built
        from its angles (:mod:`molgen.proteins.internal_coordinates`, first CA at the origin). A motif's
        residues get the motif's own atoms (:meth:`~molgen.proteins.motif.MotifPlacement.restore`)."""
        atoms = _atoms(info)
        if info.internal_coordinates:  # kept angles are exact in the state already
            return _backbones_from_angles(state)
        coords = (state.pos.double().cpu() * float(info.length_scale)).numpy()
        ptr = np.concatenate([[0], np.cumsum(state.num_nodes.cpu().numpy())])
        chains = [coords[a:b].reshape(-1, atoms, 3) for a, b in zip(ptr[:-1], ptr[1:])]
        if info.node_vectors:
            offsets = (state.h.double().cpu() * float(info.vector_scale)).numpy().reshape(len(coords), -1, 3)
            chains = [
                _atoms_from_offsets(chain[:, 0], offsets[a:b], info) for chain, a, b in zip(chains, ptr[:-1], ptr[1:])
            ]
        elif atoms != len(BACKBONE_ATOMS):
            from molgen.proteins.ca_trace import backbone_from_ca

            chains = [backbone_from_ca(chain[:, 0]) for chain in chains]
        if fixed is None:
            return chains
        return [fixed.restore(first + offset, chain) for offset, chain in enumerate(chains)]

    # ----- commands ---------------------------------------------------------
    def sample_command(self, model, opts, sampling, device, rank) -> int:
        from molgen.io import check_writable
        from molgen.proteins.pdb import write_backbone_pdb
        from molgen.proteins.relax import MOTIF_RESTRAINT_SIGMA, RESTRAINT_SIGMA, relax_backbones

        if opts.fix or opts.link:
            return fail("sample", "--fix and --link are for molecule checkpoints; backbones keep residues with --motif")
        if opts.num_atoms is not None or opts.filter is not None:
            return fail("sample", "--num-atoms and --filter are for molecule checkpoints; this one generates backbones")
        restraint = RESTRAINT_SIGMA if opts.relax_restraint is None else opts.relax_restraint  # checked by the CLI
        repair_rounds = getattr(opts, "repair_clashes", None)
        if repair_rounds is None:
            repair_rounds = REPAIR_ROUNDS if model.info.internal_coordinates else 0
        elif repair_rounds and not model.info.internal_coordinates:
            return fail("sample", REPAIR_NEEDS_ANGLES)
        out = Path(opts.out or self.default_output)
        try:
            _check_output_folder(out)
            for extra in (opts.json_out, opts.report):
                if extra:
                    check_writable(extra)

            labels = getattr(opts, "labels", None)
            sizes = getattr(opts, "sizes", None)  # the secondary-structure strings' lengths, when given
            if sizes is None:
                sizes = self.sample_sizes(model.info, opts.num_samples, opts.seed, length=opts.length)
            placement = None if opts.fixed is None else self.place_fixed(model.info, opts.fixed, sizes, opts.seed)

            def finish(backbones: list[np.ndarray], indices: list[int]) -> list[tuple]:
                """This process's ``(backbone, relaxed backbone or None)`` pairs, their clashes repaired first
                (internal-coordinate models; each process its own chains); diverged samples stay unrelaxed."""
                if repair_rounds and backbones:
                    first = opts.seed + 1 + indices[0]
                    chosen = None if labels is None else [labels[index] for index in indices]
                    backbones, redone = repair_clashes(
                        model, backbones, sampling, repair_rounds, first, device, labels=chosen
                    )
                    if rank.rank == 0 and not opts.no_progress:
                        print(f"clash repair: chains regenerated per round {redone or 'none'}", file=sys.stderr)
                finite = [opts.relax and bool(np.isfinite(coords).all()) for coords in backbones]
                kept = [index for index, ok in zip(indices, finite) if ok]
                sigmas = None  # a motif is held tighter than the generated residues
                if placement is not None:
                    sigmas = [np.where(placement.mask(index), MOTIF_RESTRAINT_SIGMA, restraint) for index in kept]
                relaxed = iter(
                    relax_backbones(
                        [coords for coords, ok in zip(backbones, finite) if ok],
                        restraint_sigma=restraint,
                        restraint_sigmas=sigmas,
                        progress=not opts.no_progress and rank.rank == 0,
                    )
                )
                return [(coords, next(relaxed) if ok else None) for coords, ok in zip(backbones, finite)]

            samples = generate_on_ranks(
                model, opts, sampling, device, rank, postprocess=finish, fixed=placement, sizes=sizes, labels=labels
            )
        except (OSError, ValueError) as err:
            return fail("sample", str(err))
        if samples is None:  # rank 0 writes the files
            return 0
        backbones = [coords if relaxed is None else relaxed.coords for coords, relaxed in samples]
        if placement is not None:
            print(format_motif_report(motif_report(backbones, placement)))
        if labels is not None:
            print(format_label_agreement(label_agreement(backbones, labels)))
        if opts.evaluate:
            try:
                report_backbones(backbones, opts, relaxation=[pair for pair in samples if pair[1] is not None])
            except (OSError, ValueError) as err:
                return fail("sample", str(err))
        unwritable = []  # a diverged sample (non-finite, or beyond the PDB columns) is reported, not written
        try:
            out.mkdir(exist_ok=True)
            for index, coords in enumerate(backbones):
                try:
                    marks, remarks = None, []
                    if placement is not None:  # B-factor 1 on the motif's residues; where each segment went
                        marks, remarks = placement.mask(index).astype(float), [f"motif {placement.describe(index)}"]
                    if labels is not None:
                        remarks += label_remarks(labels[index])
                    write_backbone_pdb(out / f"backbone_{index:04d}.pdb", coords, b_factors=marks, remarks=remarks)
                except ValueError as err:
                    unwritable.append(f"{index} ({err})")
        except OSError as err:
            return fail("sample", str(err))
        written = len(backbones) - len(unwritable)
        if unwritable:
            print(f"molgen sample: {len(unwritable)} backbones not written: " + "; ".join(unwritable), file=sys.stderr)
        if not written:
            return fail("sample", "no backbone could be written (the model's samples diverged)")
        lengths = sorted(len(b) for b in backbones)
        print(f"wrote {written} backbones of {lengths[0]}-{lengths[-1]} residues to {out}/")
        if opts.report:
            try:
                write_backbone_report(opts, out)
            except (OSError, ValueError, ImportError) as err:
                return fail("sample", str(err).splitlines()[0])
        return 0

    def evaluate_command(self, opts) -> int:
        """Backbone validation of every chain in a structure file or folder."""
        from molgen.io import check_writable
        from molgen.proteins.pdb import read_backbone_folder, read_backbones

        if opts.annotate:
            return fail("evaluate", "--annotate is for SDF files of molecules")
        path = Path(opts.path)
        try:
            designer = None
            if opts.designability:
                from molgen.proteins.designability import load_designer

                designer = load_designer()
            for extra in (opts.json_out, opts.report):
                if extra:
                    check_writable(extra)
            if path.is_dir():
                chains, parse_report = read_backbone_folder(path, progress=not opts.no_progress)
            else:
                chains, parse_report = read_backbones(path)
                if not chains:
                    raise ValueError(f"{path}: no chain with a complete N, CA, C, O residue")
            if parse_report.files_failed:
                print(parse_report.format())
            designability = None if designer is None else write_designs(chains, designer, progress=not opts.no_progress)
            report_backbones([c.coords for c in chains], opts, designability=designability)
            if opts.report:
                write_backbone_report(opts, path)
        except (OSError, ValueError, ImportError) as err:
            return fail("evaluate", str(err).splitlines()[0])
        return 0


def motif_report(backbones: list[np.ndarray], placement: MotifPlacement, flank: int = 2) -> dict[str, float]:
    """How the backbones (each chain ``i`` of ``placement``) keep the motif: ``motif_rmsd_mean`` /
    ``_max`` (Å, every atom, in place, no alignment) and the fraction of junction residues (the
    ``flank`` generated residues on each side of every segment) and of all residues passing the
    geometry checks."""
    from molgen.proteins.metrics import validate_backbone

    rmsd, junction, overall = [], [], []
    reference = np.concatenate(placement.motif.segments)
    for index, coords in enumerate(backbones):
        if not np.isfinite(coords).all():
            continue
        mask = placement.mask(index)
        rmsd.append(float(np.sqrt(((coords[mask] - reference) ** 2).sum(-1).mean())))
        passing = validate_backbone(coords).residue_pass
        near = np.zeros(len(coords), dtype=bool)
        for start, segment in placement.segments(index):
            near[max(start - flank, 0) : start] = True
            near[start + len(segment) : start + len(segment) + flank] = True
        near &= ~mask
        junction.append(passing[near])
        overall.append(passing)
    if not rmsd:
        raise ValueError("no backbone to measure the motif on: every sample has non-finite coordinates")
    return {
        "motif_rmsd_mean": float(np.mean(rmsd)),
        "motif_rmsd_max": float(np.max(rmsd)),
        "junction_residue_pass": float(np.concatenate(junction).mean()) if any(len(j) for j in junction) else 1.0,
        "residue_pass": float(np.concatenate(overall).mean()),
    }


def format_motif_report(report: dict[str, float]) -> str:
    lines = ["[motif]"]
    lines += [f"  {key:<36} {report[key]:.3f} A" for key in ("motif_rmsd_mean", "motif_rmsd_max")]
    lines += [f"  {key:<36} {100 * report[key]:6.2f} %" for key in ("junction_residue_pass", "residue_pass")]
    return "\n".join(lines)


def format_label_agreement(report: dict[str, float]) -> str:
    """One line of :func:`~molgen.proteins.secondary_structure.label_agreement` for the terminal (states not
    asked for left out)."""
    states = [(name, report[f"{name}_match"]) for name in ("helix", "strand", "coil")]
    parts = [f"{name} {100 * value:.1f} %" for name, value in states if value == value]  # NaN: not asked
    return f"secondary structure as requested: {100 * report['match']:.1f} % of residues ({', '.join(parts)})"


def _check_output_folder(out: Path) -> None:
    """Fail before sampling if ``out`` cannot become a folder of output files."""
    from molgen.io import check_writable

    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out must be a folder for backbones, but {out} is a file")
    check_writable(out / ".molgen_probe" if out.is_dir() else out)


def write_designs(chains, designer, progress: bool = True) -> dict:
    """Design sequences for every chain with ProteinMPNN and write them beside their files.

    Each structure file ``<name>.pdb`` (any structure suffix) gets ``<name>.fa``, written atomically:
    the designs of each of its chains, each record headed by the chain's name and the design's
    score (:meth:`molgen.proteins.designability.Designs.fasta`). Chains shorter than
    :data:`~molgen.proteins.designability.MIN_RESIDUES` are counted, not designed.

    Args:
        chains: :class:`~molgen.proteins.pdb.BackboneChain` objects read from files (``source`` set).
        designer: a :class:`~molgen.proteins.designability.SequenceDesigner`, with its default
            number of sequences, temperature and seed.
        progress: show a tqdm progress bar over the chains.

    Returns:
        The report's ``designability`` section: counts, the settings, the mean and median MPNN score
        (nats per residue) over the designed chains, and the mean glycine share of their designs.

    Raises:
        ValueError: no chain long enough to design.
        OSError: a FASTA file cannot be written.
    """
    from tqdm.auto import tqdm

    from molgen.io import atomic_write_text
    from molgen.proteins.designability import MIN_RESIDUES

    records: dict[Path, list[str]] = {}
    scores, glycine = [], []
    for chain in tqdm(chains, desc="Designing sequences", unit="backbone", disable=not progress):
        if chain.length < MIN_RESIDUES:
            continue
        designs = designer.design(chain.coords)
        fasta = chain.source.parent / f"{chain.name.rsplit(':', 1)[0]}.fa"  # names are "<file stem>:<chain id>"
        records.setdefault(fasta, []).append(designs.fasta(chain.name))
        scores.append(designs.score)
        glycine.append(designs.glycine_fraction)
    if not scores:
        raise ValueError(f"no chain of at least {MIN_RESIDUES} residues to design sequences for")
    for fasta, texts in records.items():
        atomic_write_text(fasta, "".join(texts))
    return {
        "num_designed": len(scores),
        "num_too_short": len(chains) - len(scores),
        "model_name": designs.model_name,
        "sequences_per_backbone": len(designs.sequences),
        "temperature": designs.temperature,
        "mpnn_score_mean": float(np.mean(scores)),
        "mpnn_score_median": float(np.median(scores)),
        "designed_glycine_fraction": float(np.mean(glycine)),
    }


def report_backbones(backbones, opts, relaxation: list[tuple] | None = None, designability: dict | None = None) -> None:
    """Print the backbone validation report (and write --json).

    ``relaxation``: ``(unrelaxed coords, RelaxedBackbone)`` pairs of the relaxed samples. The report
    then gains a ``relaxation`` section (how far atoms moved, how the unrelaxed samples fared) and
    the JSON the whole unrelaxed report as ``backbone_unrelaxed``. ``designability``: the section
    :func:`write_designs` returned, added as it is.
    """
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
    if designability:
        report["designability"] = designability
    print(format_backbone_report(report))
    if opts.json_out:
        write_json(opts.json_out, sections)


def write_backbone_report(opts, path: Path) -> None:
    """Write the `molgen report` page of the structures in ``path`` to ``opts.report`` (``--report``;
    designs alone: `molgen report --reference DIR` compares them with natural chains)."""
    from molgen.report.backbones import backbone_report

    backbone_report(path, progress=not opts.no_progress).write(opts.report)
    print(f"wrote the report to {opts.report}")


DOMAIN = DOMAINS.register(BackboneDomain.name)(BackboneDomain())
