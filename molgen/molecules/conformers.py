"""3D conformers of SMILES strings, prepared once into a chunked, resumable cache.

Each molecule is embedded with RDKit's ETKDGv3 with explicit hydrogens,
``num_conformers`` times, every conformer is optimised with MMFF94s, and the
lowest-energy converged one is kept (a GEOM-like ground-state guess made
offline, without CREST/xTB). The random seed of a molecule is its row in its
source file, so a molecule gets the same conformer whichever chunk, worker or
run prepares it.

What is stored is the heavy-atom graph a joint model generates: elements,
formal charges, Kekulé bond orders and heavy-atom coordinates (Å) from the
optimised all-atom conformer, plus its MMFF94s energy (kcal/mol).
Hydrogens are not stored; they are placed again at export
(:mod:`molgen.molecules.hydrogens`).

The cache is a folder of chunk files (``{name}-{chunk:05d}.pt``, each
``chunk_size`` molecules of a split's order) written atomically by the worker
that prepared them: a killed preparation keeps every finished chunk and the
next run prepares only the missing ones. A molecule that cannot be prepared
is kept in its chunk with the code of its reason (:data:`FAILURE_REASONS`), so
failures are counted, never fatal.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rdkit import Chem, rdBase
from rdkit.Chem import AllChem, rdForceFieldHelpers
from tqdm.auto import tqdm

from molgen.io import atomic_output, read_cache

__all__ = [
    "CHUNK_FORMAT_VERSION",
    "ConformerConfig",
    "FAILURE_REASONS",
    "PreparedMolecule",
    "failure_counts",
    "load_chunks",
    "prepare_chunks",
    "prepare_molecule",
]

log = logging.getLogger(__name__)

CHUNK_FORMAT_VERSION = 1
"""Bump when the chunk layout or the preparation changes; chunks of another version are prepared again."""

FAILURE_REASONS: tuple[str, ...] = (
    "kept",
    "parse_failed",
    "element",
    "charge_out_of_range",
    "too_many_atoms",
    "multiple_fragments",
    "embed_failed",
    "mmff_params",
    "mmff_not_converged",
    "kekulize_failed",
)
"""Code of each molecule in a chunk's ``reason`` array (0 = kept)."""

_BOND_ORDERS = {Chem.BondType.SINGLE: 1, Chem.BondType.DOUBLE: 2, Chem.BondType.TRIPLE: 3}


@dataclass(frozen=True)
class ConformerConfig:
    """What a prepared molecule depends on (stored in every chunk; chunks of another config are redone).

    Attributes:
        elements: heavy elements allowed; others fail with ``element``.
        charges: formal charges allowed; others fail with ``charge_out_of_range``.
        max_heavy_atoms: larger molecules fail with ``too_many_atoms``.
        num_conformers: ETKDGv3 embeddings per molecule; the lowest MMFF94s energy is kept.
        max_iterations: MMFF optimisation iterations per conformer.
    """

    elements: tuple[str, ...] = ("C", "N", "O", "S", "F", "Cl", "Br")
    charges: tuple[int, ...] = (-1, 0, 1)
    max_heavy_atoms: int = 40
    num_conformers: int = 3
    max_iterations: int = 2000

    def __post_init__(self) -> None:
        object.__setattr__(self, "elements", tuple(self.elements))
        object.__setattr__(self, "charges", tuple(int(c) for c in self.charges))
        if self.num_conformers < 1 or self.max_iterations < 1 or self.max_heavy_atoms < 1:
            raise ValueError(f"num_conformers, max_iterations and max_heavy_atoms must be >= 1: {self}")

    def to_dict(self) -> dict[str, Any]:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}


@dataclass
class PreparedMolecule:
    """The heavy-atom graph of one prepared molecule.

    Attributes:
        atomic_numbers: [n] int.
        positions: [n, 3] float, Å, from the lowest-energy optimised conformer.
        charges: [n] int, formal charges.
        bonds: [b, 3] int, rows ``(i, j, order)`` with ``i < j``, Kekulé orders 1-3.
        energy: MMFF94s energy of the all-atom conformer, kcal/mol.
    """

    atomic_numbers: np.ndarray
    positions: np.ndarray
    charges: np.ndarray
    bonds: np.ndarray
    energy: float


