"""Strain energy of 3D molecules: how far each pose sits above its nearest MMFF94s minimum.

The strain of a pose is its MMFF94s energy as given minus the energy after
an unconstrained local MMFF94s optimisation of the same molecule from that
pose (kcal/mol). It is 0 for a pose at a force-field minimum, grows with
stretched bonds, bent angles, eclipsed torsions and clashes, and unlike a
comparison with a global minimum (a conformer search) it does not charge a
pose for being a different but relaxed conformer. The pieces of a
disconnected molecule interact, so pieces placed on top of each other count.

The force field needs every hydrogen as an atom: a molecule with implicit
hydrogens gets no strain (status ``implicit_hydrogens``), and so does one
MMFF94s has no parameters for (``no_parameters``, e.g. unusual valences);
both are counted, never fatal, as is a pose whose energy is not finite
(``non_finite_energy``, e.g. atoms on top of each other). An optimisation that has not converged after
``max_iterations`` steps still gives a strain (a lower bound) and is counted
as ``not_converged``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem import rdForceFieldHelpers

__all__ = [
    "MAX_ITERATIONS",
    "STRAIN_STATUSES",
    "THERMAL_ENERGY",
    "Minimisation",
    "StrainResult",
    "evaluate_strain",
    "minimise",
    "strain_energy",
]

THERMAL_ENERGY = 0.5925
"""kT at 298.15 K in kcal/mol: the energy scale of :func:`minimise`'s tether."""

MAX_ITERATIONS = 2000
"""Optimisation steps allowed; drug-like molecules of ~40 atoms converge in a few hundred."""

STRAIN_STATUSES = ("ok", "not_converged", "no_parameters", "implicit_hydrogens", "non_finite_energy")
"""Outcome of one molecule: the first two have a strain energy, the last three none (the last: the force
field gave a non-finite energy, e.g. for atoms on top of each other)."""


@dataclass
class StrainResult:
    """Outcome of :func:`evaluate_strain`.

    Attributes:
        summary: ``num_molecules``, ``num_with_strain``, a count ``num_<status>`` for each status but ``ok``,
            and over the molecules with a strain energy (kcal/mol; absent when none has one):
            ``median_kcal_mol``, ``q1_kcal_mol``, ``q3_kcal_mol`` (quartiles), ``iqr_kcal_mol`` (q3 - q1)
            and ``mean_kcal_mol``.
        per_molecule: one dict per molecule, in input order: ``energy`` (strain, kcal/mol, or None) and
            ``status`` (one of :data:`STRAIN_STATUSES`).
    """

    summary: dict[str, Any]
    per_molecule: list[dict[str, Any]]


@dataclass(frozen=True)
class Minimisation:
    """Outcome of :func:`minimise`: ``mol`` the minimised copy (None when no force field could be built),
    the MMFF94s energies (kcal/mol) before and after (None likewise) and one of :data:`STRAIN_STATUSES`."""

    mol: Chem.Mol | None
    energy_before: float | None
    energy_after: float | None
    status: str


