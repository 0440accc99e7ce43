"""One 3D molecule as every reader, writer and metric sees it: elements, coordinates and, if known, bonds."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from rdkit import Chem


@dataclass
class MoleculeRecord:
    """A 3D molecule to evaluate.

    Attributes:
        atomic_numbers: [n] int, every atom in the record (explicit ones only).
        positions: [n, 3] float64, Å.
        mol: the RDKit molecule as read (bonds kept when the source had
            them, e.g. an SDF bond block), or None for bare point clouds.
        name: title or index, for reports.
        implicit_hydrogens: number of hydrogens the source implies but does
            not place (e.g. an SDF written without H); geometry-based
            protocols need them explicit.
    """

    atomic_numbers: np.ndarray
    positions: np.ndarray
    mol: Chem.Mol | None = None
    name: str = ""
    implicit_hydrogens: int = 0
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def num_atoms(self) -> int:
        return len(self.atomic_numbers)

    @property
    def has_bonds(self) -> bool:
        return self.mol is not None and self.mol.GetNumBonds() > 0

    @property
    def bonds_generated(self) -> bool:
        """True when a model generated the bonds (property or SD tag ``bonds_generated`` = 1), so they
        are the molecule as it is, not to be perceived again."""
        if self.mol is not None and self.mol.HasProp("bonds_generated"):
            return self.mol.GetProp("bonds_generated").strip() == "1"
        return str(self.properties.get("bonds_generated", "")).strip() == "1"

    @property
    def explicit_hydrogens(self) -> bool:
        """True when hydrogens are placed as atoms (or the molecule needs none)."""
        return self.implicit_hydrogens == 0
