"""The molecule statistics the report draws that the evaluation does not keep, and their references.

The evaluation's :class:`~molgen.molecules.metrics.distribution.MoleculeStatistics` already
holds elements, atoms per molecule and bond lengths per bond type (bonds by EDM's
single-bond criterion, the ``distribution`` section's W1 is computed on them). This
module adds what the pictures need beyond it:

- :class:`AngleRingStatistics`: bond angles by central element and ring sizes, on one graph
  for every molecule whatever its file holds, so that samples and references compare like
  with like: atoms are bonded when closer than 1.3 x the sum of their covalent radii
  (RDKit's table and rdDetermineBonds' default factor); rings are the smallest set of
  smallest rings of that graph.
- drug-like properties (QED, SA, logP, MW) of the molecules that sanitize, with
  :func:`molgen.molecules.metrics.druglike.molecule_properties`.
- :class:`MoleculeReference`: all of the above for a reference set: QM9's training split
  (a seeded subset of 5,000 molecules for angles and rings, cached under
  ``$MOLGEN_CACHE/report``; statistics of all of it), the drug-like reference of
  ``--reference moses`` (its statistics, ring sizes and properties; no angles), or the
  molecules of an SDF file.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rdkit import Chem, rdBase

from molgen.molecules.metrics.distribution import MoleculeStatistics, molecule_statistics
from molgen.molecules.record import MoleculeRecord

__all__ = [
    "AngleRingStatistics",
    "MoleculeReference",
    "PROPERTY_NAMES",
    "RING_CLASSES",
    "angle_ring_statistics",
    "molecule_reference",
    "property_values",
]

#: Factor on the sum of covalent radii below which two atoms are bonded (rdDetermineBonds' default).
COVALENT_FACTOR = 1.3
#: Ring-size classes of the ring histogram: rings of 3..7 atoms, and of 8 or more.
RING_CLASSES = ("3", "4", "5", "6", "7", "8+")
#: Drug-like properties and their axis labels.
PROPERTY_NAMES = {
    "qed": "QED",
    "sa": "SA score (1 easy .. 10 hard)",
    "logp": "Crippen logP",
    "mw": "molecular weight (Da)",
}
#: QM9 training molecules (a seeded subset) of the reference's angles and rings.
QM9_GEOMETRY_MOLECULES = 5000
CACHE_VERSION = 1

_TABLE = Chem.GetPeriodicTable()
_RADII = np.array([_TABLE.GetRcovalent(z) if z else 0.0 for z in range(119)])


@dataclass
class AngleRingStatistics:
    """Bond angles and ring sizes of a set of molecules.

    Attributes:
        num_molecules: molecules summarised.
        angle_counts: central element symbol -> int64 [180] histogram of the angles (1-degree bins over 0-180)
            between every two bonds of an atom of that element.
        ring_counts: int64 [6]: rings of each class of :data:`RING_CLASSES` over the set.
    """

    num_molecules: int
    angle_counts: dict[str, np.ndarray] = field(default_factory=dict)
    ring_counts: np.ndarray = field(default_factory=lambda: np.zeros(len(RING_CLASSES), dtype=np.int64))

    def to_dict(self) -> dict:
        """Plain-Python form (safe for ``torch.load(weights_only=True)``)."""
        return {
            "num_molecules": self.num_molecules,
            "angle_counts": {k: v.tolist() for k, v in self.angle_counts.items()},
            "ring_counts": self.ring_counts.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> AngleRingStatistics:
        return cls(
            int(data["num_molecules"]),
            {k: np.asarray(v, dtype=np.int64) for k, v in data["angle_counts"].items()},
            np.asarray(data["ring_counts"], dtype=np.int64),
        )


def _ring_classes(sizes: list[int]) -> np.ndarray:
    """int64 [6] counts of ring sizes per class of :data:`RING_CLASSES`."""
    return np.bincount(np.clip(np.asarray(sizes, dtype=np.int64), 3, 8) - 3, minlength=len(RING_CLASSES))


def angle_ring_statistics(records: list[MoleculeRecord]) -> AngleRingStatistics:
    """Bond angles and ring sizes of ``records`` (``atomic_numbers`` [n], ``positions`` [n, 3] in Å),
    on the covalent-radius graph of the module docstring (the records' own bonds are not used)."""
    angles = np.zeros((len(_RADII), 180), dtype=np.int64)  # [element, degree bin]
    rings = np.zeros(len(RING_CLASSES), dtype=np.int64)
    for record in records:
        z = np.asarray(record.atomic_numbers, dtype=np.int64)
        pos = np.asarray(record.positions, dtype=np.float64)
        dist = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
        bonded = dist < COVALENT_FACTOR * (_RADII[z][:, None] + _RADII[z][None])
        np.fill_diagonal(bonded, False)
        # every two bonds j-i and j-k of a centre j, i < k
        later = np.triu(np.ones_like(bonded), k=1)
        centre, i, k = np.nonzero(bonded[:, :, None] & bonded[:, None, :] & later[None])
        a, b = pos[i] - pos[centre], pos[k] - pos[centre]
        cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        degrees = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))).astype(np.int64)
        np.add.at(angles, (z[centre], np.minimum(degrees, 179)), 1)
        graph = Chem.RWMol()
        for atomic_number in z.tolist():
            graph.AddAtom(Chem.Atom(atomic_number))
        for first, second in zip(*np.nonzero(np.triu(bonded, k=1))):
            graph.AddBond(int(first), int(second), Chem.BondType.SINGLE)
        rings += _ring_classes([len(ring) for ring in Chem.GetSymmSSSR(graph)])
    by_element = {_TABLE.GetElementSymbol(int(e)): angles[e] for e in np.flatnonzero(angles.sum(1))}
    return AngleRingStatistics(len(records), by_element, rings)


