"""Reference sets for novelty and distribution metrics.

A :class:`Reference` holds the canonical SMILES of a training set built
through each protocol's own pipeline (EDM bonds from distances; RDKit's
rdDetermineBonds), so novelty compares like with like, plus the training
set's :class:`~molgen.molecules.metrics.distribution.MoleculeStatistics`.
The QM9 reference (EDM training split, 100,000 molecules) takes a few
minutes to build and is cached next to the QM9 cache.

A drug-like reference also carries the statistics of the drug-like metrics
(:mod:`~molgen.molecules.metrics.druglike`) and of conformer geometry
(:mod:`~molgen.molecules.metrics.conformer_geometry`); evaluation adds those
sections only for such a reference (``--reference moses``,
:mod:`~molgen.molecules.metrics.moses_reference`, which builds it afresh
each time and caches only its training SMILES).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from molgen.molecules.metrics.conformer_geometry import GeometryStatistics
from molgen.molecules.metrics.distribution import MoleculeStatistics, molecule_statistics
from molgen.molecules.metrics.druglike import DruglikeStatistics
from molgen.molecules.metrics.edm import edm_smiles_of
from molgen.molecules.metrics.rdkit_protocol import rdkit_smiles_of
from molgen.molecules.record import MoleculeRecord

REFERENCE_FORMAT_VERSION = 1


@dataclass
class Reference:
    """Training-set SMILES per protocol and training-set statistics.

    ``edm_smiles`` is None when the training set has no geometries to run the EDM
    protocol on (no EDM novelty then); ``druglike`` and ``geometry`` are set for a
    drug-like reference only.
    """

    name: str
    edm_smiles: set[str] | None
    rdkit_smiles: set[str]
    statistics: MoleculeStatistics
    druglike: DruglikeStatistics | None = None
    geometry: GeometryStatistics | None = None

    @classmethod
    def from_records(cls, name: str, records: Sequence[MoleculeRecord], progress: bool = True) -> "Reference":
        edm, rdkit = set(), set()
        for record in tqdm(records, desc=f"reference {name}", unit="mol", disable=not progress):
            for smiles, bucket in (
                (edm_smiles_of(record.atomic_numbers, record.positions), edm),
                (rdkit_smiles_of(record.atomic_numbers, record.positions), rdkit),
            ):
                if smiles is not None:
                    bucket.add(smiles)
        return cls(name, edm, rdkit, molecule_statistics(records))

    def to_dict(self) -> dict:
        """Plain-Python form of a reference without drug-like parts (those are rebuilt, not cached)."""
        if self.edm_smiles is None or self.druglike is not None or self.geometry is not None:
            raise ValueError(f"reference {self.name!r} is drug-like; only its training SMILES are cached")
        return {
            "version": REFERENCE_FORMAT_VERSION,
            "name": self.name,
            "edm_smiles": sorted(self.edm_smiles),
            "rdkit_smiles": sorted(self.rdkit_smiles),
            "statistics": self.statistics.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Reference":
        return cls(
            data["name"],
            set(data["edm_smiles"]),
            set(data["rdkit_smiles"]),
            MoleculeStatistics.from_dict(data["statistics"]),
        )


def qm9_reference(cache_dir: str | os.PathLike | None = None, progress: bool = True) -> Reference:
    """The QM9 training split as a reference, built once and cached."""
    from molgen.molecules.qm9 import QM9Dataset, default_cache_dir

    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache_dir / "qm9_reference_train.pt"
    if path.is_file():
        data = torch.load(path, weights_only=True)
        if data.get("version") == REFERENCE_FORMAT_VERSION:
            return Reference.from_dict(data)
    train = QM9Dataset("train", cache_dir=cache_dir)
    records = [MoleculeRecord(d.z.numpy(), d.pos.double().numpy()) for d in train]
    reference = Reference.from_records("qm9", records, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    torch.save(reference.to_dict(), tmp)
    os.replace(tmp, path)
    return reference
