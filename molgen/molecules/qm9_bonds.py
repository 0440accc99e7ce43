"""QM9 with bonds and formal charges: the training graphs of joint (bond-generating) models.

Bonds and formal charges are perceived once from QM9's DFT geometries with
:func:`molgen.molecules.sdf.molecule_from_coordinates` (``rdDetermineBonds``:
covalent-radius connectivity with the extended-Hückel fallback, then
xyz2mol bond orders and charges for a neutral molecule) and kekulized, so
aromatic rings become alternating single and double bonds. A molecule is
dropped (and counted by reason) when its bonds cannot be perceived, when a
charge falls outside the charge classes, when it has radical electrons, or
when a bond is not single, double or triple after kekulization.

The result lives in its own cache file beside the coordinate cache
(``qm9_bonds.pt``, :func:`process_qm9_bonds`), so the coordinate-only
pipeline and its cache are untouched. :class:`QM9BondsDataset` serves an EDM
split with the dropped molecules left out, and :func:`qm9_bonds_train_val`
adds the categorical channels and their training-set marginals to the
``dataset_info`` that a model keeps for sampling.

Categorical channels (class index = position in the list):

    atom_type  the featurizer's elements (H, C, N, O, F)
    charge     formal charge -1, 0, +1
    bond       per unordered atom pair: 0 none, 1 single, 2 double, 3 triple
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rdkit import Chem, rdBase
from tqdm.auto import tqdm

from molgen.dataset_info import MoleculeInfo
from molgen.io import atomic_output, read_cache
from molgen.molecules.dataset import BOND_CLASSES, CHARGE_CLASSES, BondedMoleculeDataset, gather_bonded
from molgen.molecules.featurize import AtomFeaturizer
from molgen.molecules.qm9 import QM9_NUM_MOLECULES, default_cache_dir, edm_split, load_qm9, serve_properties
from molgen.molecules.qm9_properties import training_half
from molgen.molecules.sdf import molecule_from_coordinates

__all__ = [
    "BOND_CLASSES",
    "BONDS_CACHE_FILENAME",
    "BONDS_CACHE_FORMAT_VERSION",
    "CHARGE_CLASSES",
    "DROP_REASONS",
    "QM9BondsDataset",
    "build_bond_cache",
    "load_qm9_bonds",
    "perceive_graph",
    "process_qm9_bonds",
    "qm9_bonds_train_val",
]

log = logging.getLogger(__name__)

BONDS_CACHE_FILENAME = "qm9_bonds.pt"
BONDS_CACHE_FORMAT_VERSION = 1
"""Bump when the cache layout or the perception changes; stale caches are rebuilt."""

DROP_REASONS: tuple[str, ...] = (
    "kept",
    "not_perceived",
    "kekulize_failed",
    "charge_out_of_range",
    "radical",
    "bond_type",
)
"""Code of each molecule in the cache's ``reason`` array (0 = kept)."""

_BOND_ORDERS = {Chem.BondType.SINGLE: 1, Chem.BondType.DOUBLE: 2, Chem.BondType.TRIPLE: 3}


def perceive_graph(z: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray] | str:
    """Kekulé bonds and formal charges of one molecule from its geometry.

    Args:
        z: [n] atomic numbers.
        pos: [n, 3] positions, Å.

    Returns:
        ``(charges [n] int, bonds [b, 3] int (i, j, order) with i < j)``, or
        the name of the reason (see :data:`DROP_REASONS`) the molecule is dropped.
    """
    mol, ok = molecule_from_coordinates(np.asarray(z, dtype=np.int64), np.asarray(pos, dtype=np.float64))
    if not ok:
        return "not_perceived"
    try:
        with rdBase.BlockLogs():
            Chem.Kekulize(mol, clearAromaticFlags=True)
    except (ValueError, RuntimeError):
        return "kekulize_failed"
    charges = np.array([atom.GetFormalCharge() for atom in mol.GetAtoms()], dtype=np.int64)
    if not np.isin(charges, CHARGE_CLASSES).all():
        return "charge_out_of_range"
    if any(atom.GetNumRadicalElectrons() for atom in mol.GetAtoms()):
        return "radical"
    bonds = []
    for bond in mol.GetBonds():
        order = _BOND_ORDERS.get(bond.GetBondType())
        if order is None:
            return "bond_type"
        i, j = sorted((bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()))
        bonds.append((i, j, order))
    return charges, np.array(sorted(bonds), dtype=np.int64).reshape(-1, 3)