def property_values(mols: list[Chem.Mol]) -> dict[str, np.ndarray]:
    """QED, SA, logP and MW (:data:`PROPERTY_NAMES`) of the molecules that sanitize: name -> float64 [m]."""
    from molgen.molecules.metrics.druglike import molecule_properties

    values: dict[str, list[float]] = {name: [] for name in PROPERTY_NAMES}
    with rdBase.BlockLogs():
        for mol in mols:
            if mol is None:
                continue
            mol = Chem.Mol(mol)
            try:
                Chem.SanitizeMol(mol)
                properties = molecule_properties(mol)
            except (ValueError, RuntimeError):
                continue
            for name in PROPERTY_NAMES:
                values[name].append(properties[name])
    return {name: np.asarray(v, dtype=np.float64) for name, v in values.items()}


@dataclass
class MoleculeReference:
    """What the histograms compare the samples with (each part None where the reference lacks it).

    Attributes:
        name: as shown in legends.
        statistics: elements, atoms per molecule, bond lengths (EDM bonds).
        angles_rings: bond angles and ring sizes.
        properties: drug-like properties, name -> float64 [m].
        notes: what the reference lacks and why.
    """

    name: str
    statistics: MoleculeStatistics | None = None
    angles_rings: AngleRingStatistics | None = None
    properties: dict[str, np.ndarray] | None = None
    notes: list[str] = field(default_factory=list)


def _cached(name: str, build) -> dict:
    """The dict ``build()`` returns, cached as ``$MOLGEN_CACHE/report/<name>.pt`` (version-checked)."""
    import torch

    from molgen.io import default_cache_root, read_cache

    path = default_cache_root() / "report" / f"{name}.pt"
    data = read_cache(path, f"report {name}", CACHE_VERSION)
    if data is not None:
        return data
    data = {"format_version": CACHE_VERSION, **build()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    torch.save(data, tmp)
    os.replace(tmp, path)
    return data


def _qm9_angles_rings() -> dict:
    from molgen.molecules.qm9 import QM9Dataset

    train = QM9Dataset("train")
    pick = np.sort(np.random.default_rng(0).choice(len(train), size=QM9_GEOMETRY_MOLECULES, replace=False))
    records = [MoleculeRecord(train[int(i)].z.numpy(), train[int(i)].pos.double().numpy()) for i in pick]
    return {"angles_rings": angle_ring_statistics(records).to_dict()}


def molecule_reference(spec: str, evaluation_reference=None) -> MoleculeReference | None:
    """The histogram reference of ``--reference``: ``qm9``, ``moses``, ``none`` or an SDF file.

    Args:
        evaluation_reference: the :class:`~molgen.molecules.metrics.reference.Reference` the
            evaluation used, if any; its statistics are reused instead of recomputed.

    Raises:
        FileNotFoundError: a missing file.
        ValueError: an SDF file without molecules.
    """
    if spec == "none":
        return None
    if spec == "qm9":
        statistics = evaluation_reference.statistics if evaluation_reference is not None else None
        if statistics is None:
            from molgen.molecules.metrics.reference import qm9_reference

            statistics = qm9_reference(progress=False).statistics
        angles_rings = AngleRingStatistics.from_dict(_cached("qm9_angles_rings", _qm9_angles_rings)["angles_rings"])
        return MoleculeReference(
            "QM9 train",
            statistics,
            angles_rings,
            notes=[f"QM9 bond angles and rings: {QM9_GEOMETRY_MOLECULES:,} training molecules (seeded)"],
        )
    druglike = getattr(evaluation_reference, "druglike", None)
    if druglike is not None:  # --reference moses (molgen.molecules.metrics.moses_reference)
        return MoleculeReference(
            evaluation_reference.name,
            evaluation_reference.statistics,
            AngleRingStatistics(druglike.num_molecules, {}, np.asarray(druglike.ring_size_counts, dtype=np.int64)),
            dict(druglike.properties),
            notes=["bond angles are drawn without the drug-like reference (it keys them by bonded path)"],
        )
    from molgen.molecules.sdf import read_records

    records, _ = read_records(spec)
    if not records:
        raise ValueError(f"no readable molecules in the reference {spec}")
    statistics = evaluation_reference.statistics if evaluation_reference is not None else molecule_statistics(records)
    return MoleculeReference(
        Path(spec).name,
        statistics,
        angle_ring_statistics(records),
        property_values([r.mol for r in records]),
    )
