"""Fixed fragments for inpainting: the atoms a user keeps (a scaffold to decorate, fragments to link).

A :class:`Fragment` is read from an SDF file (every record, in order, concatenated:
one record with disconnected parts or one record per fragment). Its atoms keep
their input order and coordinates; bond orders are Kekulé (1-3), as the bond
models generate them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rdkit import Chem

from molgen.molecules.sdf import read_sdf

__all__ = ["MIN_ATOM_DISTANCE", "Fragment", "read_fragment"]

#: Closer atoms are an overlap (two fragments placed on top of each other), not a structure (Å).
MIN_ATOM_DISTANCE = 0.5


@dataclass(frozen=True)
class Fragment:
    """Atoms to keep: ``atomic_numbers`` [k], ``positions`` [k, 3] Å, formal ``charges`` [k] and
    ``bonds`` [b, 3] rows ``(i, j, order)`` with ``i < j`` and Kekulé order 1-3."""

    atomic_numbers: np.ndarray
    positions: np.ndarray
    charges: np.ndarray
    bonds: np.ndarray

    @property
    def num_atoms(self) -> int:
        return len(self.atomic_numbers)

    @property
    def num_components(self) -> int:
        """Connected parts of the bond graph (2 or more for fragments to link)."""
        parent = list(range(self.num_atoms))

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for i, j, _ in self.bonds.tolist():
            parent[root(i)] = root(j)
        return len({root(i) for i in range(self.num_atoms)})


def _kekulized(mol: Chem.Mol, path: Path, index: int) -> Chem.Mol:
    mol = Chem.Mol(mol)
    try:
        Chem.Kekulize(mol, clearAromaticFlags=True)
    except Exception as err:  # RDKit raises its own KekulizeException
        raise ValueError(f"{path}: record {index} has aromatic bonds that cannot be kekulized ({err})") from None
    return mol


def read_fragment(path: str | Path) -> Fragment:
    """Every atom of every record of ``path``, in order, with their bonds.

    Raises:
        FileNotFoundError: no such file.
        ValueError: an unreadable or empty file, a record without coordinates, non-finite
            coordinates, bonds other than single/double/triple/aromatic, or overlapping atoms.
    """
    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise ValueError(f"{path}: an empty file, no atoms to keep")
    mols = read_sdf(path)
    if not mols or sum(m.GetNumAtoms() for m in mols) == 0:
        raise ValueError(f"{path}: no atoms to keep")
    z, pos, charges, bonds, offset = [], [], [], [], 0
    orders = {Chem.BondType.SINGLE: 1, Chem.BondType.DOUBLE: 2, Chem.BondType.TRIPLE: 3}
    for index, mol in enumerate(mols):
        if mol.GetNumConformers() == 0:
            raise ValueError(f"{path}: record {index} has no coordinates")
        mol = _kekulized(mol, path, index)
        z += [atom.GetAtomicNum() for atom in mol.GetAtoms()]
        charges += [atom.GetFormalCharge() for atom in mol.GetAtoms()]
        pos.append(mol.GetConformer().GetPositions())
        for bond in mol.GetBonds():
            if bond.GetBondType() not in orders:
                raise ValueError(f"{path}: record {index} has a {bond.GetBondType()} bond; molgen keeps orders 1-3")
            i, j = sorted((bond.GetBeginAtomIdx() + offset, bond.GetEndAtomIdx() + offset))
            bonds.append((i, j, orders[bond.GetBondType()]))
        offset += mol.GetNumAtoms()
    positions = np.concatenate(pos).astype(np.float64)
    if not np.isfinite(positions).all():
        raise ValueError(f"{path}: coordinates contain NaN or inf")
    distances = np.linalg.norm(positions[:, None] - positions[None], axis=-1) + np.eye(len(positions)) * 1e9
    if distances.min() < MIN_ATOM_DISTANCE:
        i, j = np.unravel_index(distances.argmin(), distances.shape)
        raise ValueError(
            f"{path}: atoms {i + 1} and {j + 1} are {distances[i, j]:.2f} A apart: fragments overlap "
            f"(atoms must be at least {MIN_ATOM_DISTANCE} A apart)"
        )
    return Fragment(
        np.array(z, dtype=np.int64),
        positions,
        np.array(charges, dtype=np.int64),
        np.array(bonds, dtype=np.int64).reshape(-1, 3),
    )
