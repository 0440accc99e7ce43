"""Relaxation of generated molecules: a local MMFF94s minimisation of every atom before export.

A sampled pose carries the model's small errors in bond angles and contacts
(the drug-like model's median strain is tens of kcal/mol, docs/druglike.md).
Docking keeps a ligand's bond lengths and angles as given and only turns its
torsions, so those errors would go into every docked pose. ``molgen sample
--relax`` therefore minimises each molecule, hydrogens included, with
MMFF94s from the generated pose: the nearest force-field minimum, the same
one the strain metric measures against (:mod:`molgen.molecules.metrics.strain`),
so a relaxed molecule's strain is about 0 by construction and its energy
drop *is* the strain of the unrelaxed pose. That minimum is often another
conformer (heavy atoms a few tenths of an Å to over 1 Å away); ``molgen sample
--relax --relax-restraint SIGMA`` instead tethers each heavy atom to its
generated position (thermal width SIGMA Å at 298 K), which removes the small
bond and angle errors that make up most of the strain and keeps the pose.

What relaxation must not do is change the molecule: the graph is kept by the
force field, and a stereocentre or double bond that flips is reported
(``stereo_changed``), as is how far the heavy atoms moved (RMSD, no alignment:
a force field exerts no net force or torque). Atoms fixed by ``--fix`` /
``--link`` stay exactly where they were.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from rdkit import Chem, rdBase

from molgen.molecules.metrics.strain import MAX_ITERATIONS, STRAIN_STATUSES, minimise

__all__ = ["RELAX_STATUSES", "RelaxedMolecule", "relax_molecule", "relaxation_summary"]

RELAX_STATUSES = ("relaxed", "not_converged", "not_sanitized", *STRAIN_STATUSES[2:])
"""Outcome of one molecule: minimised to convergence; minimised for the allowed iterations only (kept,
counted); left as generated because its graph does not sanitise (e.g. an over-valent atom, so no
hydrogens either) or the minimiser refused it (:data:`~molgen.molecules.metrics.strain.STRAIN_STATUSES`:
no MMFF94s parameters, e.g. a radical; implicit hydrogens; a non-finite energy, e.g. a diverged sample
with its atoms at one point)."""


@dataclass(frozen=True)
class RelaxedMolecule:
    """Outcome of :func:`relax_molecule`.

    Attributes:
        mol: the relaxed molecule, or the input unchanged when ``status`` is ``not_sanitized`` or
            ``no_parameters``.
        status: one of :data:`RELAX_STATUSES`.
        energy_drop: MMFF94s energy of the input pose minus the relaxed one (kcal/mol), None when not relaxed.
        heavy_rmsd: root-mean-square displacement of the heavy atoms (Å), None when not relaxed.
        stereo_changed: whether a stereocentre or stereo double bond perceived from 3D differs after
            relaxation, None when not relaxed.
    """

    mol: Chem.Mol
    status: str
    energy_drop: float | None = None
    heavy_rmsd: float | None = None
    stereo_changed: bool | None = None


def _stereo_smiles(mol: Chem.Mol) -> str:
    """Isomeric SMILES with the stereochemistry perceived from the 3D conformer."""
    copy = Chem.Mol(mol)
    Chem.AssignStereochemistryFrom3D(copy)
    return Chem.MolToSmiles(Chem.RemoveHs(copy, sanitize=False))


def relax_molecule(
    mol: Chem.Mol,
    fixed_atoms: Sequence[int] = (),
    max_iterations: int = MAX_ITERATIONS,
    restraint_sigma: float | None = None,
) -> RelaxedMolecule:
    """Minimise a molecule with explicit hydrogens and one 3D conformer (Å) with MMFF94s.

    Args:
        mol: e.g. a sample after hydrogen placement; not modified.
        fixed_atoms: indices of atoms held exactly in place (the fixed part of inpainting).
        max_iterations: minimiser iterations.
        restraint_sigma: None relaxes freely to the nearest minimum; a width in Å tethers the other heavy
            atoms to their positions (:func:`~molgen.molecules.metrics.strain.minimise`).
    """
    candidate = Chem.Mol(mol)
    with rdBase.BlockLogs():
        try:
            Chem.SanitizeMol(candidate)
        except (ValueError, RuntimeError):
            return RelaxedMolecule(mol, "not_sanitized")
    result = minimise(candidate, fixed_atoms, max_iterations, restraint_sigma)
    if result.mol is None:
        return RelaxedMolecule(mol, result.status)
    heavy = [atom.GetIdx() for atom in mol.GetAtoms() if atom.GetAtomicNum() > 1]
    moved = result.mol.GetConformer().GetPositions()[heavy] - mol.GetConformer().GetPositions()[heavy]
    return RelaxedMolecule(
        result.mol,  # a copy of ``mol``: its properties (e.g. how the hydrogens were placed) come along
        "relaxed" if result.status == "ok" else "not_converged",
        energy_drop=result.energy_before - result.energy_after,
        heavy_rmsd=float(np.sqrt((moved**2).sum(1).mean())),
        stereo_changed=_stereo_smiles(candidate) != _stereo_smiles(result.mol),
    )


def relaxation_summary(results: Sequence[RelaxedMolecule]) -> dict[str, Any]:
    """Counts per status, and over the relaxed molecules the median energy drop (kcal/mol), the median and
    largest heavy-atom RMSD (Å) and the fraction whose stereochemistry changed."""
    summary: dict[str, Any] = {"num_molecules": len(results)}
    for status in RELAX_STATUSES:
        summary[f"num_{status}"] = sum(result.status == status for result in results)
    done = [result for result in results if result.energy_drop is not None]
    if done:
        summary.update(
            median_energy_drop_kcal_mol=float(np.median([result.energy_drop for result in done])),
            median_heavy_rmsd_A=float(np.median([result.heavy_rmsd for result in done])),
            max_heavy_rmsd_A=float(max(result.heavy_rmsd for result in done)),
            stereo_changed_fraction=sum(result.stereo_changed for result in done) / len(done),
        )
    return summary
