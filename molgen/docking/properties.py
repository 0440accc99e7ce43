"""What is printed beside each docking score: ligand efficiency, drug-likeness (QED) and synthetic accessibility (SA).

A raw Vina score grows with molecular size, so a large generated molecule can
"dock well" by being large; ligand efficiency (score per heavy atom) and QED/SA show
whether a good score comes with a plausible, makeable molecule.
"""

from __future__ import annotations

from rdkit import Chem

__all__ = ["ligand_efficiency", "molecule_properties"]


def ligand_efficiency(score: float, heavy_atoms: int) -> float:
    """``-score / heavy_atoms`` in kcal/mol per heavy atom (higher is better; about 0.3 is a good lead)."""
    return -score / heavy_atoms if heavy_atoms else float("nan")


def molecule_properties(mol: Chem.Mol) -> dict[str, float | int]:
    """Heavy-atom count, QED (0-1, higher is more drug-like) and SA score (1 easy to 10 hard to make) of a
    sanitized molecule, as the drug-like metrics compute them (:mod:`molgen.molecules.metrics.druglike`)."""
    from molgen.molecules.metrics import druglike

    properties = druglike.molecule_properties(mol)
    return {"heavy_atoms": mol.GetNumHeavyAtoms(), "qed": properties["qed"], "sa": properties["sa"]}