def prepare_molecule(smiles: str, seed: int, config: ConformerConfig = ConformerConfig()) -> PreparedMolecule | str:
    """Embed, optimise and reduce one SMILES to its heavy-atom graph, or return the failure reason.

    Args:
        smiles: the molecule.
        seed: ETKDG random seed (the molecule's row in its source file).
    """
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles)
        if mol is None or mol.GetNumAtoms() == 0:
            return "parse_failed"
        allowed = set(config.elements)
        if any(atom.GetSymbol() not in allowed for atom in mol.GetAtoms()):
            return "element"
        if any(atom.GetFormalCharge() not in config.charges for atom in mol.GetAtoms()):
            return "charge_out_of_range"
        if mol.GetNumAtoms() > config.max_heavy_atoms:
            return "too_many_atoms"
        if len(Chem.GetMolFrags(mol)) > 1:
            return "multiple_fragments"
        mol = Chem.AddHs(mol)
        params = AllChem.ETKDGv3()
        params.randomSeed = int(seed) % (2**31 - 1)
        conformer_ids = list(AllChem.EmbedMultipleConfs(mol, config.num_conformers, params))
        if not conformer_ids:
            return "embed_failed"
        if not rdForceFieldHelpers.MMFFHasAllMoleculeParams(mol):
            return "mmff_params"
        results = rdForceFieldHelpers.MMFFOptimizeMoleculeConfs(
            mol, numThreads=1, maxIters=config.max_iterations, mmffVariant="MMFF94s"
        )
        converged = [(energy, cid) for cid, (status, energy) in zip(conformer_ids, results) if status == 0]
        if not converged:
            return "mmff_not_converged"
        energy, best = min(converged)
        heavy = Chem.RemoveHs(mol)
        try:
            Chem.Kekulize(heavy, clearAromaticFlags=True)
        except (ValueError, RuntimeError):
            return "kekulize_failed"
    bonds = []
    for bond in heavy.GetBonds():
        order = _BOND_ORDERS.get(bond.GetBondType())
        if order is None:
            return "kekulize_failed"
        i, j = sorted((bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()))
        bonds.append((i, j, order))
    return PreparedMolecule(
        atomic_numbers=np.array([atom.GetAtomicNum() for atom in heavy.GetAtoms()], dtype=np.int64),
        positions=heavy.GetConformer(best).GetPositions(),
        charges=np.array([atom.GetFormalCharge() for atom in heavy.GetAtoms()], dtype=np.int64),
        bonds=np.array(sorted(bonds), dtype=np.int64).reshape(-1, 3),
        energy=float(energy),
    )


def _prepare_chunk(smiles: Sequence[str], rows: Sequence[int], config: ConformerConfig) -> dict[str, Any]:
    """The chunk dict of molecules ``smiles`` (source rows ``rows``); see :func:`load_chunks` for its keys."""
    reason = np.zeros(len(smiles), dtype=np.int8)
    energy = np.full(len(smiles), np.nan)
    z, pos, charge, counts, bonds, bond_counts = [], [], [], [], [], []
    for k, (text, row) in enumerate(zip(smiles, rows)):
        result = prepare_molecule(text, row, config)
        if isinstance(result, str):
            reason[k] = FAILURE_REASONS.index(result)
            counts.append(0)
            bond_counts.append(0)
            continue
        z.append(result.atomic_numbers)
        pos.append(result.positions)
        charge.append(result.charges)
        bonds.append(result.bonds)
        counts.append(len(result.atomic_numbers))
        bond_counts.append(len(result.bonds))
        energy[k] = result.energy

    def cat(parts: list[np.ndarray], shape: tuple[int, ...], dtype) -> torch.Tensor:
        return torch.from_numpy(np.concatenate(parts).astype(dtype) if parts else np.zeros(shape, dtype=dtype))

    all_bonds = cat(bonds, (0, 3), np.int64)
    return {
        "format_version": CHUNK_FORMAT_VERSION,
        "config": config.to_dict(),
        "rows": torch.tensor(list(rows), dtype=torch.long),
        "smiles": list(smiles),
        "reason": torch.from_numpy(reason),
        "energy": torch.from_numpy(energy),
        "z": cat(z, (0,), np.int8),
        "pos": cat(pos, (0, 3), np.float32),
        "charge": cat(charge, (0,), np.int8),
        "ptr": torch.from_numpy(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)),
        "bond_ptr": torch.from_numpy(np.concatenate([[0], np.cumsum(bond_counts)]).astype(np.int64)),
        "bond_atoms": all_bonds[:, :2].to(torch.int16),
        "bond_order": all_bonds[:, 2].to(torch.int8),
    }


_REQUIRED_KEYS = ("config", "rows", "smiles", "reason", "energy", "z", "pos", "charge", "ptr", "bond_ptr")


def _chunk_path(folder: Path, name: str, chunk: int) -> Path:
    return folder / f"{name}-{chunk:05d}.pt"


def _valid_chunk(data: dict[str, Any] | None, rows: Sequence[int], config: ConformerConfig) -> bool:
    return data is not None and data["config"] == config.to_dict() and data["rows"].tolist() == list(rows)


