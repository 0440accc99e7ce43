"""Ligand preparation: one SDF record, as generated, to the PDBQT that Vina docks, with meeko.

Generated molecules are taken as they are, with the few changes docking cannot do
without, each reported in the molecule's ``changes``:

- a record without bonds (a bare point cloud) gets bonds perceived from its
  coordinates, as ``molgen sample`` does (:func:`molgen.molecules.sdf.molecule_from_coordinates`);
- a molecule of several fragments keeps its largest (most heavy atoms) when
  ``largest_fragment`` is set, since meeko refuses disconnected molecules;
- hydrogens the bond block implies but does not place are added with coordinates
  (meeko needs every hydrogen explicit to type polar ones and rotatable bonds).

No protonation or tautomer change is made: the score is that of the molecule generated.
A record that cannot be used raises :class:`LigandError` with a category (for the
summary's failure table) and a one-line reason, and never stops the rest of the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from rdkit import Chem, rdBase

__all__ = ["VINA_ELEMENTS", "LigandError", "PreparedLigand", "prepare_ligand", "read_sdf_blocks"]

VINA_ELEMENTS = ("H", "C", "N", "O", "F", "P", "S", "Cl", "Br", "I", "Si")
"""Elements that meeko 0.8 types in ligands and Vina 1.2 scores (boron, selenium, metals and others are not)."""


class LigandError(ValueError):
    """A molecule that cannot be docked.

    Attributes:
        category: short class of the failure, e.g. ``"does not sanitise"``, for counting.
        reason: one line with the details.
    """

    def __init__(self, category: str, reason: str):
        super().__init__(f"{category}: {reason}")
        self.category = category
        self.reason = reason


@dataclass
class PreparedLigand:
    """A molecule ready for Vina.

    Attributes:
        mol: the molecule as docked: sanitized, one fragment, every hydrogen explicit with coordinates.
        pdbqt: meeko's PDBQT of ``mol`` (torsion tree, AutoDock types, Gasteiger charges).
        changes: what was changed in the record, one line per kind of change (``bonds_perceived``,
            ``largest_fragment``, ``hydrogens_added``).
    """

    mol: Chem.Mol
    pdbqt: str
    changes: dict[str, str] = field(default_factory=dict)


def read_sdf_blocks(path: str | Path) -> Iterator[str]:
    """The records of an SDF file as text blocks (without the ``$$$$`` line), in file order.

    Splitting the text instead of using RDKit's supplier keeps a corrupt record as a
    block of its own, reported with its index, while every other record is read.

    Raises:
        FileNotFoundError: ``path`` is not a file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SDF file not found: {path}")
    lines: list[str] = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith("$$$$"):
                yield "".join(lines)
                lines = []
            else:
                lines.append(line)
    if "".join(lines).strip():  # a last record without its $$$$ line
        yield "".join(lines)


def _parse(block: str) -> Chem.Mol:
    """The record's molecule, unsanitized, with its coordinates checked."""
    with rdBase.BlockLogs():
        mol = Chem.MolFromMolBlock(block, sanitize=False, removeHs=False)
    if mol is None or mol.GetNumAtoms() == 0:
        raise LigandError("unreadable record", "RDKit cannot parse the record" if mol is None else "no atoms")
    if mol.GetNumConformers() == 0:
        raise LigandError("no 3D coordinates", "the record has no coordinates")
    xyz = mol.GetConformer().GetPositions()
    if not np.isfinite(xyz).all():
        raise LigandError("no 3D coordinates", "NaN or infinite coordinates")
    if mol.GetNumAtoms() > 1 and (not mol.GetConformer().Is3D() or not xyz[:, 2].any()):
        raise LigandError("no 3D coordinates", "a 2D record (flagged 2D, or every z is 0)")
    return mol


