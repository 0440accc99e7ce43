"""Hydrogens for heavy-atom molecules: placed at export, with the generated heavy atoms held fixed.

Drug-like models generate heavy atoms only (element, formal charge, Kekulé
bonds, coordinates); docking and force fields need every hydrogen. Each heavy
atom gets the hydrogens its valence leaves open (RDKit's valence model, after
sanitisation), placed by ``AddHs(addCoords=True)`` and then relaxed with
MMFF94s while every heavy atom is a fixed point, so the generated pose is kept
exactly (fixed points do not move) and only the hydrogens find their minimum.

Why not diffuse hydrogens as GEOM-with-H models (EDM, EQGAT-diff, Megalodon)
do: a drug-like molecule has about as many hydrogens as heavy atoms, so the
graph doubles and the pair (bond) channel quadruples, for atoms whose places
follow from the heavy atoms up to rotations of methyl and hydroxyl groups.
The trade-off: the heavy atoms' geometry cannot adapt to the hydrogens, so
strain that only the hydrogens would reveal (e.g. eclipsed neighbours) stays
in the pose, and polar hydrogens sit where the force field, not the model,
puts them.
"""

from __future__ import annotations

from rdkit import Chem, rdBase
from rdkit.Chem import rdForceFieldHelpers

__all__ = ["HYDROGEN_PLACEMENTS", "place_hydrogens"]

HYDROGEN_PLACEMENTS = ("mmff", "geometric", "not_placed")
"""How :func:`place_hydrogens` placed a molecule's hydrogens: relaxed with MMFF94s; by
``AddHs`` geometry only (no MMFF parameters); none (the heavy-atom graph does not sanitise)."""


def place_hydrogens(heavy: Chem.Mol, max_iterations: int = 500) -> tuple[Chem.Mol, str]:
    """The molecule with explicit hydrogens, heavy atoms where they were.

    Args:
        heavy: heavy-atom molecule with one 3D conformer (Å), bonds and formal charges, e.g. from
            :func:`molgen.molecules.sdf.molecule_from_graph`; not modified.
        max_iterations: MMFF94s iterations for the hydrogens.

    Returns:
        ``(molecule, placement)``: the molecule with hydrogens appended after the heavy atoms (heavy
        atom ``i`` keeps index ``i``), and one of :data:`HYDROGEN_PLACEMENTS`. When the heavy-atom graph
        does not sanitise (an impossible valence), the heavy-atom molecule is returned unchanged with
        ``not_placed``.
    """
    if heavy.GetNumConformers() == 0:
        raise ValueError("place_hydrogens needs a molecule with a 3D conformer")
    mol = Chem.RWMol(heavy)
    for atom in mol.GetAtoms():
        atom.SetNoImplicit(False)  # let the valence model count the open valences
        atom.SetNumExplicitHs(0)
        atom.SetNumRadicalElectrons(0)  # a sanitised NoImplicit graph holds its open valences as radicals
    with rdBase.BlockLogs():
        try:
            Chem.SanitizeMol(mol)
        except (ValueError, RuntimeError):
            return Chem.Mol(heavy), "not_placed"
        with_h = Chem.AddHs(mol.GetMol(), addCoords=True)
        # MMFF typing re-flags aromaticity in place by its own rules: type a copy, return RDKit's perception
        typed = Chem.Mol(with_h)
        properties = rdForceFieldHelpers.MMFFGetMoleculeProperties(typed, mmffVariant="MMFF94s")
        if properties is None:
            return _with_heavy_props(with_h, heavy), "geometric"
        field = rdForceFieldHelpers.MMFFGetMoleculeForceField(typed, properties, ignoreInterfragInteractions=False)
        if field is None:
            return _with_heavy_props(with_h, heavy), "geometric"
        for atom in with_h.GetAtoms():
            if atom.GetAtomicNum() != 1:
                field.AddFixedPoint(atom.GetIdx())
        field.Initialize()
        try:
            field.Minimize(maxIts=max_iterations)
        except RuntimeError:  # e.g. a line search that fails on a degenerate pose
            return _with_heavy_props(with_h, heavy), "geometric"
        positions = field.Positions()
    conformer = with_h.GetConformer()
    for index in range(with_h.GetNumAtoms()):
        if with_h.GetAtomWithIdx(index).GetAtomicNum() == 1:
            conformer.SetAtomPosition(index, positions[3 * index : 3 * index + 3])
    return _with_heavy_props(with_h, heavy), "mmff"


def _with_heavy_props(mol: Chem.Mol, heavy: Chem.Mol) -> Chem.Mol:
    """``mol`` carrying the molecule-level properties of ``heavy`` (e.g. ``bonds_generated``)."""
    for name, value in heavy.GetPropsAsDict(includePrivate=False, includeComputed=False).items():
        if isinstance(value, bool):
            mol.SetBoolProp(name, value)
        elif isinstance(value, int):
            mol.SetIntProp(name, value)
        elif isinstance(value, float):
            mol.SetDoubleProp(name, value)
        else:
            mol.SetProp(name, str(value))
    return mol
