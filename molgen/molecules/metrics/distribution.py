"""How closely generated molecules follow the training distribution.

:func:`molecule_statistics` condenses a set of molecules into histograms of
atom types, atoms per molecule and bond lengths per bond type;
:func:`compare_statistics` turns two such summaries into distances
(total variation for the categorical ones, Wasserstein-1 for bond lengths).

Bonds here are purely geometric, with EDM's single-bond criterion: two atoms
are bonded when their distance is below the single-bond length of their element
pair plus a margin of 0.1 Å (10 pm). Element pairs missing from the table are
never bonded. A bond type is the element pair with symbols sorted
alphabetically, e.g. ``"C-H"``, ``"C-C"``, ``"H-O"``.

Only explicitly placed atoms are counted; compare molecules with hydrogens
against a reference with hydrogens.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from rdkit import Chem

from molgen.molecules.metrics.edm import BOND_MARGINS_PM, SINGLE_BOND_PM
from molgen.molecules.record import MoleculeRecord

__all__ = [
    "BOND_LENGTH_BIN_WIDTH",
    "BOND_LENGTH_RANGE",
    "EDM_BOND_MARGIN",
    "EDM_SINGLE_BOND_LENGTHS",
    "MoleculeStatistics",
    "bond_type",
    "compare_statistics",
    "histogram_w1",
    "molecule_statistics",
    "total_variation",
    "wasserstein1",
]

EDM_SINGLE_BOND_LENGTHS: Mapping[tuple[str, str], float] = {
    pair: length / 100.0 for pair, length in SINGLE_BOND_PM.items()
}
"""Single-bond lengths in Å of the EDM evaluation protocol, keyed by element pair."""

EDM_BOND_MARGIN = BOND_MARGINS_PM[0] / 100.0
"""Å added to the single-bond length to get the bonding distance cutoff (EDM: 10 pm)."""

BOND_LENGTH_RANGE = (0.5, 2.5)
"""Å, the span of the bond-length histograms."""

BOND_LENGTH_BIN_WIDTH = 0.01
"""Å, the bin width of the bond-length histograms."""

# Fraction of the reference's bonds a type needs to get its own ``bond_length_w1_<type>``.
_MAIN_BOND_TYPE_FRACTION = 0.01

_PERIODIC_TABLE = Chem.GetPeriodicTable()
_MAX_Z = 118


def bond_type(symbol_a: str, symbol_b: str) -> str:
    """Name of the bond between two elements, e.g. ``bond_type("H", "C") == "C-H"``."""
    return "-".join(sorted((symbol_a, symbol_b)))


@dataclass
class MoleculeStatistics:
    """Histogram summary of a set of molecules (see :func:`molecule_statistics`).

    Attributes:
        num_molecules: molecules summarized.
        atom_counts: element symbol -> number of atoms.
        num_atoms_counts: int64 [max_n + 1]; entry n counts molecules with n atoms.
        bond_length_counts: bond type -> int64 [num_bins] histogram of bond
            lengths over ``bond_length_range`` in bins of ``bin_width``.
        bond_length_range: (low, high) in Å.
        bin_width: Å.
    """

    num_molecules: int
    atom_counts: dict[str, int]
    num_atoms_counts: np.ndarray
    bond_length_counts: dict[str, np.ndarray]
    bond_length_range: tuple[float, float] = BOND_LENGTH_RANGE
    bin_width: float = BOND_LENGTH_BIN_WIDTH

    @property
    def num_bins(self) -> int:
        low, high = self.bond_length_range
        return round((high - low) / self.bin_width)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form (ints, floats, strs, lists, dicts), safe for
        ``torch.load(weights_only=True)`` and JSON."""
        return {
            "num_molecules": int(self.num_molecules),
            "atom_counts": {k: int(v) for k, v in self.atom_counts.items()},
            "num_atoms_counts": [int(c) for c in self.num_atoms_counts],
            "bond_length_counts": {k: [int(c) for c in v] for k, v in self.bond_length_counts.items()},
            "bond_length_range": [float(x) for x in self.bond_length_range],
            "bin_width": float(self.bin_width),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MoleculeStatistics:
        """Inverse of :meth:`to_dict`."""
        return cls(
            num_molecules=int(d["num_molecules"]),
            atom_counts={str(k): int(v) for k, v in d["atom_counts"].items()},
            num_atoms_counts=np.asarray(d["num_atoms_counts"], dtype=np.int64),
            bond_length_counts={str(k): np.asarray(v, dtype=np.int64) for k, v in d["bond_length_counts"].items()},
            bond_length_range=tuple(float(x) for x in d["bond_length_range"]),
            bin_width=float(d["bin_width"]),
        )


def _bond_tables(
    bond_lengths: Mapping[tuple[str, str], float], margin: float
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Lookup tables indexed by a pair of atomic numbers.

    Returns:
        cutoff: float [119, 119], Å; -inf for pairs that never bond.
        type_index: int [119, 119], index into ``type_names`` (-1 if none).
        type_names: bond type names.
    """
    cutoff = np.full((_MAX_Z + 1, _MAX_Z + 1), -np.inf)
    type_index = np.full((_MAX_Z + 1, _MAX_Z + 1), -1, dtype=np.int64)
    type_names: list[str] = []
    for (a, b), length in bond_lengths.items():
        za, zb = _PERIODIC_TABLE.GetAtomicNumber(a), _PERIODIC_TABLE.GetAtomicNumber(b)
        name = bond_type(a, b)
        if name in type_names:
            raise ValueError(f"bond type {name} appears twice in the bond-length table")
        type_names.append(name)
        for i, j in ((za, zb), (zb, za)):
            cutoff[i, j] = length + margin
            type_index[i, j] = len(type_names) - 1
    return cutoff, type_index, type_names


def molecule_statistics(
    records: Iterable[MoleculeRecord],
    bond_lengths: Mapping[tuple[str, str], float] = EDM_SINGLE_BOND_LENGTHS,
    margin: float = EDM_BOND_MARGIN,
) -> MoleculeStatistics:
    """Histograms of atom types, molecule sizes and bond lengths.

    Bonds are atom pairs closer than ``bond_lengths[pair] + margin`` (see the
    module docstring). Lengths outside :data:`BOND_LENGTH_RANGE` are counted
    in the first or last bin, so that collapsed or stretched bonds still weigh
    in. Non-finite coordinates give no bonds.

    Args:
        records: molecules; only ``atomic_numbers`` [n] and ``positions``
            [n, 3] (Å) are used.
        bond_lengths: single-bond length in Å per element pair (either order).
            Statistics to be compared must use the same table and margin.
        margin: Å added to each bond length to get the bonding cutoff.

    Raises:
        ValueError: if there are no records.
    """
    cutoff, type_index, type_names = _bond_tables(bond_lengths, margin)
    low, high = BOND_LENGTH_RANGE
    num_bins = round((high - low) / BOND_LENGTH_BIN_WIDTH)

    z_counts = np.zeros(_MAX_Z + 1, dtype=np.int64)
    sizes: list[int] = []
    codes: list[np.ndarray] = []  # per molecule: type index * num_bins + bin of each bond
    for record in records:
        z = np.asarray(record.atomic_numbers, dtype=np.int64)
        pos = np.asarray(record.positions, dtype=np.float64)
        z_counts += np.bincount(z, minlength=_MAX_Z + 1)
        sizes.append(len(z))
        i, j = np.triu_indices(len(z), k=1)
        dist = np.linalg.norm(pos[i] - pos[j], axis=-1)
        zi, zj = z[i], z[j]
        bonded = dist < cutoff[zi, zj]  # False for NaN distances
        bins = ((dist[bonded] - low) / BOND_LENGTH_BIN_WIDTH).astype(np.int64)
        bins = np.clip(bins, 0, num_bins - 1)
        codes.append(type_index[zi[bonded], zj[bonded]] * num_bins + bins)
    if not sizes:
        raise ValueError("no molecules to summarize")

    flat_counts = np.bincount(np.concatenate(codes), minlength=len(type_names) * num_bins)
    bond_counts = flat_counts.reshape(len(type_names), num_bins)
    return MoleculeStatistics(
        num_molecules=len(sizes),
        atom_counts={_PERIODIC_TABLE.GetElementSymbol(int(z)): int(z_counts[z]) for z in np.flatnonzero(z_counts)},
        num_atoms_counts=np.bincount(np.asarray(sizes, dtype=np.int64)),
        bond_length_counts={name: bond_counts[k] for k, name in enumerate(type_names) if bond_counts[k].any()},
    )


def histogram_w1(counts_a: np.ndarray, counts_b: np.ndarray, bin_width: float) -> float:
    """Wasserstein-1 distance between two histograms on the same bins.

    Mass is placed at the bin positions, so for 1-D distributions
    W1 = sum over bins of |CDF_a - CDF_b| * bin_width.

    Args:
        counts_a, counts_b: [num_bins] non-negative counts, each with positive sum.
        bin_width: in the unit of the result (here Å).
    """
    cdf_a = np.cumsum(counts_a) / np.sum(counts_a)
    cdf_b = np.cumsum(counts_b) / np.sum(counts_b)
    return float(np.abs(cdf_a - cdf_b).sum() * bin_width)


def wasserstein1(values_a: np.ndarray, values_b: np.ndarray) -> float:
    """Wasserstein-1 distance between two samples, each an equally weighted empirical distribution.

    W1 = integral over x of |CDF_a(x) - CDF_b(x)|, exact for the step CDFs of the samples
    (the value of ``scipy.stats.wasserstein_distance`` without weights).

    Args:
        values_a, values_b: [n_a], [n_b] finite values (n_a, n_b >= 1), any unit; the result has that unit.
    """
    a, b = np.sort(np.asarray(values_a, dtype=np.float64)), np.sort(np.asarray(values_b, dtype=np.float64))
    if len(a) == 0 or len(b) == 0:
        raise ValueError("cannot compare an empty sample")
    points = np.sort(np.concatenate([a, b]))
    cdf_a = np.searchsorted(a, points[:-1], side="right") / len(a)
    cdf_b = np.searchsorted(b, points[:-1], side="right") / len(b)
    return float(np.sum(np.abs(cdf_a - cdf_b) * np.diff(points)))


def total_variation(counts_a: Mapping[Any, float], counts_b: Mapping[Any, float]) -> float:
    """TV distance, 1/2 sum |p - q|, between the normalized count dicts."""
    total_a, total_b = sum(counts_a.values()), sum(counts_b.values())
    if total_a == 0 or total_b == 0:
        raise ValueError("cannot compare an empty distribution")
    keys = set(counts_a) | set(counts_b)
    return 0.5 * sum(abs(counts_a.get(k, 0) / total_a - counts_b.get(k, 0) / total_b) for k in keys)


def compare_statistics(sample: MoleculeStatistics, reference: MoleculeStatistics) -> dict[str, float]:
    """Distances of the sample's distribution from the reference's.

    Returns:
        ``atom_type_tv``: total variation between element fractions, in [0, 1].
        ``num_atoms_tv``: total variation between atoms-per-molecule distributions.
        ``bond_type_tv``: total variation between bond-type fractions (catches
            bond types the sample has but the reference lacks, which the W1
            below ignores).
        ``bond_length_w1``: Å, mean over the reference's bond types of the
            per-type W1 between bond-length distributions, weighted by the
            reference's bond count of each type. A type the sample has no
            bonds of contributes the width of the histogram range (2 Å), the
            largest W1 possible on it, so missing a type never scores better
            than getting its lengths wrong. NaN if the reference has no bonds.
        ``bond_length_w1_<type>``: Å, the per-type W1 (with the same rule for
            missing types) for each type making up at least 1% of the
            reference's bonds.

    Raises:
        ValueError: if the two statistics use different histogram bins or
            either has no atoms.
    """
    if (sample.bond_length_range, sample.bin_width, sample.num_bins) != (
        reference.bond_length_range, reference.bin_width, reference.num_bins
    ):  # fmt: skip
        raise ValueError("sample and reference use different bond-length bins")
    low, high = reference.bond_length_range

    result = {
        "atom_type_tv": total_variation(sample.atom_counts, reference.atom_counts),
        "num_atoms_tv": total_variation(
            dict(enumerate(sample.num_atoms_counts.tolist())),
            dict(enumerate(reference.num_atoms_counts.tolist())),
        ),
    }
    sample_types = {k: int(v.sum()) for k, v in sample.bond_length_counts.items()}
    reference_types = {k: int(v.sum()) for k, v in reference.bond_length_counts.items()}
    total_reference = sum(reference_types.values())
    if total_reference == 0:
        result["bond_type_tv"] = result["bond_length_w1"] = float("nan")
        return result
    result["bond_type_tv"] = total_variation(sample_types, reference_types) if sample_types else 1.0

    weighted_sum = 0.0
    for name, count in reference_types.items():
        if name in sample.bond_length_counts:
            w1 = histogram_w1(
                sample.bond_length_counts[name],
                reference.bond_length_counts[name],
                reference.bin_width,
            )
        else:
            w1 = high - low
        weighted_sum += count * w1
        if count >= _MAIN_BOND_TYPE_FRACTION * total_reference:
            result[f"bond_length_w1_{name}"] = w1
    result["bond_length_w1"] = weighted_sum / total_reference
    return result
