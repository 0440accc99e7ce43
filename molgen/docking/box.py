"""The docking box: where Vina searches, given by hand or around a reference ligand.

Vina computes its affinity maps on a rectangular grid and keeps every ligand atom
inside it. A box is either given (``--center X Y Z --size SX SY SZ``) or derived
from a ligand in the pocket (``--ref-ligand``, e.g. the crystal ligand) with the
convention of the shared reference complexes: centre at the ligand's heavy-atom
centroid, each edge the ligand's extent plus 10 Å, at least 20 Å.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["MIN_EDGE", "PADDING", "Box", "box_from_options"]

PADDING = 10.0
"""Å added to the reference ligand's extent along each axis."""
MIN_EDGE = 20.0
"""Å; the smallest edge of a box derived from a ligand (room for a drug-sized molecule to turn)."""


@dataclass(frozen=True)
class Box:
    """An axis-aligned box.

    Attributes:
        center: (x, y, z), Å.
        size: (sx, sy, sz) edge lengths, Å, all positive.
    """

    center: tuple[float, float, float]
    size: tuple[float, float, float]

    def __post_init__(self) -> None:
        if len(self.center) != 3 or len(self.size) != 3:
            raise ValueError(f"a box needs 3 center and 3 size values, got {self.center} and {self.size}")
        if not all(np.isfinite(self.center)) or not all(s > 0 and np.isfinite(s) for s in self.size):
            raise ValueError(f"box size must be positive and finite, center finite: got {self.center}, {self.size}")

    def distance_outside(self, points: np.ndarray) -> np.ndarray:
        """[n] distances (Å) of the points [n, 3] from the box; 0 inside."""
        outside = np.abs(np.asarray(points, dtype=float) - self.center) - np.asarray(self.size) / 2
        return np.linalg.norm(np.maximum(outside, 0.0), axis=-1)

    def describe(self) -> str:
        """``center (x, y, z) size (sx, sy, sz) A``, to 3 and 1 decimals."""
        center = ", ".join(f"{c:.3f}" for c in self.center)
        size = ", ".join(f"{s:.1f}" for s in self.size)
        return f"center ({center}) size ({size}) A"

    @classmethod
    def around_ligand(cls, path: str | os.PathLike, size: tuple[float, float, float] | None = None) -> Box:
        """The box around the heavy atoms of the first molecule in an SDF (or MOL) file.

        ``size`` replaces the derived edges (extent + :data:`PADDING`, at least :data:`MIN_EDGE`).

        Raises:
            FileNotFoundError: the file does not exist.
            ValueError: it holds no readable molecule with 3D coordinates.
        """
        from rdkit import Chem, rdBase

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"reference ligand not found: {path}")
        with rdBase.BlockLogs():
            mol = next(iter(Chem.SDMolSupplier(str(path), sanitize=False, removeHs=False)), None)
        if mol is None or mol.GetNumConformers() == 0:
            raise ValueError(f"reference ligand {path}: no readable molecule with coordinates")
        heavy = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1] or list(range(mol.GetNumAtoms()))
        xyz = mol.GetConformer().GetPositions()[heavy]
        center = tuple(round(float(c), 3) for c in xyz.mean(axis=0))
        if size is None:
            extent = xyz.max(axis=0) - xyz.min(axis=0)
            size = tuple(round(float(max(e + PADDING, MIN_EDGE)), 1) for e in extent)
        return cls(center, tuple(float(s) for s in size))


def box_from_options(ref_ligand: str | None, center: list[float] | None, size: list[float] | None) -> Box:
    """The box that ``--ref-ligand`` or ``--center``/``--size`` ask for.

    Raises:
        ValueError: neither or both of a ligand and a centre, or a centre without a size (one line).
        FileNotFoundError: the reference ligand does not exist.
    """
    if ref_ligand and center:
        raise ValueError("give the box by --ref-ligand or by --center, not both")
    if ref_ligand:
        return Box.around_ligand(ref_ligand, tuple(size) if size else None)
    if center is None:
        raise ValueError("a docking box is needed: --ref-ligand LIGAND.sdf, or --center X Y Z with --size SX SY SZ")
    if size is None:
        raise ValueError("--center needs --size SX SY SZ (the box edges in A)")
    return Box(tuple(center), tuple(size))
