"""Turning generated point clouds into RDKit molecules and SDF files.

Bonds are perceived from 3D coordinates with RDKit's ``rdDetermineBonds``
(connect-the-dots connectivity from covalent radii, then xyz2mol-style bond
order assignment). Molecules whose bond orders cannot be assigned are kept
without bonds and flagged, never dropped.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem import rdDetermineBonds

from molgen.io import atomic_output
from molgen.molecules.record import MoleculeRecord

__all__ = [
    "BONDS_GENERATED_TAG",
    "BONDS_PERCEIVED_TAG",
    "SDFRecord",
    "molecule_from_coordinates",
    "molecule_from_graph",
    "read_records",
    "read_sdf",
    "write_sdf",
]

BONDS_PERCEIVED_TAG = "bonds_perceived"
"""Integer property (1/0) set by :func:`molecule_from_coordinates`; written as an SD tag."""
BONDS_GENERATED_TAG = "bonds_generated"
"""Integer property (1) set by :func:`molecule_from_graph`: bonds and charges come from the model."""

# Bond-order assignment enumerates valence combinations and is exponential in the
# number of multi-valent atoms (e.g. 20 unbonded N/O atoms took ~20 s). Every QM9
# ground-truth geometry we tried needed < 100 iterations; 1000 costs a few ms.
_DEFAULT_MAX_ITERATIONS = 1000

# Å; the shortest real bond (H-H) is 0.74 Å.
_MIN_HUECKEL_DISTANCE = 0.5


@contextmanager
def _native_output_silenced() -> Iterator[None]:
    """Point file descriptors 1 and 2 at /dev/null: the extended-Hückel code prints
    warnings ("Distance between atoms ... is suspicious") past Python and RDKit logging."""
    libc = ctypes.CDLL(None)
    sys.stdout.flush()
    sys.stderr.flush()
    libc.fflush(None)
    saved = [os.dup(fd) for fd in (1, 2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in (1, 2):
            os.dup2(devnull, fd)
        yield
    finally:
        libc.fflush(None)
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)


def _add_conformer(rw: Chem.RWMol, pos: np.ndarray) -> None:
    """Give ``rw`` one 3D conformer with the positions ``pos`` [n, 3] (Å)."""
    conf = Chem.Conformer(len(pos))
    for index, xyz in enumerate(pos.tolist()):
        conf.SetAtomPosition(index, xyz)
    conf.Set3D(True)
    rw.AddConformer(conf, assignId=True)


def molecule_from_coordinates(
    z: Any,
    pos: Any,
    charge: int = 0,
    *,
    max_iterations: int = _DEFAULT_MAX_ITERATIONS,
) -> tuple[Chem.Mol, bool]:
    """Build an RDKit molecule with explicit hydrogens and a 3D conformer.

    Every atom is added explicitly with ``NoImplicit`` set, so RDKit never invents
    hydrogens. Bonds come from ``DetermineConnectivity`` (covalent radii, then
    extended Hückel if bond orders cannot be assigned to that connectivity) followed
    by ``DetermineBondOrders`` (capped at ``max_iterations``). If every attempt fails,
    the returned molecule has **no bonds at all** (a connectivity-only guess with
    all-single bonds would look like a real, but wrong, structure downstream).

    The molecule carries an int property ``bonds_perceived`` (1/0) equal to the
    returned flag, which :func:`write_sdf` writes as an SD tag.

    Args:
        z: Integer array-like [n] of atomic numbers.
        pos: Array-like [n, 3] of positions in Å.
        charge: Total formal charge used for bond-order assignment.
        max_iterations: Cap on bond-order search iterations (0 = unlimited, may hang).

    Returns:
        ``(mol, bonds_ok)``; ``bonds_ok`` is True iff bond orders were assigned
        (the molecule is then also sanitized).

    Raises:
        ValueError: on mismatched shapes, zero atoms, non-finite coordinates or
            invalid atomic numbers.
    """
    z_arr = np.asarray(z)
    pos_arr = np.asarray(pos, dtype=np.float64)
    if z_arr.ndim != 1 or len(z_arr) == 0 or pos_arr.shape != (len(z_arr), 3):
        raise ValueError(
            f"expected atomic numbers [n] and positions [n, 3] with n >= 1, got {z_arr.shape} and {pos_arr.shape}"
        )
    if not np.issubdtype(z_arr.dtype, np.integer) or z_arr.min() < 1 or z_arr.max() > 118:
        raise ValueError(f"atomic numbers must be integers in 1..118, got {z_arr.tolist()}")
    if not np.isfinite(pos_arr).all():
        raise ValueError("positions contain NaN or inf")

    rw = Chem.RWMol()
    for atomic_num in z_arr.tolist():
        atom = Chem.Atom(atomic_num)
        atom.SetNoImplicit(True)
        rw.AddAtom(atom)
    _add_conformer(rw, pos_arr)
    bare = rw.GetMol()

    mol, ok = bare, False
    # Covalent-radius connectivity first (fast); extended-Hückel connectivity when that
    # fails: radii over-connect strained cages (QM9 has C...C contacts of up to 1.97 Å
    # across small bicyclic rings), which 4% of real QM9 test geometries hit.
    with rdBase.BlockLogs():  # failures are expected for poor samples; keep stderr quiet
        # YAeHMOP (behind useHueckel) crashes the process on near-coincident atoms: only
        # geometries with every pair >= _MIN_HUECKEL_DISTANCE apart get the fallback.
        pair_dist = np.linalg.norm(pos_arr[:, None, :] - pos_arr[None, :, :], axis=-1)
        np.fill_diagonal(pair_dist, np.inf)
        attempts = (False, True) if len(pos_arr) < 2 or pair_dist.min() >= _MIN_HUECKEL_DISTANCE else (False,)
        for use_hueckel in attempts:
            try:
                bonded = Chem.Mol(bare)
                with _native_output_silenced() if use_hueckel else nullcontext():
                    rdDetermineBonds.DetermineConnectivity(bonded, useHueckel=use_hueckel, charge=charge)
                rdDetermineBonds.DetermineBondOrders(bonded, charge=charge, maxIterations=max_iterations)
                mol, ok = bonded, True
                break
            except (ValueError, RuntimeError):  # incl. valence/kekulize and iteration-cap errors
                continue
    mol.SetIntProp(BONDS_PERCEIVED_TAG, int(ok))
    return mol, ok


def molecule_from_graph(z: Any, pos: Any, bonds: Any, charges: Any | None = None) -> Chem.Mol:
    """Build an RDKit molecule from a given graph (no perception), with a 3D conformer.

    Every atom is explicit and ``NoImplicit``; bonds are single, double or
    triple as given (Kekulé form), formal charges as given. The molecule is
    not sanitized (an invalid graph is kept as generated, for evaluation to
    judge); its property cache is updated leniently so it can be written.
    It carries the int property ``bonds_generated`` = 1.

    Args:
        z: [n] atomic numbers.
        pos: [n, 3] positions, Å.
        bonds: [b, 3] integer rows ``(i, j, order)``, order 1-3, ``i != j``.
        charges: [n] formal charges (default all 0).

    Raises:
        ValueError: on mismatched shapes, invalid atomic numbers, bond
            orders or atom indices, or repeated pairs.
    """
    z_arr = np.asarray(z)
    pos_arr = np.asarray(pos, dtype=np.float64)
    bond_arr = np.asarray(bonds, dtype=np.int64).reshape(-1, 3)
    charge_arr = np.zeros(len(z_arr), dtype=np.int64) if charges is None else np.asarray(charges, dtype=np.int64)
    if z_arr.ndim != 1 or len(z_arr) == 0 or pos_arr.shape != (len(z_arr), 3) or charge_arr.shape != z_arr.shape:
        raise ValueError(
            f"expected atomic numbers [n], positions [n, 3] and charges [n] with n >= 1, got {z_arr.shape}, "
            f"{pos_arr.shape} and {charge_arr.shape}"
        )
    if not np.issubdtype(z_arr.dtype, np.integer) or z_arr.min() < 1 or z_arr.max() > 118:
        raise ValueError(f"atomic numbers must be integers in 1..118, got {z_arr.tolist()}")
    i, j, order = bond_arr.T
    in_range = len(bond_arr) == 0 or (min(i.min(), j.min()) >= 0 and max(i.max(), j.max()) < len(z_arr))
    if not in_range or (i == j).any() or not np.isin(order, (1, 2, 3)).all():
        raise ValueError("bonds must be rows (i, j, order) of distinct atoms with order 1, 2 or 3")
    rw = Chem.RWMol()
    for atomic_num, charge in zip(z_arr.tolist(), charge_arr.tolist()):
        atom = Chem.Atom(atomic_num)
        atom.SetNoImplicit(True)
        atom.SetFormalCharge(charge)
        rw.AddAtom(atom)
    types = {1: Chem.BondType.SINGLE, 2: Chem.BondType.DOUBLE, 3: Chem.BondType.TRIPLE}
    for a, b, k in bond_arr.tolist():
        if rw.GetBondBetweenAtoms(a, b) is not None:
            raise ValueError(f"bond between atoms {a} and {b} given twice")
        rw.AddBond(a, b, types[k])
    _add_conformer(rw, pos_arr)
    mol = rw.GetMol()
    mol.UpdatePropertyCache(strict=False)
    mol.SetIntProp(BONDS_GENERATED_TAG, 1)
    return mol


class SDFRecord(NamedTuple):
    """One SDF entry: a molecule, its title line and extra SD tags."""

    mol: Chem.Mol
    title: str = ""
    properties: Mapping[str, Any] = MappingProxyType({})


def _check_tag(key: str, value: str) -> None:
    """SD tags must not break the record structure."""
    if not key or any(c in key for c in "<>\n\r"):
        raise ValueError(f"invalid SD tag name {key!r}")
    if key.startswith("_"):
        raise ValueError(f"SD tag name {key!r} must not start with '_' (RDKit hides those)")
    # A blank line ends an SD data item and "$$$$" ends the record.
    lines = value.splitlines()
    if any(line.startswith("$$$$") for line in lines) or any(not ln.strip() for ln in lines[1:]):
        raise ValueError(f"SD tag {key!r} value has blank or '$$$$' lines: {value!r}")


def write_sdf(path: str | os.PathLike, records: Iterable[SDFRecord | tuple]) -> int:
    """Write molecules to a multi-record SDF file, atomically.

    The output is first written to a temporary file in the same directory and
    then renamed over ``path``, so an existing file is either fully replaced or
    left untouched (also when ``records`` is a generator that raises).

    Each record's title becomes the molecule name line; its properties (values
    converted with ``str``) become SD tags, in addition to the molecule's own
    non-private properties (e.g. ``bonds_perceived``). Bonds are written in
    Kekulé form where possible, otherwise with aromatic bond types.

    Args:
        path: Output file.
        records: ``SDFRecord(mol, title, properties)`` or equivalent tuples.

    Returns:
        Number of molecules written.

    Raises:
        FileNotFoundError / NotADirectoryError / IsADirectoryError / PermissionError:
            see :func:`molgen.io.check_writable`.
        ValueError: on a multi-line title or an invalid SD tag.
    """
    count = 0
    with atomic_output(path) as tmp:
        # Let RDKit own the file: a Python stream wrapper can leave a stale Python
        # error behind when the writer is torn down during exception propagation.
        writer = Chem.SDWriter(str(tmp))
        try:
            for record in records:
                mol, title, props = SDFRecord(*record)
                if not isinstance(title, str) or "\n" in title or "\r" in title:
                    raise ValueError(f"SDF title must be a single-line str, got {title!r}")
                mol = Chem.Mol(mol)  # do not mutate the caller's molecule
                mol.SetProp("_Name", title)
                for key, value in props.items():
                    value = str(value)
                    _check_tag(key, value)
                    mol.SetProp(key, value)
                try:
                    with rdBase.BlockLogs():
                        writer.write(mol)
                except Chem.KekulizeException:
                    # Nothing was written for this record; retry keeping aromatic bonds.
                    writer.SetKekulize(False)
                    writer.write(mol)
                    writer.SetKekulize(True)
                count += 1
        finally:
            writer.close()
    return count


def read_sdf(path: str | os.PathLike) -> list[Chem.Mol]:
    """Read every record of an SDF file, keeping explicit hydrogens.

    Molecules are sanitized when possible and returned unsanitized otherwise
    (e.g. bond-less or chemically invalid samples).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if a record cannot be parsed at all.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SDF file not found: {path}")
    mols = []
    with rdBase.BlockLogs():
        supplier = Chem.SDMolSupplier(str(path), removeHs=False, sanitize=False)
        for i, mol in enumerate(supplier):
            if mol is None:
                raise ValueError(f"{path}: record {i} could not be parsed")
            sanitized = Chem.Mol(mol)
            try:
                Chem.SanitizeMol(sanitized)
                mol = sanitized
            except (ValueError, RuntimeError):
                pass
            mols.append(mol)
    return mols


