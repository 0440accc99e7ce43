"""How closely generated conformers follow reference conformers: bond lengths, bond angles and torsions.

Local geometry is what a force field or a crystal structure constrains: a
model can produce valid graphs with distorted bonds, angles or torsions, and
the distribution section's bond lengths (element pairs by distance, see
:mod:`molgen.molecules.metrics.distribution`) do not tell a C-C single bond
from an aromatic one. Here every internal coordinate is keyed by its bonded
path in the molecule's graph (bonds as the file or the model gives them,
aromaticity as RDKit perceives it), over heavy atoms only (hydrogens are
often placed afterwards, not generated):

    bond lengths   Å, per bond type: element symbols and the bond symbol between them
                   (``-`` single, ``=`` double, ``#`` triple, ``:`` aromatic), e.g. ``C-C``, ``C:C``, ``C=O``,
                   ``C-Cl``
    bond angles    degrees in [0, 180], per path of three atoms, e.g. ``C-C=O``, ``C:C:C``, ``C-N-C``
    torsions       degrees in [0, 180]: the absolute dihedral angle of a path of four atoms
                   (|phi|: a mirror image has the same torsions), e.g. ``C-C-C-C``, ``C:C-C=O``

A path is read in whichever direction gives the lexicographically smaller
key, so ``O=C-C`` and ``C-C=O`` are one type. Values that are undefined (atoms
on top of one another) are left out.

:func:`compare_geometry` gives, per kind, the Wasserstein-1 distance between
the sample's and the reference's values of each type, their mean weighted
by the reference's count of each type (over the types both sets have), and
the total variation distance between the type frequencies, which catches
types the sample lacks or invents.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from rdkit import Chem

from molgen.molecules.metrics.distribution import total_variation, wasserstein1

__all__ = ["GEOMETRY_KINDS", "GeometryStatistics", "compare_geometry", "conformer_geometry", "path_key"]

GEOMETRY_KINDS: Mapping[str, float] = {"bond_length": 0.01, "bond_angle": 0.03, "torsion": 0.03}
"""Kind of internal coordinate -> fraction of the reference's values a type needs to get its own
``<kind>_w1_<type>`` in :func:`compare_geometry`."""

_BOND_SYMBOLS = {
    Chem.BondType.SINGLE: "-",
    Chem.BondType.DOUBLE: "=",
    Chem.BondType.TRIPLE: "#",
    Chem.BondType.AROMATIC: ":",
}


@dataclass
class GeometryStatistics:
    """Internal coordinates of a set of conformers (see :func:`conformer_geometry`).

    Attributes:
        values: kind of :data:`GEOMETRY_KINDS` -> type key -> float64 [count] values
            (Å for ``bond_length``, degrees for ``bond_angle`` and ``torsion``).
        num_molecules: molecules summarized.
    """

    values: dict[str, dict[str, np.ndarray]]
    num_molecules: int


def path_key(symbols: list[str], bonds: list[str]) -> str:
    """Type key of a bonded path: ``path_key(["O", "C", "C"], ["=", "-"]) == "C-C=O"`` (see the module docstring).

    Args:
        symbols: element symbols along the path [k].
        bonds: bond symbols between consecutive atoms [k - 1].
    """
    forward = symbols[0] + "".join(bond + symbol for bond, symbol in zip(bonds, symbols[1:]))
    reverse = symbols[-1] + "".join(bond + symbol for bond, symbol in zip(bonds[::-1], symbols[-2::-1]))
    return min(forward, reverse)


def _angles(pos: np.ndarray, i: np.ndarray, j: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Degrees [m]: angles i-j-k for index arrays [m] into ``pos`` [n, 3]."""
    u, v = pos[i] - pos[j], pos[k] - pos[j]
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = np.einsum("md,md->m", u, v) / (np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1))
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


