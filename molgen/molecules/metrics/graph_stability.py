"""Stability of a molecule's own graph: its bonds and formal charges as written in the file.

The EDM protocol (:mod:`molgen.molecules.metrics.edm`) judges a point cloud:
it infers bonds from distances and ignores charges. A model that generates
bonds and charges (docs/bonds.md) is judged here on what it wrote instead:

- an atom is **stable** when the sum of its bond orders (Kekulé: single 1,
  double 2, triple 3; aromatic bonds are kekulized first) plus its explicit
  hydrogen count equals a valence allowed for its element *and formal
  charge* (:data:`CHARGED_VALENCES`: e.g. C 4, N 3, N+ 4, N- 2, O 2, O+ 3,
  O- 1); an element/charge pair not in the table is never stable, so a
  radical (too few bonds), an over-bonded atom or an odd charge all fail;
- a molecule is stable when all its atoms are.

Atom stability pools all atoms of all molecules (as the EDM protocol does).
For files whose bonds were perceived from geometry (molgen's coordinate-only
samples), the figure mostly measures how often perception succeeded: a
molecule without bonds is unstable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rdkit import Chem, rdBase

from molgen.molecules.record import MoleculeRecord

__all__ = ["CHARGED_VALENCES", "GraphStabilityResult", "atom_stability", "evaluate_graph_stability", "kekulized"]

CHARGED_VALENCES: dict[tuple[str, int], tuple[int, ...]] = {
    ("H", 0): (1,),
    ("B", 0): (3,), ("B", -1): (4,),
    ("C", 0): (4,), ("C", 1): (3,), ("C", -1): (3,),
    ("N", 0): (3,), ("N", 1): (4,), ("N", -1): (2,),
    ("O", 0): (2,), ("O", 1): (3,), ("O", -1): (1,),
    ("F", 0): (1,),
    ("Si", 0): (4,),
    ("P", 0): (3, 5), ("P", 1): (4,), ("P", -1): (2,),
    ("S", 0): (2, 4, 6), ("S", 1): (3,), ("S", -1): (1,),
    ("Cl", 0): (1,), ("Br", 0): (1,), ("I", 0): (1,),
}  # fmt: skip
"""Total valences (bond-order sum plus explicit H count) allowed per (element, formal charge)."""

_ORDERS = {Chem.BondType.SINGLE: 1.0, Chem.BondType.DOUBLE: 2.0, Chem.BondType.TRIPLE: 3.0, Chem.BondType.AROMATIC: 1.5}


def kekulized(mol: Chem.Mol) -> Chem.Mol:
    """A copy with aromatic bonds kekulized when possible (left aromatic otherwise)."""
    mol = Chem.Mol(mol)
    if any(bond.GetIsAromatic() or bond.GetBondType() == Chem.BondType.AROMATIC for bond in mol.GetBonds()):
        with rdBase.BlockLogs():
            try:
                mol.UpdatePropertyCache(strict=False)
                Chem.GetSymmSSSR(mol)
                Chem.Kekulize(mol, clearAromaticFlags=True)
            except (ValueError, RuntimeError):
                pass
    return mol


def atom_stability(mol: Chem.Mol) -> list[bool]:
    """Per atom of ``mol``: is its valence allowed for its element and formal charge (see the module docstring)?

    Bonds other than single, double, triple and aromatic (e.g. dative,
    zero-order) make both of their atoms unstable; an aromatic bond left
    after kekulization counts 1.5, which no integer valence matches.
    """
    mol = kekulized(mol)
    valence = [float(atom.GetNumExplicitHs()) for atom in mol.GetAtoms()]
    for bond in mol.GetBonds():
        order = _ORDERS.get(bond.GetBondType(), float("nan"))
        valence[bond.GetBeginAtomIdx()] += order
        valence[bond.GetEndAtomIdx()] += order
    return [
        valence[atom.GetIdx()] in CHARGED_VALENCES.get((atom.GetSymbol(), atom.GetFormalCharge()), ())
        for atom in mol.GetAtoms()
    ]


@dataclass
class GraphStabilityResult:
    """``summary``: ``atom_stability``, ``mol_stability`` (fractions), ``num_molecules``,
    ``num_atoms``, ``num_charged_atoms``, ``num_bonds_generated`` (records tagged
    ``bonds_generated=1``); ``per_molecule``: ``stable_atoms``, ``num_atoms``, ``mol_stable``."""

    summary: dict
    per_molecule: list[dict]


def evaluate_graph_stability(records: Sequence[MoleculeRecord]) -> GraphStabilityResult:
    """Graph stability of every record (a record without a molecule has only unstable atoms)."""
    if len(records) == 0:
        raise ValueError("no molecules to evaluate")
    per_molecule, charged = [], 0
    for record in records:
        if record.mol is None:
            stable = [False] * record.num_atoms
        else:
            stable = atom_stability(record.mol)
            charged += sum(atom.GetFormalCharge() != 0 for atom in record.mol.GetAtoms())
        per_molecule.append(
            {"stable_atoms": sum(stable), "num_atoms": len(stable), "mol_stable": bool(stable) and all(stable)}
        )
    num_atoms = sum(m["num_atoms"] for m in per_molecule)
    summary = {
        "atom_stability": sum(m["stable_atoms"] for m in per_molecule) / num_atoms if num_atoms else 0.0,
        "mol_stability": sum(m["mol_stable"] for m in per_molecule) / len(per_molecule),
        "num_molecules": len(per_molecule),
        "num_atoms": num_atoms,
        "num_charged_atoms": charged,
        "num_bonds_generated": sum(r.bonds_generated for r in records),
    }
    return GraphStabilityResult(summary, per_molecule)
