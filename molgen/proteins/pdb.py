"""Protein backbones (N, CA, C, O) from PDB / mmCIF files, and backbones written as PDB.

Reading (:func:`read_backbones`, :func:`read_backbone_folder`) takes structure files
as deposited and applies one documented policy, counting every decision in a
:class:`ParseReport`:

- only the first model is read (NMR ensembles, multi-model files);
- a residue is kept when it has all of N, CA, C and O; residues missing any of them
  are skipped (terminal fragments, caps such as ACE, nucleotides);
- hetero (``HETATM``) residues are skipped (waters, ligands, ions, sugars), except
  the common modified amino acids of :data:`MODIFIED_RESIDUES`, which are part of
  the chain and kept like standard residues;
- an atom with alternate locations keeps its highest-occupancy location, ties going
  to the first altloc label in alphabetical order (normally ``A``);
- residues with insertion codes are kept, in file order;
- chain breaks (consecutive kept CA atoms further apart than 4.2 Å) are counted;
  :meth:`BackboneChain.segments` splits a chain at them.

Every problem that makes a file unusable raises :class:`StructureError`, naming the file.
:func:`read_model` gives the first model itself, all atoms (e.g. the receptor of the report's pocket view).

Writing (:func:`format_backbone_pdb`, :func:`write_backbone_pdb`) builds a Biopython
structure and writes it with :class:`Bio.PDB.PDBIO`: fixed-column PDB v3.3 ``ATOM``
records that strict column-based readers (e.g. ProteinMPNN's) parse.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from Bio.PDB import PDBIO, MMCIFParser, PDBParser
from Bio.PDB.Atom import Atom, DisorderedAtom
from Bio.PDB.Chain import Chain
from Bio.PDB.Residue import DisorderedResidue, Residue
from Bio.PDB.StructureBuilder import StructureBuilder
from tqdm.auto import tqdm

from molgen.io import atomic_write_text
from molgen.proteins.geometry import BACKBONE_ATOMS, BACKBONE_ELEMENTS, CHAIN_BREAK_CA_DISTANCE, as_backbone

__all__ = [
    "MODIFIED_RESIDUES",
    "STRUCTURE_SUFFIXES",
    "BackboneChain",
    "ParseReport",
    "StructureError",
    "find_structure_files",
    "format_backbone_pdb",
    "read_backbone_folder",
    "read_backbones",
    "read_model",
    "write_backbone_pdb",
]

#: File extensions read, each optionally followed by ``.gz`` (case-insensitive).
STRUCTURE_SUFFIXES: tuple[str, ...] = (".pdb", ".ent", ".cif", ".mmcif")

#: Modified amino acids deposited as ``HETATM`` that are kept as chain residues.
MODIFIED_RESIDUES: frozenset[str] = frozenset(
    {
        "MSE",  # selenomethionine (selenium-phasing substitute for MET; by far the most common)
        "SEC",  # selenocysteine
        "SEP",  # phosphoserine
        "TPO",  # phosphothreonine
        "PTR",  # phosphotyrosine
        "MLY",  # N,N-dimethyllysine
        "M3L",  # N,N,N-trimethyllysine
        "ALY",  # N-acetyllysine
        "KCX",  # lysine NZ-carboxylic acid
        "LLP",  # lysine-pyridoxal-5'-phosphate (Schiff base)
        "CSO",  # S-hydroxycysteine
        "CSD",  # 3-sulfinoalanine (cysteine sulfinic acid)
        "OCS",  # cysteine sulfonic acid
        "CME",  # S,S-(2-hydroxyethyl)thiocysteine
        "HYP",  # 4-hydroxyproline
        "PCA",  # pyroglutamic acid
        "CGU",  # gamma-carboxyglutamic acid
    }
)

# Atom names as they sit in columns 13-16: one-letter element symbols start in column 14.
_PDB_ATOM_NAMES = tuple(f" {name:<3s}" for name in BACKBONE_ATOMS)
_MAX_PDB_RESIDUES = 9999  # resSeq has four columns


class StructureError(ValueError):
    """A structure file (or folder) that cannot be used; the message names it.

    Attributes:
        path: The offending file or folder.
        reason: What is wrong, without the path.
    """

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


@dataclass(frozen=True, eq=False)
class BackboneChain:
    """Backbone of one chain (or chain segment) read from a structure file.

    Attributes:
        name: ``"<file stem>:<chain id>"``, e.g. ``"1A2K_l_u:A"`` (a blank chain id
            is written ``_``); segments add ``"/1"``, ``"/2"``, ...
        coords: Float64 array ``[L, 4, 3]`` in Å, atoms in :data:`BACKBONE_ATOMS`
            order (N, CA, C, O); read-only.
        residue_names: ``L`` three-letter residue names (e.g. ``"GLY"``, ``"MSE"``).
        residue_ids: ``L`` author residue numbers including the insertion code,
            e.g. ``"52"``, ``"52A"``.
        source: The structure file it was read from (None when built in code).

    Raises:
        ValueError: on a wrong shape, ``L == 0``, non-finite coordinates or
            name/id lists whose length is not ``L``.
    """

    name: str
    coords: np.ndarray
    residue_names: tuple[str, ...]
    residue_ids: tuple[str, ...]
    source: Path | None = None

    def __post_init__(self) -> None:
        try:
            coords = as_backbone(self.coords).copy()  # a private copy, made read-only below
        except ValueError as e:
            raise ValueError(f"{self.name}: {e}") from None
        if len(self.residue_names) != len(coords) or len(self.residue_ids) != len(coords):
            raise ValueError(
                f"{self.name}: {len(coords)} residues but {len(self.residue_names)} names "
                f"and {len(self.residue_ids)} ids"
            )
        coords.setflags(write=False)
        object.__setattr__(self, "coords", coords)
        object.__setattr__(self, "residue_names", tuple(self.residue_names))
        object.__setattr__(self, "residue_ids", tuple(self.residue_ids))

    @property
    def length(self) -> int:
        """Number of residues ``L``."""
        return len(self.coords)

    def break_mask(self, max_ca_distance: float = CHAIN_BREAK_CA_DISTANCE) -> np.ndarray:
        """Bool array ``[L - 1]``: True where residues ``i`` and ``i + 1`` have CA atoms more than
        ``max_ca_distance`` Å apart (a chain break)."""
        ca = self.coords[:, BACKBONE_ATOMS.index("CA")]
        return np.linalg.norm(ca[1:] - ca[:-1], axis=-1) > max_ca_distance

    def segments(self, max_ca_distance: float = CHAIN_BREAK_CA_DISTANCE, min_length: int = 1) -> list[BackboneChain]:
        """Split the chain at its breaks into contiguous segments.

        Segments are numbered ``name/1``, ``name/2``, ... in chain order before
        ``min_length`` filtering (so a segment's name does not depend on it); an
        unbroken chain is returned as itself, unrenamed.

        Args:
            max_ca_distance: Å; consecutive CA atoms further apart start a new segment.
            min_length: Drop segments with fewer residues.
        """
        starts = [0, *(np.flatnonzero(self.break_mask(max_ca_distance)) + 1).tolist()]
        if len(starts) == 1:
            return [self] if self.length >= min_length else []
        ends = [*starts[1:], self.length]
        return [
            BackboneChain(
                name=f"{self.name}/{i}",
                coords=self.coords[a:b],
                residue_names=self.residue_names[a:b],
                residue_ids=self.residue_ids[a:b],
                source=self.source,
            )
            for i, (a, b) in enumerate(zip(starts, ends), start=1)
            if b - a >= min_length
        ]


@dataclass
class ParseReport:
    """What reading structure files kept and skipped, and why (see the module policy).

    Residue counters refer to the first model only. Reports add up with ``+``.

    Attributes:
        files: Files read successfully.
        files_failed: Files that raised :class:`StructureError` (folder reading only).
        failures: ``(file, reason)`` of each failed file.
        models_ignored: Models after the first (NMR / multi-model files).
        chains: Chains seen, including those without any kept residue.
        chains_empty: Chains without any kept residue (not returned).
        residues_kept: Residues kept (including modified ones).
        modified_residues_kept: Kept ``HETATM`` residues of :data:`MODIFIED_RESIDUES`.
        hetero_residues_skipped: Skipped ``HETATM`` residues: waters, ligands, ions and
            modified residues outside :data:`MODIFIED_RESIDUES`.
        residues_missing_backbone: Skipped polymer residues lacking any of N/CA/C/O.
        altloc_residues: Kept residues where a backbone atom had several alternate
            locations (one was chosen).
        insertion_code_residues: Kept residues with an insertion code.
        chain_breaks: Consecutive kept residues with CA atoms > 4.2 Å apart.
        chains_with_breaks: Returned chains with at least one break.
    """

    files: int = 0
    files_failed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    models_ignored: int = 0
    chains: int = 0
    chains_empty: int = 0
    residues_kept: int = 0
    modified_residues_kept: int = 0
    hetero_residues_skipped: int = 0
    residues_missing_backbone: int = 0
    altloc_residues: int = 0
    insertion_code_residues: int = 0
    chain_breaks: int = 0
    chains_with_breaks: int = 0

    def __add__(self, other: ParseReport) -> ParseReport:
        """Counters summed, failures concatenated."""
        if not isinstance(other, ParseReport):
            return NotImplemented
        merged = {f.name: getattr(self, f.name) + getattr(other, f.name) for f in dataclasses.fields(self)}
        return ParseReport(**merged)

    def as_dict(self) -> dict:
        """Plain ints, strs and lists (loadable with ``torch.load(weights_only=True)``)."""
        out = dataclasses.asdict(self)
        out["failures"] = [[file, reason] for file, reason in self.failures]
        return out

    def format(self) -> str:
        """A short multi-line human summary of what was kept and skipped."""
        lines = [
            f"read {self.files} structure files ({self.files_failed} failed), first model only "
            f"({self.models_ignored} further models ignored)",
            f"chains: {self.chains - self.chains_empty} kept, {self.chains_empty} without any backbone residue",
            f"residues kept: {self.residues_kept} (modified amino acids: {self.modified_residues_kept}, "
            f"with insertion codes: {self.insertion_code_residues}, "
            f"alternate locations resolved by occupancy: {self.altloc_residues})",
            f"residues skipped: {self.hetero_residues_skipped} hetero (water, ligands, ions), "
            f"{self.residues_missing_backbone} missing N/CA/C/O",
            f"chain breaks (CA-CA > {CHAIN_BREAK_CA_DISTANCE} Å): {self.chain_breaks} "
            f"in {self.chains_with_breaks} chains",
        ]
        lines += [f"failed: {file}: {reason}" for file, reason in self.failures[:5]]
        if len(self.failures) > 5:
            lines.append(f"... and {len(self.failures) - 5} more failed files")
        return "\n".join(lines)


# --------------------------------------------------------------------------- #
# Reading
# --------------------------------------------------------------------------- #


def _split_name(path: Path) -> tuple[str, str] | None:
    """``(stem, suffix)`` of a structure file name (``.gz`` removed), or None for other files."""
    name = path.name[:-3] if path.name.lower().endswith(".gz") else path.name
    for suffix in STRUCTURE_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], suffix
    return None


def _read_text(path: Path) -> str:
    """The file's text, gunzipped if its name ends in ``.gz``."""
    try:
        if path.name.lower().endswith(".gz"):
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError; EOFError: truncated
        raise StructureError(path, f"cannot read file: {e}") from None
    # PDB/mmCIF are ASCII; latin-1 never fails, so stray bytes in remarks cannot abort a read.
    return raw.decode("latin-1")


def _alternatives(residue: Residue, atom_name: str) -> list[Atom]:
    """Every deposited location of one atom of a residue (all altlocs, all point-mutation variants)."""
    variants = residue.disordered_get_list() if isinstance(residue, DisorderedResidue) else [residue]
    out: list[Atom] = []
    for variant in variants:
        if atom_name in variant:
            atom = variant[atom_name]
            out.extend(atom.disordered_get_list() if isinstance(atom, DisorderedAtom) else [atom])
    return out


def _choose(alternatives: list[Atom]) -> Atom:
    """Highest occupancy; ties to the first altloc label alphabetically."""
    return min(alternatives, key=lambda a: (-(a.get_occupancy() or 0.0), a.get_altloc()))


def _check_finite(model, path: Path) -> None:
    """Raise if any atom of ``model`` (alternate locations included) has a NaN/inf coordinate."""
    for residue in model.get_residues():
        variants = residue.disordered_get_list() if isinstance(residue, DisorderedResidue) else [residue]
        for variant in variants:
            for atom in variant:
                for alt in atom.disordered_get_list() if isinstance(atom, DisorderedAtom) else [atom]:
                    if not np.isfinite(alt.coord).all():
                        where = f"{variant.get_resname()} {variant.id[1]}{variant.id[2].strip()}"
                        chain = residue.get_parent().id
                        raise StructureError(
                            path, f"non-finite coordinates: atom {alt.get_name()} of {where}, chain {chain!r}"
                        )


def _read_chain(chain: Chain, name: str, source: Path, report: ParseReport) -> BackboneChain | None:
    """Kept backbone residues of one chain of the file ``source`` (None if there are none); counts into ``report``."""
    coords, names, ids = [], [], []
    for residue in chain:
        hetflag, resseq, icode = residue.id
        resname = residue.get_resname().strip()
        modified = hetflag.startswith("H_") and resname in MODIFIED_RESIDUES
        if hetflag != " " and not modified:  # "W" = water, "H_<name>" = other hetero residue
            report.hetero_residues_skipped += 1
            continue
        alternatives = [_alternatives(residue, atom) for atom in BACKBONE_ATOMS]
        if not all(alternatives):
            report.residues_missing_backbone += 1
            continue
        atoms = [_choose(alts) for alts in alternatives]
        coords.append([atom.coord for atom in atoms])
        names.append(atoms[BACKBONE_ATOMS.index("CA")].get_parent().get_resname().strip())
        ids.append(f"{resseq}{icode.strip()}")
        report.residues_kept += 1
        report.modified_residues_kept += modified
        report.altloc_residues += any(len(alts) > 1 for alts in alternatives)
        report.insertion_code_residues += icode.strip() != ""
    if not coords:
        report.chains_empty += 1
        return None
    backbone = BackboneChain(name, np.asarray(coords, dtype=np.float64), tuple(names), tuple(ids), source)
    breaks = int(backbone.break_mask().sum())
    report.chain_breaks += breaks
    report.chains_with_breaks += breaks > 0
    return backbone


def read_model(path: str | os.PathLike):
    """The first model of one PDB or mmCIF file, as Biopython parses it, and the number of models in the file.

    Args:
        path: A ``.pdb``, ``.ent``, ``.cif`` or ``.mmcif`` file, optionally gzipped
            (``.gz``). mmCIF files use author chain ids and residue numbers.

    Returns:
        ``(model, num_models)``: a :class:`Bio.PDB.Model.Model` with at least one atom, all finite.

    Raises:
        StructureError: missing file, unknown extension, unreadable gzip, empty
            file, a file the parser rejects, no atoms, non-finite coordinates.
    """
    path = Path(path)
    split = _split_name(path)
    if split is None:
        raise StructureError(path, f"unknown structure file extension; expected one of {STRUCTURE_SUFFIXES} (+ .gz)")
    stem, suffix = split
    if not path.is_file():
        raise StructureError(path, "no such file")
    text = _read_text(path)
    if not text.strip():
        raise StructureError(path, "empty file")
    parser = PDBParser(QUIET=True) if suffix in (".pdb", ".ent") else MMCIFParser(QUIET=True)
    try:
        structure = parser.get_structure(stem, io.StringIO(text))
    except Exception as e:  # Biopython raises assorted types (ValueError, KeyError, PDBConstructionException)
        detail = " ".join(str(e).split())  # one line
        raise StructureError(path, f"cannot parse {suffix[1:]} file: {type(e).__name__}: {detail}") from None
    models = list(structure)
    if not models or next(models[0].get_atoms(), None) is None:
        raise StructureError(path, "no atoms")
    _check_finite(models[0], path)
    return models[0], len(models)


def read_backbones(path: str | os.PathLike) -> tuple[list[BackboneChain], ParseReport]:
    """Backbones of every chain of the first model of one PDB or mmCIF file (:func:`read_model`).

    Returns:
        ``(chains, report)``: chains in file order, each with at least one kept
        residue (chains without any are only counted in ``report.chains_empty``).

    Raises:
        StructureError: see :func:`read_model`.
    """
    model, num_models = read_model(path)
    stem, _ = _split_name(Path(path))
    report = ParseReport(files=1, models_ignored=num_models - 1)
    chains = []
    for chain in model:
        report.chains += 1
        backbone = _read_chain(chain, f"{stem}:{chain.id.strip() or '_'}", Path(path), report)
        if backbone is not None:
            chains.append(backbone)
    return chains, report


def find_structure_files(root: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Structure files (see :data:`STRUCTURE_SUFFIXES`) under ``root``, sorted by path.

    Raises:
        StructureError: ``root`` is not a directory or holds no structure file.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise StructureError(root, "not a directory" if root.exists() else "folder does not exist")
    candidates = root.rglob("*") if recursive else root.iterdir()
    files = sorted(p for p in candidates if _split_name(p) is not None and p.is_file())
    if not files:
        raise StructureError(
            root, f"no structure files ({', '.join(STRUCTURE_SUFFIXES)}, optionally .gz){' recursively' * recursive}"
        )
    return files


def read_backbone_folder(
    root: str | os.PathLike, recursive: bool = True, progress: bool = True
) -> tuple[list[BackboneChain], ParseReport]:
    """Backbones of all structure files under ``root`` (see :func:`read_backbones`).

    Files are read in sorted path order. A file that raises :class:`StructureError`
    is skipped and recorded in ``report.files_failed`` / ``report.failures``.

    Args:
        root: Folder to search.
        recursive: Also search subfolders.
        progress: Show a tqdm progress bar.

    Returns:
        ``(chains, report)`` over all files.

    Raises:
        StructureError: no structure file, or no file yielded a chain.
    """
    files = find_structure_files(root, recursive)
    chains: list[BackboneChain] = []
    report = ParseReport()
    for path in tqdm(files, desc="Reading structures", unit="file", disable=not progress):
        try:
            file_chains, file_report = read_backbones(path)
        except StructureError as e:
            report.files_failed += 1
            report.failures.append((str(e.path), e.reason))
            continue
        chains.extend(file_chains)
        report += file_report
    if not chains:
        raise StructureError(root, f"no readable backbone chain in {len(files)} structure files\n{report.format()}")
    return chains, report


# --------------------------------------------------------------------------- #
# Writing
# --------------------------------------------------------------------------- #


def format_backbone_pdb(
    coords: np.ndarray,
    chain_id: str = "A",
    residue_name: str = "GLY",
    b_factors: np.ndarray | None = None,
    remarks: Sequence[str] = (),
) -> str:
    """A backbone as PDB text written by :class:`Bio.PDB.PDBIO`: ``REMARK  99`` lines, ``ATOM`` records,
    a ``TER`` record and ``END``.

    Residues are numbered 1..L; atoms are written in :data:`BACKBONE_ATOMS` order with
    serial numbers 1..4L, occupancy 1.00, B-factor 0.00 and the element symbol in
    columns 77-78 (PDB v3.3 fixed columns). Trailing blanks (PDBIO's empty segment id,
    charge and padding) are stripped from every line.

    Args:
        coords: Array-like ``[L, 4, 3]`` in Å, atoms in N, CA, C, O order.
        chain_id: One character.
        residue_name: 1-3 letters/digits, used for every residue.
        b_factors: ``[L]`` per-residue B-factors (default 0), e.g. 1 to mark motif residues.
        remarks: free-text lines (at most 69 printable characters each), written first.

    Raises:
        ValueError: wrong shape, ``L == 0`` or ``L > 9999``, non-finite coordinates,
            a coordinate outside what ``%8.3f`` fits (-999.999..9999.999), an
            invalid chain id / residue name, or a remark that is too long or not printable.
    """
    coords = as_backbone(coords)
    for remark in remarks:
        if len(remark) > 69 or not remark.isprintable():
            raise ValueError(f"a PDB remark must be at most 69 printable characters, got {remark!r}")
    if len(coords) > _MAX_PDB_RESIDUES:
        raise ValueError(f"a PDB chain holds at most {_MAX_PDB_RESIDUES} residues, got {len(coords)}")
    if len(chain_id) != 1 or not chain_id.isprintable() or chain_id == " ":
        raise ValueError(f"chain_id must be one printable non-blank character, got {chain_id!r}")
    if not 1 <= len(residue_name) <= 3 or not residue_name.isascii() or not residue_name.isalnum():
        raise ValueError(f"residue_name must be 1-3 letters or digits, got {residue_name!r}")
    # PDBIO writes coordinates with %8.3f and does not check that they fit their columns.
    if any(len(f"{v:8.3f}") > 8 for v in coords.reshape(-1).tolist()):
        raise ValueError(
            f"coordinates must lie in -999.999..9999.999 Å to fit PDB columns, got range "
            f"{coords.min():.3f}..{coords.max():.3f}"
        )
    b_factors = np.zeros(len(coords)) if b_factors is None else np.asarray(b_factors, dtype=np.float64)
    if b_factors.shape != (len(coords),):
        raise ValueError(f"b_factors must be [L] = [{len(coords)}], got {b_factors.shape}")
    builder = StructureBuilder()
    builder.init_structure("backbone")
    builder.init_model(0)
    builder.init_chain(chain_id)
    builder.init_seg("    ")
    for resseq, (residue, b_factor) in enumerate(zip(coords, b_factors.tolist()), start=1):
        builder.init_residue(residue_name, " ", resseq, " ")
        for name, pdb_name, element, xyz in zip(BACKBONE_ATOMS, _PDB_ATOM_NAMES, BACKBONE_ELEMENTS, residue):
            builder.init_atom(name, xyz, b_factor, 1.0, " ", pdb_name, element=element)
    pdbio = PDBIO()
    pdbio.set_structure(builder.get_structure())
    buffer = io.StringIO()
    pdbio.save(buffer)
    lines = [f"REMARK  99 {remark}" for remark in remarks] + buffer.getvalue().splitlines()
    return "".join(f"{line.rstrip()}\n" for line in lines)


def write_backbone_pdb(
    path: str | os.PathLike,
    coords: np.ndarray,
    chain_id: str = "A",
    residue_name: str = "GLY",
    b_factors: np.ndarray | None = None,
    remarks: Sequence[str] = (),
) -> Path:
    """Write :func:`format_backbone_pdb` output to ``path`` atomically (see :func:`molgen.io.atomic_output`).

    Returns:
        ``path`` as an absolute :class:`Path`.

    Raises:
        ValueError: see :func:`format_backbone_pdb` (raised before ``path`` is touched).
        FileNotFoundError / NotADirectoryError / IsADirectoryError / PermissionError:
            see :func:`molgen.io.check_writable`.
    """
    text = format_backbone_pdb(coords, chain_id, residue_name, b_factors, remarks)
    return atomic_write_text(path, text)