def _work(job: tuple[Path, list[str], list[int], ConformerConfig]) -> int:
    path, smiles, rows, config = job
    chunk = _prepare_chunk(smiles, rows, config)
    with atomic_output(path) as tmp:  # a killed worker leaves no partial chunk behind
        torch.save(chunk, tmp)
    return len(rows)


def prepare_chunks(
    folder: str | os.PathLike,
    name: str,
    smiles: Sequence[str],
    order: Sequence[int],
    num_molecules: int,
    *,
    config: ConformerConfig = ConformerConfig(),
    chunk_size: int = 500,
    workers: int | None = None,
    progress: bool = True,
) -> list[Path]:
    """Prepare (or find prepared) the chunks covering the first ``num_molecules`` of ``order``.

    Args:
        folder: the cache folder (created if missing).
        name: chunk-file prefix (the split's name).
        smiles: the source file's SMILES; ``order`` indexes it.
        order: the split's order of source rows (e.g. a seeded permutation).
        num_molecules: how many molecules of ``order`` to cover (rounded up to whole chunks).
        workers: processes (default: all CPUs); 1 prepares in this process.

    Returns:
        The chunk paths, in order.
    """
    if not 1 <= num_molecules <= len(order):
        raise ValueError(f"num_molecules must be between 1 and {len(order)}, got {num_molecules}")
    folder = Path(folder).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    num_chunks = -(-num_molecules // chunk_size)
    paths, jobs = [], []
    for chunk in range(num_chunks):
        rows = [int(r) for r in order[chunk * chunk_size : (chunk + 1) * chunk_size]]
        path = _chunk_path(folder, name, chunk)
        paths.append(path)
        if not _valid_chunk(read_cache(path, "conformer chunk", CHUNK_FORMAT_VERSION, _REQUIRED_KEYS), rows, config):
            jobs.append((path, [smiles[r] for r in rows], rows, config))
    if not jobs:
        return paths
    total = sum(len(job[2]) for job in jobs)
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    done = (num_chunks - len(jobs)) * chunk_size
    description = f"Preparing {name} conformers ({done} of the first {num_molecules} done before)"
    with tqdm(total=total, desc=description, unit="mol", disable=not progress, smoothing=0.05) as bar:
        if workers == 1:
            for job in jobs:
                bar.update(_work(job))
        else:
            context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
            with context.Pool(workers) as pool:
                for count in pool.imap_unordered(_work, jobs):
                    bar.update(count)
    return paths


def load_chunks(paths: Sequence[Path]) -> dict[str, Any]:
    """The chunks' molecules concatenated into one dict, failures included (``reason`` != 0, no atoms).

    Keys: ``rows`` [M] (source rows), ``smiles`` (list of M), ``reason`` int8 [M]
    (index into :data:`FAILURE_REASONS`), ``energy`` float64 [M] (kcal/mol, NaN for
    failures), ``z`` int8 [A], ``pos`` float32 [A, 3] (Å), ``charge`` int8 [A],
    ``ptr`` [M + 1], ``bond_ptr`` [M + 1], ``bond_atoms`` int16 [B, 2] (atom indices
    within the molecule, ``i < j``), ``bond_order`` int8 [B].

    Raises:
        FileNotFoundError: a chunk is missing or unreadable (prepare it first).
    """
    chunks = []
    for path in paths:
        data = read_cache(path, "conformer chunk", CHUNK_FORMAT_VERSION, _REQUIRED_KEYS)
        if data is None:
            raise FileNotFoundError(f"conformer chunk {path} is missing or unreadable; prepare it again")
        chunks.append(data)

    def offsets(key: str) -> torch.Tensor:
        parts, base = [torch.zeros(1, dtype=torch.long)], 0
        for chunk in chunks:
            parts.append(chunk[key][1:] + base)
            base += int(chunk[key][-1])
        return torch.cat(parts)

    return {
        "rows": torch.cat([c["rows"] for c in chunks]),
        "smiles": [s for c in chunks for s in c["smiles"]],
        "reason": torch.cat([c["reason"] for c in chunks]),
        "energy": torch.cat([c["energy"] for c in chunks]),
        "z": torch.cat([c["z"] for c in chunks]),
        "pos": torch.cat([c["pos"] for c in chunks]),
        "charge": torch.cat([c["charge"] for c in chunks]),
        "ptr": offsets("ptr"),
        "bond_ptr": offsets("bond_ptr"),
        "bond_atoms": torch.cat([c["bond_atoms"] for c in chunks]),
        "bond_order": torch.cat([c["bond_order"] for c in chunks]),
    }


def failure_counts(reason: torch.Tensor) -> dict[str, int]:
    """Molecules per reason (``kept`` included), reasons with none left out."""
    counts = torch.bincount(reason.long(), minlength=len(FAILURE_REASONS)).tolist()
    return {name: n for name, n in zip(FAILURE_REASONS, counts) if n}
