"""QM9's molecular properties, the conditioning targets of EDM's protocol (issue 26).

qm9pack's CSVs hold the DFT properties of every molecule beside its geometry.
:func:`process_qm9_properties` reads the six that EDM conditions on once into a
cache (``qm9_properties.pt``, beside the QM9 cache, in the same molecule order:
ascending QM9 index) in the units EDM reports errors in:

=========  ===========================  ================  ======================
name       qm9pack column               unit              factor from the column
=========  ===========================  ================  ======================
``alpha``  ``Polarizability_bohr3``     Bohr^3            1
``gap``    ``HOMO_LUMO_gap_au``         meV               27211.386 (Hartree)
``homo``   ``HOMO_au``                  meV               27211.386
``lumo``   ``LUMO_au``                  meV               27211.386
``mu``     ``Dipole_debye``             D                 1
``Cv``     ``Heatcapacity_Cv_cal_mol_K`` cal/(mol K)      1
=========  ===========================  ================  ======================

EDM's protocol trains the property predictor and the conditional generator on
disjoint halves of the training split (:func:`training_half`).
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from tqdm.auto import tqdm

from molgen.io import atomic_output, read_cache

__all__ = [
    "HALVES",
    "PROPERTIES",
    "PROPERTIES_CACHE_FILENAME",
    "PropertySpec",
    "check_property_names",
    "load_qm9_properties",
    "process_qm9_properties",
    "training_half",
]

log = logging.getLogger(__name__)

HARTREE_TO_MEV = 27211.386245988
"""meV per Hartree (CODATA 2018)."""


class PropertySpec(NamedTuple):
    """Where a property comes from and its unit: ``value = float(row[column]) * factor``."""

    column: str
    factor: float
    unit: str


PROPERTIES: dict[str, PropertySpec] = {
    "alpha": PropertySpec("Polarizability_bohr3", 1.0, "Bohr^3"),
    "gap": PropertySpec("HOMO_LUMO_gap_au", HARTREE_TO_MEV, "meV"),
    "homo": PropertySpec("HOMO_au", HARTREE_TO_MEV, "meV"),
    "lumo": PropertySpec("LUMO_au", HARTREE_TO_MEV, "meV"),
    "mu": PropertySpec("Dipole_debye", 1.0, "D"),
    "Cv": PropertySpec("Heatcapacity_Cv_cal_mol_K", 1.0, "cal/(mol K)"),
}
"""The properties a QM9 model can be conditioned on, in cache column order."""

PROPERTIES_CACHE_FILENAME = "qm9_properties.pt"
PROPERTIES_CACHE_VERSION = 1

HALVES = ("first", "second")
"""The halves of the training split: ``first`` trains EDM's property predictor, ``second`` the generator."""


def check_property_names(names: Sequence[str]) -> list[str]:
    """``names`` as a list, checked: known QM9 properties, each once.

    Raises:
        ValueError: an unknown or repeated name (one line listing the known ones).
    """
    names = list(names)
    unknown = [name for name in names if name not in PROPERTIES]
    if unknown:
        raise ValueError(f"unknown QM9 properties {unknown}; choose from {', '.join(PROPERTIES)}")
    if len(set(names)) != len(names):
        raise ValueError(f"each property may be named once, got {names}")
    return names


def process_qm9_properties(
    cache_dir: str | os.PathLike,
    *,
    force: bool = False,
    csv_paths: Sequence[str | os.PathLike] | None = None,
) -> Path:
    """Read the :data:`PROPERTIES` of every molecule of qm9pack's CSVs into a cache, unless a valid one exists.

    The cache holds ``index`` int64 [M] (QM9 index, ascending, as the QM9 cache) and ``values``
    float64 [M, 6] in the units of :data:`PROPERTIES`, columns in its order; written atomically.
    """
    from molgen.molecules.qm9 import locate_qm9pack_csvs

    path = Path(cache_dir).expanduser() / PROPERTIES_CACHE_FILENAME
    if not force and read_cache(path, "QM9 properties", PROPERTIES_CACHE_VERSION) is not None:
        return path
    paths = [Path(p) for p in csv_paths] if csv_paths is not None else locate_qm9pack_csvs()
    indices, rows = [], []
    # a one-time cache build: its bar shows on a terminal and stays out of logs (disable=None)
    with tqdm(desc="Reading QM9 properties", unit="mol", disable=None) as bar:
        for csv_path in paths:
            with open(csv_path, newline="") as f:
                for row in csv.DictReader(f):
                    try:
                        indices.append(int(row["Index"]))
                        rows.append([float(row[spec.column]) * spec.factor for spec in PROPERTIES.values()])
                    except (KeyError, ValueError) as err:
                        raise ValueError(f"malformed property in {csv_path} (Index={row.get('Index')!r}): {err}")
                    bar.update()
    if not indices:
        raise ValueError(f"no molecules found in {[str(p) for p in paths]}")
    index = torch.tensor(indices, dtype=torch.long)
    order = torch.argsort(index)
    data = {
        "format_version": PROPERTIES_CACHE_VERSION,
        "names": list(PROPERTIES),
        "index": index[order],
        "values": torch.tensor(rows, dtype=torch.float64)[order],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        torch.save(data, tmp)
    log.info("wrote the properties of %d QM9 molecules to %s", len(indices), path)
    return path


def load_qm9_properties(qm9_index: torch.Tensor, names: Sequence[str], cache_dir: str | os.PathLike) -> torch.Tensor:
    """Properties ``names`` of the molecules with QM9 indices ``qm9_index`` [M]: float64 [M, P], physical units.

    Builds the cache on first use (about half a minute).

    Raises:
        ValueError: unknown names, or indices the cache lacks (a QM9 cache of other molecules).
    """
    columns = [list(PROPERTIES).index(name) for name in check_property_names(names)]
    path = Path(cache_dir).expanduser() / PROPERTIES_CACHE_FILENAME
    data = read_cache(path, "QM9 properties", PROPERTIES_CACHE_VERSION)
    if data is None or data["names"] != list(PROPERTIES):
        data = torch.load(process_qm9_properties(cache_dir, force=True), weights_only=True)
    position = torch.searchsorted(data["index"], qm9_index).clamp(max=len(data["index"]) - 1)
    if not torch.equal(data["index"][position], qm9_index):
        raise ValueError(f"the QM9 property cache in {cache_dir} lacks some molecules: rebuild it (delete {path})")
    return data["values"][position][:, columns]


def training_half(select: torch.Tensor, half: str | None) -> torch.Tensor:
    """The ``half`` (:data:`HALVES`) of the training split positions ``select`` [100000] (EDM split order):
    the first 50,000 or the last 50,000, as EDM's ``qm9_second_half``; all of them for None."""
    if half is None:
        return select
    if half not in HALVES:
        raise ValueError(f"data.half must be null, 'first' or 'second', got {half!r}")
    middle = len(select) // 2
    return select[:middle] if half == "first" else select[middle:]