def _perceive_chunk(args: tuple[np.ndarray, np.ndarray, np.ndarray]) -> list[tuple[np.ndarray, np.ndarray] | str]:
    z, pos, ptr = args
    return [perceive_graph(z[a:b], pos[a:b]) for a, b in zip(ptr[:-1], ptr[1:])]


def build_bond_cache(
    qm9: dict[str, Any], workers: int | None = None, chunk_size: int = 500, progress: bool = True
) -> dict[str, Any]:
    """Perceive every molecule of a QM9 cache dict (``pos``, ``z``, ``ptr``); returns the bonds cache dict.

    Keys (plain tensors and Python types, ``torch.load(weights_only=True)``-safe):
    ``format_version``; ``num_atoms`` int16 [M] (to check it matches the QM9
    cache); ``reason`` int8 [M] (index into :data:`DROP_REASONS`, 0 = kept);
    ``charge`` int8 [A] (formal charge per atom, 0 for dropped molecules);
    ``bond_ptr`` int64 [M + 1]; ``bond_atoms`` int16 [B, 2] (atom indices
    within the molecule, i < j); ``bond_order`` int8 [B] (1, 2, 3);
    ``drop_reasons`` (list of str); ``seconds`` (float, perception time).

    Args:
        workers: processes (default: all CPUs); 1 runs in this process.
    """
    start = time.perf_counter()
    pos = qm9["pos"].double().numpy()
    z = qm9["z"].long().numpy()
    ptr = qm9["ptr"].long().numpy()
    num_molecules = len(ptr) - 1
    bounds = list(range(0, num_molecules, chunk_size)) + [num_molecules]
    chunks = [
        (z[ptr[a] : ptr[b]], pos[ptr[a] : ptr[b]], ptr[a : b + 1] - ptr[a]) for a, b in zip(bounds[:-1], bounds[1:])
    ]
    workers = max(1, min(workers or os.cpu_count() or 1, len(chunks)))

    results: list[tuple[np.ndarray, np.ndarray] | str] = []
    with tqdm(total=num_molecules, desc="Perceiving QM9 bonds", unit="mol", disable=not progress) as bar:
        if workers == 1:
            for chunk in chunks:
                results += _perceive_chunk(chunk)
                bar.update(len(chunk[2]) - 1)
        else:
            context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
            with context.Pool(workers) as pool:
                for part in pool.imap(_perceive_chunk, chunks):
                    results += part
                    bar.update(len(part))

    reason = np.zeros(num_molecules, dtype=np.int8)
    charge = np.zeros(len(z), dtype=np.int8)
    bond_counts = np.zeros(num_molecules, dtype=np.int64)
    bond_rows = []
    for m, result in enumerate(results):
        if isinstance(result, str):
            reason[m] = DROP_REASONS.index(result)
            continue
        charges, bonds = result
        charge[ptr[m] : ptr[m + 1]] = charges
        bond_counts[m] = len(bonds)
        bond_rows.append(bonds)
    bonds = np.concatenate(bond_rows) if bond_rows else np.zeros((0, 3), dtype=np.int64)
    bond_ptr = np.zeros(num_molecules + 1, dtype=np.int64)
    bond_ptr[1:] = np.cumsum(bond_counts)
    return {
        "format_version": BONDS_CACHE_FORMAT_VERSION,
        "num_atoms": torch.from_numpy(np.diff(ptr).astype(np.int16)),
        "reason": torch.from_numpy(reason),
        "charge": torch.from_numpy(charge),
        "bond_ptr": torch.from_numpy(bond_ptr),
        "bond_atoms": torch.from_numpy(bonds[:, :2].astype(np.int16)),
        "bond_order": torch.from_numpy(bonds[:, 2].astype(np.int8)),
        "drop_reasons": list(DROP_REASONS),
        "seconds": time.perf_counter() - start,
    }


