"""PoseBusters "mol" checks for generated 3D molecules.

`PoseBusters <https://github.com/maabuu/posebusters>`_ judges one molecule
(no protein, no reference pose) with its ``"mol"`` configuration: loading,
sanitization, InChI conversion, connectivity, radicals, bond lengths, bond
angles and internal clashes against RDKit distance-geometry bounds, ring and
double-bond flatness and, optionally, the internal energy relative to an
ETKDG/UFF conformer ensemble.

PoseBusters needs bonds. They come

* from the record itself when it carries bonds (``record.has_bonds``), or
* from the geometry via :func:`molgen.molecules.sdf.molecule_from_coordinates`.

A bare molecule with elements outside molgen's tables
(:mod:`molgen.molecules.metrics.elements`) is not perceived (RDKit's
extended-Hückel fallback exits or crashes on e.g. Xe and U), so it has no
bonds. A molecule whose bonds cannot be perceived **fails every check**: it is
counted, not skipped, so sampling bad geometries lowers the pass rates. The
same holds for a molecule that makes PoseBusters raise.

A check PoseBusters runs but cannot decide reports NaN (``None`` in the
per-molecule results). For a molecule that fails sanitization this is the
molecule's fault (the geometry checks need a sanitizable molecule), so the
check counts as failed. Otherwise it counts as passed, as in PoseBusters' own
``Pass`` column: the typical case is the internal-energy check on a strained
QM9 cage whose reference ensemble fails to embed (about 5% of QM9 test
molecules). ``num_undecided`` counts the molecules this benefits.

The internal-energy check dominates the cost: 0.5-0.8 s per QM9 molecule on
two shared cores, much of it on the few strained cages whose ensemble fails
to embed (up to ~17 s each), against ~0.02 s for all other checks together.
``energy=False`` leaves it out, ``max_molecules`` busts a seeded random subset
and ``workers`` spreads the molecules over processes.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import logging
import multiprocessing
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import rdkit
from rdkit import Chem, rdBase

from molgen.molecules.metrics.elements import elements_outside_tables
from molgen.molecules.record import MoleculeRecord
from molgen.molecules.sdf import molecule_from_coordinates

__all__ = ["PoseBustersResult", "evaluate_posebusters", "posebusters_config"]

_ENERGY_FUNCTION = "energy_ratio"
_SANITIZATION = "sanitization"
# Chunks per worker: several, so that a chunk of slow molecules does not leave the other workers idle.
_CHUNKS_PER_WORKER = 4


@dataclass
class PoseBustersResult:
    """Outcome of :func:`evaluate_posebusters`.

    Attributes:
        summary: the pass rate (fraction in [0, 1] of the evaluated molecules)
            of every check, keyed by PoseBusters' column name in snake case
            (``mol_pred_loaded``, ``sanitization``, ``inchi_convertible``,
            ``all_atoms_connected``, ``no_radicals``, ``bond_lengths``,
            ``bond_angles``, ``internal_steric_clash``,
            ``aromatic_ring_flatness``, ``non_aromatic_ring_non_flatness``,
            ``double_bond_flatness`` and, with the energy check,
            ``internal_energy``); ``all_passed`` (rate of molecules passing
            every check) and the counts ``num_evaluated``,
            ``num_without_bonds``, ``num_errors`` (PoseBusters raised) and
            ``num_undecided`` (sanitizable molecules with at least one
            undecided check, counted as passed; see the module docstring).
        per_molecule: one entry per input record, in input order; None for
            records outside the evaluated subset, else a dict with ``name``,
            ``has_bonds``, every check (True, False, or None when undecided),
            ``all_passed`` and ``error`` (the exception text, or None).
    """

    summary: dict[str, float | int]
    per_molecule: list[dict[str, Any] | None]


def _require_posebusters() -> Any:
    """The ``posebusters`` module, or an ImportError that says how to get it."""
    try:
        import posebusters
    except ImportError as error:
        raise ImportError("PoseBusters checks need the posebusters package: pip install posebusters") from error
    return posebusters


def _snake_case(column: str) -> str:
    """``"Non-aromatic ring non-flatness"`` -> ``"non_aromatic_ring_non_flatness"``."""
    return re.sub(r"[^a-z0-9]+", "_", column.lower()).strip("_")


def posebusters_config(energy: bool = True, energy_threads: int | None = None) -> dict[str, Any]:
    """PoseBusters' ``"mol"`` configuration, optionally without the energy check.

    Modules that report no check are dropped: PoseBusters 0.6.5 lists the
    energy module twice, once without output. The ensemble energies are
    cached, but not failures, so the duplicate doubled the cost of the
    molecules whose ensemble fails to embed, the slowest ones.

    Args:
        energy: keep the internal-energy check.
        energy_threads: threads for the energy check's conformer ensemble;
            None keeps PoseBusters' default (all cores).

    Returns:
        A configuration dict for ``PoseBusters(config=...)``.
    """
    posebusters = _require_posebusters()
    config = copy.deepcopy(posebusters.PoseBusters(config="mol").config)
    modules = []
    for module in config["modules"]:
        if not module.get("chosen_binary_test_output"):
            continue
        if module["function"] == _ENERGY_FUNCTION:
            if not energy:
                continue
            if energy_threads is not None:
                module.setdefault("parameters", {})["num_threads"] = energy_threads
        modules.append(module)
    config["modules"] = modules
    config["max_workers"] = 0  # PoseBusters' own process pool stays off; we parallelise over molecules
    return config


def _check_names(config: dict[str, Any]) -> list[str]:
    """The snake-case check names a configuration reports, in PoseBusters' column order."""
    return [
        _snake_case(module.get("rename_outputs", {}).get(output, output))
        for module in config["modules"]
        for output in module["chosen_binary_test_output"]
    ]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence RDKit, PoseBusters' logging and Python warnings (failures on bad samples are expected)."""
    loggers = [logging.getLogger(name) for name in ("posebusters", "rdkit")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        with rdBase.BlockLogs(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
        # PoseBusters' CaptureLogger re-points RDKit's Python log handler at whatever sys.stderr
        # was during the call (a temporary stream under redirection or test capture); point it
        # back at the process's stderr so that a later call never writes to a closed stream.
        if getattr(rdkit, "log_handler", None) is not None:
            rdkit.log_handler.setStream(sys.__stderr__)


def _bonded_molecule(record: MoleculeRecord) -> Chem.Mol | None:
    """The record's bonded molecule with ``record.positions`` as its one conformer, or None without bonds."""
    positions = np.asarray(record.positions, dtype=np.float64)
    if record.has_bonds:
        # PoseBusters wants exactly one conformer; without one every geometry check would be undecided.
        mol = Chem.Mol(record.mol)
        if positions.shape != (mol.GetNumAtoms(), 3):
            raise ValueError(f"{mol.GetNumAtoms()} atoms in the molecule but positions {positions.shape}")
        mol.RemoveAllConformers()
        conformer = Chem.Conformer(mol.GetNumAtoms())
        for i, xyz in enumerate(positions.tolist()):
            conformer.SetAtomPosition(i, xyz)
        conformer.Set3D(True)
        mol.AddConformer(conformer, assignId=True)
        return mol
    if record.num_atoms == 0 or not np.isfinite(positions).all() or elements_outside_tables(record.atomic_numbers):
        return None
    mol, bonds_ok = molecule_from_coordinates(np.asarray(record.atomic_numbers), positions)
    return mol if bonds_ok else None


def _decision(value: Any) -> bool | None:
    """A PoseBusters cell as True/False, or None for NaN/NA (the check could not be decided)."""
    import pandas as pd  # a posebusters dependency, so present whenever busting runs

    return None if pd.isna(value) else bool(value)


def _counts_as_passed(entry: dict[str, Any], check: str) -> bool:
    """Whether ``check`` counts as passed; undecided (None) passes only for sanitizable molecules."""
    value = entry[check]
    return entry.get(_SANITIZATION) is True if value is None else value


def _bust_one(buster: Any, check_names: list[str], record: MoleculeRecord) -> dict[str, Any]:
    """Per-molecule entry of :class:`PoseBustersResult` (see there for the keys)."""
    entry: dict[str, Any] = {"name": record.name, "has_bonds": False, "error": None}
    checks: dict[str, bool | None] = dict.fromkeys(check_names, False)
    try:
        mol = _bonded_molecule(record)
        if mol is not None:
            entry["has_bonds"] = True
            row = buster.bust([mol]).iloc[0]
            cells = {_snake_case(column): value for column, value in row.items()}
            checks = {name: _decision(cells.get(name)) for name in check_names}
    except Exception as error:  # one bad molecule must not end a 10,000-sample run
        entry["error"] = f"{type(error).__name__}: {error}"
    entry.update(checks)
    entry["all_passed"] = all(_counts_as_passed(entry, name) for name in check_names)
    return entry


def _bust_chunk(records: Sequence[MoleculeRecord], config: dict[str, Any]) -> list[dict[str, Any]]:
    """Bust ``records`` one by one in this process (also the worker entry point)."""
    posebusters = _require_posebusters()
    buster = posebusters.PoseBusters(config=copy.deepcopy(config))
    check_names = _check_names(config)
    with _quiet():
        return [_bust_one(buster, check_names, record) for record in records]


def _select(num_records: int, max_molecules: int | None, seed: int) -> list[int]:
    """Sorted indices of the molecules to evaluate: all, or a seeded random subset."""
    if max_molecules is None or max_molecules >= num_records:
        return list(range(num_records))
    chosen = np.random.default_rng(seed).choice(num_records, size=max_molecules, replace=False)
    return sorted(chosen.tolist())


def evaluate_posebusters(
    records: Sequence[MoleculeRecord],
    *,
    max_molecules: int | None = None,
    energy: bool = True,
    workers: int = 1,
    seed: int = 0,
) -> PoseBustersResult:
    """Run PoseBusters' ``"mol"`` checks (see the module docstring) on a set of molecules.

    Args:
        records: molecules to evaluate.
        max_molecules: evaluate at most this many, a random subset drawn with
            ``seed`` (the same records and seed give the same subset); None = all.
        energy: include the internal-energy check (25-40x the cost of all
            other checks together).
        workers: processes to spread the molecules over (chunks of molecules,
            ``spawn`` start method; call from under ``if __name__ == "__main__":``
            in scripts). With several workers each energy check uses one thread.
        seed: seed of the subset draw.

    Returns:
        Pass rates and per-molecule results (see :class:`PoseBustersResult`).

    Raises:
        ImportError: if posebusters is not installed.
        ValueError: on no records, ``max_molecules < 1`` or ``workers < 1``.
    """
    _require_posebusters()
    if len(records) == 0:
        raise ValueError("no molecules to evaluate")
    if max_molecules is not None and max_molecules < 1:
        raise ValueError(f"max_molecules must be at least 1 or None, got {max_molecules}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")

    selected = _select(len(records), max_molecules, seed)
    chosen = [records[i] for i in selected]
    parallel = workers > 1 and len(chosen) > 1
    # One thread per energy check in parallel runs: the processes already keep the cores busy.
    config = posebusters_config(energy, energy_threads=1 if parallel else None)
    if not parallel:
        entries = _bust_chunk(chosen, config)
    else:
        num_chunks = min(len(chosen), workers * _CHUNKS_PER_WORKER)
        bounds = np.linspace(0, len(chosen), num_chunks + 1).round().astype(int)
        chunks = [(chosen[a:b], config) for a, b in itertools.pairwise(bounds)]
        # spawn, not fork: the caller may hold threads (torch, OpenMP) that a fork would copy mid-state.
        with multiprocessing.get_context("spawn").Pool(min(workers, num_chunks)) as pool:
            entries = [entry for chunk in pool.starmap(_bust_chunk, chunks) for entry in chunk]

    per_molecule: list[dict[str, Any] | None] = [None] * len(records)
    for index, entry in zip(selected, entries):
        per_molecule[index] = entry

    n = len(entries)
    check_names = _check_names(config)
    summary: dict[str, float | int] = {
        name: sum(_counts_as_passed(e, name) for e in entries) / n for name in check_names
    }
    summary["all_passed"] = sum(e["all_passed"] for e in entries) / n
    summary["num_evaluated"] = n
    summary["num_without_bonds"] = sum(not e["has_bonds"] and e["error"] is None for e in entries)
    summary["num_errors"] = sum(e["error"] is not None for e in entries)
    summary["num_undecided"] = sum(
        e.get(_SANITIZATION) is True and any(e[name] is None for name in check_names) for e in entries
    )
    return PoseBustersResult(summary=summary, per_molecule=per_molecule)