def _torsions(pos: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Degrees [m] in [0, 180]: absolute dihedral angles a-b-c-d for index arrays [m] into ``pos`` [n, 3]."""
    b0, b1, b2 = pos[a] - pos[b], pos[c] - pos[b], pos[d] - pos[c]
    with np.errstate(invalid="ignore", divide="ignore"):
        axis = b1 / np.linalg.norm(b1, axis=1, keepdims=True)
        v = b0 - np.einsum("md,md->m", b0, axis)[:, None] * axis
        w = b2 - np.einsum("md,md->m", b2, axis)[:, None] * axis
        x = np.einsum("md,md->m", v, w)
        y = np.einsum("md,md->m", np.cross(axis, v), w)
    return np.abs(np.degrees(np.arctan2(y, x)))


def _molecule_geometry(mol: Chem.Mol, conf_id: int) -> dict[str, tuple[list[str], np.ndarray]]:
    """Kind -> (type key per value, values) of one molecule's heavy atoms."""
    heavy = Chem.RemoveHs(mol)
    pos = heavy.GetConformer(conf_id).GetPositions()
    symbols = [atom.GetSymbol() for atom in heavy.GetAtoms()]
    neighbours: list[list[int]] = [[] for _ in symbols]
    bond_symbol: dict[tuple[int, int], str] = {}
    for bond in heavy.GetBonds():
        a, b = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        bond_symbol[a, b] = bond_symbol[b, a] = _BOND_SYMBOLS.get(bond.GetBondType(), "~")
        neighbours[a].append(b)
        neighbours[b].append(a)

    def key(path: tuple[int, ...]) -> str:
        return path_key([symbols[a] for a in path], [bond_symbol[a, b] for a, b in zip(path, path[1:])])

    bonds = [(a, b) for a, b in bond_symbol if a < b]
    angles = [(i, j, k) for j, around in enumerate(neighbours) for n, i in enumerate(around) for k in around[n + 1 :]]
    torsions = [
        (a, b, c, d) for b, c in bonds for a in neighbours[b] if a != c for d in neighbours[c] if d not in (a, b)
    ]
    result = {}
    for kind, paths, measure in (
        ("bond_length", bonds, lambda idx: np.linalg.norm(pos[idx[0]] - pos[idx[1]], axis=1)),
        ("bond_angle", angles, lambda idx: _angles(pos, *idx)),
        ("torsion", torsions, lambda idx: _torsions(pos, *idx)),
    ):
        values = measure(np.asarray(paths, dtype=np.int64).reshape(len(paths), -1).T) if paths else np.zeros(0)
        finite = np.isfinite(values)
        result[kind] = ([key(path) for path, ok in zip(paths, finite) if ok], values[finite])
    return result


def conformer_geometry(mols: Iterable[Chem.Mol], conf_id: int = -1) -> GeometryStatistics:
    """Bond lengths, bond angles and torsions per type (module docstring) of sanitized molecules with a conformer.

    Raises:
        ValueError: if ``mols`` is empty.
    """
    collected: dict[str, dict[str, list[np.ndarray]]] = {kind: {} for kind in GEOMETRY_KINDS}
    count = 0
    for mol in mols:
        count += 1
        for kind, (keys, values) in _molecule_geometry(mol, conf_id).items():
            by_type = collected[kind]
            for name in set(keys):
                by_type.setdefault(name, []).append(values[[k == name for k in keys]])
    if count == 0:
        raise ValueError("no molecules to summarize")
    values = {
        kind: {name: np.concatenate(parts) for name, parts in by_type.items()} for kind, by_type in collected.items()
    }
    return GeometryStatistics(values, count)


def compare_geometry(sample: GeometryStatistics, reference: GeometryStatistics) -> dict[str, float]:
    """Distances of the sample's internal coordinates from the reference's, per kind of :data:`GEOMETRY_KINDS`.

    Returns:
        ``<kind>_w1``: Wasserstein-1 distance (Å for bond lengths, degrees for angles and torsions) per type,
            averaged over the types both sets have, weighted by the reference's count of each; NaN when they
            share no type.
        ``<kind>_type_tv``: total variation distance between the type frequencies (1 when the sample has no
            value of the kind; NaN when the reference has none).
        ``<kind>_w1_<type>``: the per-type distance for each type the sample has that makes up at least the
            :data:`GEOMETRY_KINDS` fraction of the reference's values.
    """
    result: dict[str, float] = {}
    for kind, main_fraction in GEOMETRY_KINDS.items():
        ours, theirs = sample.values[kind], reference.values[kind]
        reference_counts = {name: len(v) for name, v in theirs.items()}
        total = sum(reference_counts.values())
        if total == 0:
            result[f"{kind}_w1"] = result[f"{kind}_type_tv"] = float("nan")
            continue
        shared = {name: wasserstein1(ours[name], theirs[name]) for name in theirs if name in ours}
        weight = sum(reference_counts[name] for name in shared)
        weighted = sum(reference_counts[name] * w1 for name, w1 in shared.items())
        result[f"{kind}_w1"] = weighted / weight if weight else float("nan")
        result[f"{kind}_type_tv"] = (
            total_variation({n: len(v) for n, v in ours.items()}, reference_counts) if ours else 1.0
        )
        for name, count in sorted(reference_counts.items(), key=lambda item: -item[1]):
            if name in shared and count >= main_fraction * total:
                result[f"{kind}_w1_{name}"] = shared[name]
    return result