def minimise(
    mol: Chem.Mol,
    fixed_atoms: Sequence[int] = (),
    max_iterations: int = MAX_ITERATIONS,
    restraint_sigma: float | None = None,
) -> Minimisation:
    """Local MMFF94s minimisation of the first conformer of a sanitized molecule with explicit hydrogens.

    Args:
        mol: not modified (the minimisation runs on a copy).
        fixed_atoms: indices of atoms that stay exactly where they are.
        max_iterations: minimiser steps.
        restraint_sigma: None minimises freely. A width in Å tethers every other heavy atom to its start
            with the harmonic energy ``kT |d|^2 / (2 sigma^2)`` (kT at 298 K, :data:`THERMAL_ENERGY`),
            so the pose is polished where it stands instead of sliding to the nearest minimum. The
            energies reported are MMFF94s's alone, without the tether.

    Raises:
        ValueError: if ``restraint_sigma`` is given and not a positive number.
    """
    if restraint_sigma is not None and not (np.isfinite(restraint_sigma) and restraint_sigma > 0):
        raise ValueError(f"the restraint width must be a positive number of A, got {restraint_sigma}")
    if any(atom.GetNumImplicitHs() for atom in mol.GetAtoms()):
        return Minimisation(None, None, None, "implicit_hydrogens")
    mol = Chem.Mol(mol)
    # MMFF typing re-flags aromaticity in place by MMFF's own rules (e.g. a pyridazinone is not aromatic
    # there), so it types a copy: the molecule returned keeps the caller's perception.
    typed = Chem.Mol(mol)
    with rdBase.BlockLogs():  # MMFF prints every missing parameter
        properties = rdForceFieldHelpers.MMFFGetMoleculeProperties(typed, mmffVariant="MMFF94s")
        if properties is None:
            return Minimisation(None, None, None, "no_parameters")
        # Fragments of a disconnected sample feel each other: a pose with two pieces overlapping is strained,
        # and a relaxation must not push one through the other.
        field = rdForceFieldHelpers.MMFFGetMoleculeForceField(typed, properties, ignoreInterfragInteractions=False)
        moving = field
        if restraint_sigma is not None:  # a second field with the tethers; `field` keeps measuring MMFF alone
            moving = rdForceFieldHelpers.MMFFGetMoleculeForceField(typed, properties, ignoreInterfragInteractions=False)
            fixed = {int(index) for index in fixed_atoms}
            for atom in mol.GetAtoms():
                if atom.GetAtomicNum() > 1 and atom.GetIdx() not in fixed:
                    moving.MMFFAddPositionConstraint(atom.GetIdx(), 0.0, THERMAL_ENERGY / restraint_sigma**2)
    for index in fixed_atoms:
        moving.AddFixedPoint(int(index))
    field.Initialize()
    moving.Initialize()
    before = field.CalcEnergy()
    if not np.isfinite(before):
        return Minimisation(None, None, None, "non_finite_energy")
    not_converged = moving.Minimize(maxIts=max_iterations)
    after = field.CalcEnergy(moving.Positions())
    if not np.isfinite(after):
        return Minimisation(None, None, None, "non_finite_energy")
    positions = np.array(moving.Positions()).reshape(-1, 3)
    conformer = mol.GetConformer()
    for index, position in enumerate(positions):
        conformer.SetAtomPosition(index, position.tolist())
    return Minimisation(mol, before, after, "not_converged" if not_converged else "ok")


def strain_energy(mol: Chem.Mol, max_iterations: int = MAX_ITERATIONS) -> tuple[float | None, str]:
    """The MMFF94s strain (kcal/mol) of the first conformer of a sanitized molecule with explicit hydrogens.

    ``mol`` is not modified (the optimisation runs on a copy).

    Returns:
        ``(strain, status)``: the energy of the pose minus that of its local minimum, and one of
        :data:`STRAIN_STATUSES` (strain None for ``no_parameters`` and ``implicit_hydrogens``).
    """
    result = minimise(mol, max_iterations=max_iterations)
    if result.mol is None:
        return None, result.status
    return result.energy_before - result.energy_after, result.status


def evaluate_strain(mols: Sequence[Chem.Mol], max_iterations: int = MAX_ITERATIONS) -> StrainResult:
    """Strain of each molecule (its first conformer) and their median and quartiles; see the module docstring.

    Raises:
        ValueError: if ``mols`` is empty.
    """
    if len(mols) == 0:
        raise ValueError("no molecules to evaluate")
    rows = []
    for mol in mols:
        energy, status = strain_energy(mol, max_iterations=max_iterations)
        rows.append({"energy": energy, "status": status})
    energies = np.array([row["energy"] for row in rows if row["energy"] is not None])
    summary: dict[str, Any] = {"num_molecules": len(mols), "num_with_strain": len(energies)}
    for status in STRAIN_STATUSES[1:]:
        summary[f"num_{status}"] = sum(row["status"] == status for row in rows)
    if len(energies):
        q1, median, q3 = np.percentile(energies, [25, 50, 75])
        summary.update(
            median_kcal_mol=float(median),
            q1_kcal_mol=float(q1),
            q3_kcal_mol=float(q3),
            iqr_kcal_mol=float(q3 - q1),
            mean_kcal_mol=float(energies.mean()),
        )
    return StrainResult(summary, rows)