def _matches(bonds: dict[str, Any] | None, qm9: dict[str, Any]) -> bool:
    return (
        isinstance(bonds, dict)
        and bonds.get("format_version") == BONDS_CACHE_FORMAT_VERSION
        and isinstance(bonds.get("num_atoms"), torch.Tensor)
        and torch.equal(bonds["num_atoms"].long(), qm9["ptr"].diff())
    )


def _read_bond_cache(path: Path) -> dict[str, Any] | None:
    # The format version is checked with the atom counts, by _matches.
    return read_cache(path, "QM9 bonds")


def summarize_bond_cache(bonds: dict[str, Any]) -> str:
    """One line: molecules kept and dropped per reason, perception time."""
    counts = torch.bincount(bonds["reason"].long(), minlength=len(DROP_REASONS)).tolist()
    dropped = ", ".join(f"{n} {name}" for name, n in zip(DROP_REASONS[1:], counts[1:]) if n)
    return (
        f"{counts[0]} of {len(bonds['reason'])} molecules kept ({sum(counts[1:])} dropped"
        + (f": {dropped}" if dropped else "")
        + f"); perception took {bonds['seconds']:.0f} s"
    )


def process_qm9_bonds(
    cache_dir: str | os.PathLike | None = None,
    *,
    force: bool = False,
    workers: int | None = None,
    qm9: dict[str, Any] | None = None,
    progress: bool = True,
) -> Path:
    """Build ``qm9_bonds.pt`` beside the QM9 cache unless a valid one exists; returns its path.

    Args:
        cache_dir: directory of the QM9 caches (default :func:`molgen.molecules.qm9.default_cache_dir`).
        force: rebuild even if a valid cache exists.
        workers: perception processes (default: all CPUs).
        qm9: the QM9 cache dict (default: :func:`load_qm9` of ``cache_dir``).
    """
    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = cache_dir / BONDS_CACHE_FILENAME
    qm9 = qm9 if qm9 is not None else load_qm9(cache_dir)
    if not force and _matches(_read_bond_cache(path), qm9):
        return path
    bonds = build_bond_cache(qm9, workers=workers, progress=progress)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:  # concurrent builders (e.g. DDP ranks) never clobber each other
        torch.save(bonds, tmp)
    log.info("wrote QM9 bonds cache %s: %s", path, summarize_bond_cache(bonds))
    return path


def load_qm9_bonds(
    cache_dir: str | os.PathLike | None = None, *, qm9: dict[str, Any] | None = None, workers: int | None = None
) -> dict[str, Any]:
    """The bonds cache dict (see :func:`build_bond_cache`) matching the QM9 cache, building it if needed."""
    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    qm9 = qm9 if qm9 is not None else load_qm9(cache_dir)
    path = cache_dir / BONDS_CACHE_FILENAME
    bonds = _read_bond_cache(path)
    if not _matches(bonds, qm9):
        if bonds is not None:
            log.info("QM9 bonds cache %s is outdated or does not match the QM9 cache; rebuilding", path)
        process_qm9_bonds(cache_dir, force=True, workers=workers, qm9=qm9)
        bonds = _read_bond_cache(path)
        if not _matches(bonds, qm9):
            raise RuntimeError(f"QM9 bonds cache {path} could not be read after processing")
    return bonds