def read_records(path: str | os.PathLike) -> tuple[list[MoleculeRecord], list[str]]:
    """Read any SDF (molgen's or not) into :class:`MoleculeRecord` s for evaluation.

    Bonds in the file are kept on ``record.mol``; coordinates come from the
    first conformer. Records that cannot be used (unparsable blocks, no
    atoms, no coordinates, NaN/inf coordinates) are skipped and described in
    the returned problem list, so one bad record never hides the rest.
    Hydrogens the bond block implies but does not place are counted in
    ``implicit_hydrogens`` (a bond-less record is taken as given).

    Returns:
        ``(records, problems)``; problems are one-line strings naming the record.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file holds no records at all.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SDF file not found: {path}")
    records: list[MoleculeRecord] = []
    problems: list[str] = []
    with rdBase.BlockLogs(), open(path, "rb") as handle:
        for i, mol in enumerate(Chem.ForwardSDMolSupplier(handle, removeHs=False, sanitize=False)):
            label = f"record {i}"
            if mol is None:
                problems.append(f"{label}: unparsable")
                continue
            name = mol.GetProp("_Name") if mol.HasProp("_Name") else ""
            label += f" ({name})" if name else ""
            if mol.GetNumAtoms() == 0:
                problems.append(f"{label}: no atoms")
                continue
            if mol.GetNumConformers() == 0:
                problems.append(f"{label}: no coordinates")
                continue
            positions = np.asarray(mol.GetConformer().GetPositions(), dtype=np.float64)
            if not np.isfinite(positions).all():
                problems.append(f"{label}: NaN or infinite coordinates")
                continue
            implicit = 0
            if mol.GetNumBonds() > 0:
                mol.UpdatePropertyCache(strict=False)
                implicit = sum(atom.GetNumImplicitHs() for atom in mol.GetAtoms())
            records.append(
                MoleculeRecord(
                    atomic_numbers=np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int64),
                    positions=positions,
                    mol=mol,
                    name=name or str(i),
                    implicit_hydrogens=implicit,
                    properties={k: mol.GetProp(k) for k in mol.GetPropNames()},
                )
            )
    if not records and not problems:
        raise ValueError(f"no molecules in {path}")
    return records, problems