def _typed_elements(mol: Chem.Mol) -> Chem.Mol:
    """``mol``, checked to hold only :data:`VINA_ELEMENTS`."""
    untyped = sorted({a.GetSymbol() for a in mol.GetAtoms()} - set(VINA_ELEMENTS))
    if untyped:
        raise LigandError(
            "element Vina cannot type", f"{', '.join(untyped)} (Vina and meeko type {' '.join(VINA_ELEMENTS)})"
        )
    return mol


def _with_bonds(mol: Chem.Mol, changes: dict[str, str]) -> Chem.Mol:
    """``mol`` itself when it has bonds (or one atom), else bonds perceived from its coordinates."""
    if mol.GetNumBonds() > 0 or mol.GetNumAtoms() == 1:
        return mol
    from molgen.molecules.sdf import molecule_from_coordinates

    z = [atom.GetAtomicNum() for atom in mol.GetAtoms()]
    perceived, ok = molecule_from_coordinates(z, mol.GetConformer().GetPositions())
    if not ok:
        raise LigandError("does not sanitise", "the record has no bonds and none could be perceived")
    changes["bonds_perceived"] = "bonds perceived from the coordinates"
    return perceived


def _sanitized(mol: Chem.Mol) -> Chem.Mol:
    mol = Chem.Mol(mol)
    try:
        with rdBase.BlockLogs():
            Chem.SanitizeMol(mol)
    except (ValueError, RuntimeError) as err:
        raise LigandError("does not sanitise", " ".join(str(err).split())) from None
    return mol


def _one_fragment(mol: Chem.Mol, largest_fragment: bool, changes: dict[str, str]) -> Chem.Mol:
    fragments = Chem.GetMolFrags(mol, asMols=True, sanitizeFrags=False)
    if len(fragments) == 1:
        return mol
    if not largest_fragment:
        raise LigandError("multiple fragments", f"{len(fragments)} fragments (--largest-fragment keeps the largest)")
    keep = max(fragments, key=lambda f: (f.GetNumHeavyAtoms(), f.GetNumAtoms()))
    changes["largest_fragment"] = (
        f"kept the largest of {len(fragments)} fragments ({keep.GetNumHeavyAtoms()} of {mol.GetNumHeavyAtoms()} "
        "heavy atoms)"
    )
    return keep


def _explicit_hydrogens(mol: Chem.Mol, changes: dict[str, str]) -> Chem.Mol:
    implicit = sum(atom.GetNumImplicitHs() for atom in mol.GetAtoms())
    if implicit == 0:
        return mol
    changes["hydrogens_added"] = f"added {implicit} hydrogens with coordinates"
    return Chem.AddHs(mol, addCoords=True)


@lru_cache(maxsize=1)
def _meeko_preparation():
    from meeko import MoleculePreparation

    return MoleculePreparation()


def _meeko_pdbqt(mol: Chem.Mol) -> str:
    from meeko import PDBQTWriterLegacy

    try:
        with rdBase.BlockLogs():
            setups = _meeko_preparation().prepare(mol)
            pdbqt, ok, error = PDBQTWriterLegacy.write_string(setups[0])
    except Exception as err:  # meeko raises many types (RuntimeError, ValueError, KeyError...) on molecules it refuses
        raise LigandError("meeko refused", " ".join(str(err).split())[:300] or type(err).__name__) from None
    if not ok:
        raise LigandError("meeko refused", " ".join(error.split())[:300])
    return pdbqt


def prepare_ligand(block: str, largest_fragment: bool = True) -> PreparedLigand:
    """Prepare one SDF record for docking.

    Args:
        block: the record's text (molfile and SD tags).
        largest_fragment: keep the largest fragment of a disconnected molecule (else refuse it).

    Raises:
        LigandError: the record cannot be docked (unreadable, no 3D coordinates, an element Vina
            cannot type, does not sanitise, several fragments, refused by meeko).
    """
    changes: dict[str, str] = {}
    mol = _one_fragment(_with_bonds(_parse(block), changes), largest_fragment, changes)
    mol = _explicit_hydrogens(_sanitized(_typed_elements(mol)), changes)
    return PreparedLigand(mol, _meeko_pdbqt(mol), changes)
