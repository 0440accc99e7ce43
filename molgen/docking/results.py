"""One molecule's docking result: its poses and properties, or why it failed; as JSON and as SDF records.

The JSON form is what the progress file stores (a killed run reads it back), the SDF
records what ``molgen dock`` writes: each pose with explicit hydrogens and SD tags.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rdkit import Chem

from molgen.docking.properties import ligand_efficiency

__all__ = ["POSE_TAGS", "MoleculeResult"]

POSE_TAGS = (
    "vina_score",
    "vina_rank",
    "source_index",
    "source_title",
    "ligand_efficiency",
    "qed",
    "sa_score",
    "heavy_atoms",
    "docking_notes",
)
"""SD tags of every written pose (``docking_notes`` only when the record was changed)."""


@dataclass
class MoleculeResult:
    """The outcome for the record at ``index`` of the input.

    Attributes:
        index: 0-based position of the record in the input SDF.
        title: the record's title line.
        poses: ``(score, molblock)`` pairs, best first: Vina score in kcal/mol and the pose with
            every hydrogen explicit; empty when the molecule failed.
        properties: ``heavy_atoms``, ``qed`` and ``sa`` of the docked molecule.
        changes: what preparation changed in the record (see :class:`~molgen.docking.ligands.PreparedLigand`).
        failure: the failure's category, None when docked.
        reason: the failure's one-line details.
    """

    index: int
    title: str
    poses: list[tuple[float, str]] = field(default_factory=list)
    properties: dict[str, float] = field(default_factory=dict)
    changes: dict[str, str] = field(default_factory=dict)
    failure: str | None = None
    reason: str = ""

    @property
    def docked(self) -> bool:
        return self.failure is None

    @property
    def score(self) -> float:
        """The best pose's score, kcal/mol (NaN when the molecule failed)."""
        return self.poses[0][0] if self.poses else float("nan")

    @property
    def ligand_efficiency(self) -> float:
        return ligand_efficiency(self.score, int(self.properties.get("heavy_atoms", 0)))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MoleculeResult:
        """The inverse of :meth:`to_json`.

        Raises:
            TypeError / KeyError / ValueError: ``data`` is not such a dict.
        """
        result = cls(**data)
        result.poses = [(float(score), str(block)) for score, block in result.poses]
        return result

    def sdf_records(self) -> list[tuple[Chem.Mol, str, dict[str, Any]]]:
        """The poses as :func:`molgen.molecules.sdf.write_sdf` records ``(mol, title, tags)``, best first."""
        records = []
        for rank, (score, block) in enumerate(self.poses, start=1):
            tags = {
                "vina_score": f"{score:.3f}",
                "vina_rank": rank,
                "source_index": self.index,
                "source_title": self.title,
                "ligand_efficiency": f"{ligand_efficiency(score, int(self.properties['heavy_atoms'])):.3f}",
                "qed": f"{self.properties['qed']:.3f}",
                "sa_score": f"{self.properties['sa']:.2f}",
                "heavy_atoms": int(self.properties["heavy_atoms"]),
            }
            if self.changes:
                tags["docking_notes"] = "; ".join(self.changes.values())
            mol = Chem.MolFromMolBlock(block, removeHs=False, sanitize=False)
            records.append((mol, self.title or f"molecule_{self.index}", tags))
        return records