class QM9BondsDataset(BondedMoleculeDataset):
    """An EDM split of QM9 with perceived bonds and charges; molecules without them are left out.

    Items as in :class:`~molgen.molecules.dataset.BondedMoleculeDataset`.

    Args:
        split: ``"train"``, ``"valid"`` or ``"test"``.
        subset: the first ``subset`` kept molecules of the split (in the EDM
            split order).
        cache_dir: QM9 cache directory (both caches are built on first use).
        featurizer: element list of the atom-type channel (and ``h``).
        workers: processes for a first-time bond perception.
        conditions, half, normalization: properties served as ``y`` and the half of the training
            split, as in :class:`~molgen.molecules.qm9.QM9Dataset` (the half is taken before the
            molecules without bonds are left out, so both datasets split the same molecules).
    """

    def __init__(
        self,
        split: str = "train",
        subset: int | None = None,
        cache_dir: str | os.PathLike | None = None,
        featurizer: AtomFeaturizer = AtomFeaturizer(),
        workers: int | None = None,
        conditions: Sequence[str] = (),
        half: str | None = None,
        normalization: dict[str, Any] | None = None,
    ) -> None:
        if split not in ("train", "valid", "test"):
            raise ValueError(f"unknown split {split!r}; valid splits are ['train', 'valid', 'test']")
        if half is not None and split != "train":
            raise ValueError(f"data.half selects half of the training split, not of {split!r}")
        qm9 = load_qm9(cache_dir)
        if len(qm9["index"]) != QM9_NUM_MOLECULES:
            raise RuntimeError(
                f"QM9 cache has {len(qm9['index'])} molecules, the EDM split needs {QM9_NUM_MOLECULES}; "
                "rebuild it with process_qm9(force=True)"
            )
        bonds = load_qm9_bonds(cache_dir, qm9=qm9, workers=workers)
        select = training_half(torch.from_numpy(edm_split(len(qm9["index"]))[split]), half)
        self.num_dropped = int((bonds["reason"][select] != 0).sum())
        """Molecules of the split left out because their bonds could not be perceived."""
        select = select[bonds["reason"][select] == 0]
        if subset is not None:
            if not 1 <= subset <= len(select):
                raise ValueError(f"subset must be between 1 and {len(select)} for split {split!r}, got {subset}")
            select = select[:subset]
        super().__init__(
            *gather_bonded(
                qm9["pos"],
                qm9["z"],
                bonds["charge"],
                qm9["ptr"],
                bonds["bond_ptr"],
                bonds["bond_atoms"],
                bonds["bond_order"],
                select,
            ),
            featurizer=featurizer,
            smiles=[qm9["smiles"][i] for i in select.tolist()],
        )
        self.split = split
        self.qm9_index: torch.Tensor = qm9["index"][select]
        if conditions:
            serve_properties(self, conditions, cache_dir, normalization)


def qm9_bonds_train_val(
    subset: int | None = None,
    val_subset: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    perception_workers: int | None = None,
    conditions: Sequence[str] = (),
    half: str | None = None,
) -> tuple[QM9BondsDataset, QM9BondsDataset, MoleculeInfo]:
    """Training and validation splits with bonds, plus the info kept for sampling.

    The info adds to the coordinate-only one a
    ``categorical`` entry: node channels ``atom_type`` and ``charge`` and the
    pair channel ``bond``, each with its ``classes`` and its ``marginals``
    over the whole training split or ``half`` (whatever ``subset``), and the numbers of
    molecules dropped for lack of perceived bonds; with ``conditions``, their training
    statistics (as :func:`~molgen.molecules.qm9.qm9_train_val`).
    """
    featurizer = AtomFeaturizer()
    train = QM9BondsDataset(
        "train",
        subset=subset,
        cache_dir=cache_dir,
        featurizer=featurizer,
        workers=perception_workers,
        conditions=conditions,
        half=half,
    )
    val = QM9BondsDataset(
        "valid",
        subset=val_subset,
        cache_dir=cache_dir,
        featurizer=featurizer,
        conditions=conditions,
        normalization=train.conditions,
    )
    full_train = (
        train if subset is None else QM9BondsDataset("train", cache_dir=cache_dir, featurizer=featurizer, half=half)
    )
    info = train.info(
        "qm9_bonds",
        categorical=full_train.categorical_info(),
        num_dropped={"train": full_train.num_dropped, "valid": val.num_dropped},
    )
    return train, val, info


def _main() -> None:  # pragma: no cover - manual use: python -m molgen.molecules.qm9_bonds [--force]
    import argparse

    parser = argparse.ArgumentParser(description="Build the QM9 bonds cache and print its figures.")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()
    path = process_qm9_bonds(args.cache_dir, force=args.force, workers=args.workers)
    bonds = torch.load(path, weights_only=True)
    print(f"{path}: {summarize_bond_cache(bonds)}")
    _, _, info = qm9_bonds_train_val(cache_dir=args.cache_dir, val_subset=1)
    for channel in [*info.categorical["node"], info.categorical["edge"]]:
        shown = ", ".join(f"{c}: {m:.4f}" for c, m in zip(channel["classes"], channel["marginals"]))
        print(f"{channel['name']} marginals (train): {shown}")
    print(f"dropped: {info.num_dropped}")


if __name__ == "__main__":
    _main()
