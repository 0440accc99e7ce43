"""The RDKit protocol: validity, connectivity, uniqueness and novelty of molecules.

For every molecule a bonded RDKit graph is obtained, either

* from the record itself when it carries bonds (``record.has_bonds``, e.g. an
  SDF bond block; such bonds are trusted and kept as they are), or
* perceived from the 3D geometry with
  :func:`molgen.molecules.sdf.molecule_from_coordinates`, except for
  molecules whose graph a model generated (SD tag ``bonds_generated`` = 1):
  a generated graph is judged as it is, and one without any bond (of more
  than one atom) is invalid and disconnected.

A molecule is **valid** when bonds were available, its largest fragment
passes ``Chem.SanitizeMol`` (valences, aromaticity, ...) and every element of
the molecule is one molgen's tables cover
(:data:`molgen.molecules.metrics.elements.TABLE_ELEMENTS`): RDKit sanitizes
e.g. XeF2 or UF6, but no other protocol here could judge such a molecule, so
it counts as invalid (its ``unknown_elements`` say why). It is **connected**
when it consists of exactly one fragment; a molecule of several atoms without
any bonds therefore counts as disconnected. The SMILES of a valid molecule is
the canonical SMILES of its largest fragment with hydrogens made implicit and
without stereochemistry, so that explicit- and implicit-hydrogen inputs, and
geometries with or without assigned stereo, give the same string.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rdkit import Chem, rdBase

from molgen.molecules.metrics.elements import elements_outside_tables
from molgen.molecules.record import MoleculeRecord
from molgen.molecules.sdf import molecule_from_coordinates

__all__ = ["RDKitResult", "canonical_smiles", "evaluate_rdkit", "rdkit_smiles_of"]


@dataclass
class RDKitResult:
    """Outcome of :func:`evaluate_rdkit`.

    Attributes:
        summary: ``validity``, ``connectivity``, ``valid_and_connected``,
            ``uniqueness``, ``novelty`` (fractions in [0, 1]; ``novelty`` is
            None without a reference) and the counts ``num_molecules``,
            ``num_valid``, ``num_connected``, ``num_unique``, ``bonds_from_file``.
        per_molecule: one dict per input record, in input order, with keys
            ``name``, ``num_atoms``, ``bonds_from_file``, ``has_bonds``,
            ``num_fragments``, ``valid``, ``connected``, ``smiles``
            (None unless valid) and ``unknown_elements`` (symbols of the
            elements outside molgen's tables; such a molecule is invalid, and
            without bonds from the file it is not perceived, so disconnected).
        molecules: per input record, the sanitized largest fragment of a valid
            molecule (hydrogens, stereo and conformer as given; the one its
            ``smiles`` describes), None for an invalid one.
    """

    summary: dict[str, Any]
    per_molecule: list[dict[str, Any]]
    molecules: list[Chem.Mol | None] = field(default_factory=list)


def _sanitized_smiles(mol: Chem.Mol) -> tuple[str | None, Chem.Mol | None]:
    """SMILES of ``mol`` (see the module docstring) and a sanitized copy, or (None, None) if it does not sanitize.

    ``mol`` is not modified.
    """
    mol = Chem.Mol(mol)
    with rdBase.BlockLogs():  # invalid samples are expected; keep stderr quiet
        try:
            Chem.SanitizeMol(mol)
            plain = Chem.Mol(mol)
            Chem.RemoveStereochemistry(plain)  # else RemoveHs keeps e.g. the H of "[H]N=C"
            return Chem.MolToSmiles(Chem.RemoveHs(plain), isomericSmiles=False), mol
        except (ValueError, RuntimeError):  # incl. valence and kekulization errors
            return None, None


def _largest_fragment(mol: Chem.Mol) -> Chem.Mol:
    """The fragment with the most atoms (ties go to the first in atom order), unsanitized."""
    return max(Chem.GetMolFrags(mol, asMols=True, sanitizeFrags=False), key=lambda m: m.GetNumAtoms())


def _bonded_molecule(record: MoleculeRecord) -> tuple[Chem.Mol | None, bool]:
    """The molecule to judge and whether it has trustworthy bonds.

    Returns ``(None, False)`` for records without atoms or with non-finite
    coordinates, which no bonds can be perceived for, and for bare records with
    elements outside molgen's tables: they are invalid anyway, and perceiving
    them can end the process (RDKit's extended-Hückel fallback exits or
    crashes on e.g. Xe and U).
    """
    if record.has_bonds:
        return record.mol, True
    if record.bonds_generated:  # a generated graph without bonds: judged as it is, never perceived
        return record.mol, record.num_atoms == 1
    positions = np.asarray(record.positions, dtype=np.float64)
    if record.num_atoms == 0 or not np.isfinite(positions).all() or elements_outside_tables(record.atomic_numbers):
        return None, False
    return molecule_from_coordinates(np.asarray(record.atomic_numbers), positions)


def _evaluate_one(record: MoleculeRecord) -> tuple[dict[str, Any], Chem.Mol | None]:
    """Per-molecule entry of :class:`RDKitResult` (see there for the keys) and the sanitized largest fragment."""
    mol, has_bonds = _bonded_molecule(record)
    num_fragments = 0 if mol is None else len(Chem.GetMolFrags(mol))
    unknown = elements_outside_tables(record.atomic_numbers)
    smiles = sanitized = None
    # Without bonds the atoms would "sanitize" as isolated radicals: no evidence of validity.
    if has_bonds and not unknown:
        smiles, sanitized = _sanitized_smiles(_largest_fragment(mol))
    row = {
        "name": record.name,
        "num_atoms": record.num_atoms,
        "bonds_from_file": record.has_bonds,
        "has_bonds": has_bonds,
        "num_fragments": num_fragments,
        "valid": smiles is not None,
        "connected": num_fragments == 1,
        "smiles": smiles,
        "unknown_elements": unknown,
    }
    return row, sanitized


def rdkit_smiles_of(atomic_numbers: Any, positions: Any) -> str | None:
    """SMILES of a bare 3D point cloud as :func:`evaluate_rdkit` computes it.

    Use it to build the ``reference_smiles`` set from training geometries so
    that novelty compares like with like.

    Args:
        atomic_numbers: int array-like [n].
        positions: float array-like [n, 3], Å.

    Returns:
        Canonical SMILES of the largest fragment, or None if the molecule is invalid.
    """
    record = MoleculeRecord(np.asarray(atomic_numbers), np.asarray(positions, dtype=np.float64))
    return _evaluate_one(record)[0]["smiles"]


def canonical_smiles(smiles: str) -> str | None:
    """A SMILES string in the protocol's canonical form (see the module docstring), or None if it is invalid.

    Use it to build the ``reference_smiles`` set from a training set given as SMILES.
    """
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles, sanitize=False)
    return None if mol is None or mol.GetNumAtoms() == 0 else _sanitized_smiles(_largest_fragment(mol))[0]


def evaluate_rdkit(records: list[MoleculeRecord], reference_smiles: set[str] | None = None) -> RDKitResult:
    """Run the RDKit protocol (see the module docstring) on a set of molecules.

    Args:
        records: molecules to evaluate.
        reference_smiles: SMILES of the training set, canonicalized like here
            (e.g. with :func:`rdkit_smiles_of`); enables ``novelty``.

    Returns:
        Summary and per-molecule results. ``uniqueness`` is the number of
        distinct SMILES over the number of valid molecules and ``novelty`` the
        fraction of those distinct SMILES absent from the reference; both are
        0.0 when there is nothing to divide by (EDM's convention).

    Raises:
        ValueError: if ``records`` is empty.
    """
    if len(records) == 0:
        raise ValueError("no molecules to evaluate")
    per_molecule, molecules = map(list, zip(*(_evaluate_one(record) for record in records)))

    n = len(per_molecule)
    num_valid = sum(m["valid"] for m in per_molecule)
    num_connected = sum(m["connected"] for m in per_molecule)
    unique = {m["smiles"] for m in per_molecule if m["valid"]}
    novelty = None
    if reference_smiles is not None:
        novelty = len(unique - reference_smiles) / len(unique) if unique else 0.0
    summary = {
        "validity": num_valid / n,
        "connectivity": num_connected / n,
        "valid_and_connected": sum(m["valid"] and m["connected"] for m in per_molecule) / n,
        "uniqueness": len(unique) / num_valid if num_valid else 0.0,
        "novelty": novelty,
        "num_molecules": n,
        "num_valid": num_valid,
        "num_connected": num_connected,
        "num_unique": len(unique),
        "bonds_from_file": sum(m["bonds_from_file"] for m in per_molecule),
    }
    return RDKitResult(summary=summary, per_molecule=per_molecule, molecules=molecules)
