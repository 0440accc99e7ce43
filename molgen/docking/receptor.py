"""Receptor preparation: a protein PDB file to the rigid PDBQT that Vina reads, with meeko.

meeko builds the receptor residue by residue from chemical templates, which gives
every atom its AutoDock type and charge and adds the hydrogens Vina's typing needs
(polar hydrogens make donors). A residue that matches no template (a side chain
truncated in the deposited structure, a ligand or cofactor left in the file) stops it.
What happens to such residues depends on where they are:

- farther than :data:`NEAR_BOX` from the box, they cannot touch a docked ligand (Vina's
  interactions reach 8 Å; the margin allows for atoms a truncated side chain lacks), so
  they are removed and the removal is reported;
- if any is nearer, the missing heavy atoms of every residue are rebuilt with PDBFixer
  (an optional dependency, in ``molgen[dock]``) and the receptor is prepared again. The
  repair strips every hydrogen first, because PDBFixer's added hydrogens clash with
  differently named ones already in the file, and lets meeko add them back from its
  templates; PDBFixer adds no hydrogens and no terminal oxygens (its terminal ``OXT`` can
  land near the backbone and break meeko's bond perception), which keeps the repair
  deterministic. Without PDBFixer, or when residues near the box still match no template,
  the receptor is refused with one line naming them.

Input cleaning before meeko: the first model only, waters removed, one alternate location
per atom (gemmi's choice: the first).
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from molgen.docking.box import Box

__all__ = ["NEAR_BOX", "PreparedReceptor", "ReceptorError", "prepare_receptor"]

NEAR_BOX = 12.0
"""Å; residues matching no template with an atom this close to the box must be repaired, farther ones are removed."""


class ReceptorError(ValueError):
    """The receptor cannot be prepared; the message is one line naming the reason."""


@dataclass(frozen=True)
class PreparedReceptor:
    """A receptor ready for Vina.

    Attributes:
        pdbqt: the rigid receptor as PDBQT text.
        notes: one line per change made to the input (repairs, removed residues).
    """

    pdbqt: str
    notes: tuple[str, ...] = ()


def _read_protein(path: Path):
    """The structure in ``path`` (PDB or mmCIF) as a gemmi structure: first model, no waters, one altloc.

    Raises:
        ReceptorError: unreadable, or without amino-acid residues.
    """
    import gemmi

    try:
        structure = gemmi.read_structure(str(path))
    except (RuntimeError, ValueError) as err:
        raise ReceptorError(f"cannot read receptor {path}: {err}") from None
    if len(structure) == 0:
        raise ReceptorError(f"receptor {path} has no protein atoms (no atom records)")
    for index in range(len(structure) - 1, 0, -1):
        del structure[index]
    structure.remove_waters()
    structure.remove_alternative_conformations()
    amino_acids = sum(
        1
        for chain in structure[0]
        for residue in chain
        if (info := gemmi.find_tabulated_residue(residue.name)) is not None and info.is_amino_acid()
    )
    if amino_acids == 0:
        raise ReceptorError(f"receptor {path} has no protein atoms (no amino-acid residues)")
    return structure


def _pdb_text(structure) -> str:
    import gemmi

    return structure.make_pdb_string(gemmi.PdbWriteOptions(minimal=True))


def _parameterize(pdb_text: str, box: Box):
    """meeko's polymer of ``pdb_text`` without the residues that match no template.

    Returns:
        ``(polymer, near, far)``: ``near`` and ``far`` list the unmatched residues as
        ``"A:123 LYS"``, with an atom within / beyond :data:`NEAR_BOX` of the box.
    """
    from meeko import MoleculePreparation, Polymer, PolymerCreationError, ResidueChemTemplates
    from rdkit import rdBase

    log = io.StringIO()  # meeko prints every template mismatch; the result says what matters
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log), rdBase.BlockLogs():
            polymer = Polymer.from_pdb_string(
                pdb_text,
                ResidueChemTemplates.create_from_defaults(),  # fresh: parsing adds to the templates
                MoleculePreparation.from_config({"compute_charges": False}),
                allow_bad_res=True,
            )
    except (PolymerCreationError, RuntimeError, ValueError) as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        raise ReceptorError(f"meeko cannot build the receptor: {reason[:300]}") from None
    near, far = [], []
    for key, monomer in polymer.get_ignored_monomers().items():
        mol = monomer.raw_rdkit_mol
        xyz = mol.GetConformer().GetPositions() if mol is not None and mol.GetNumConformers() else np.zeros((0, 3))
        label = f"{key} {monomer.input_resname}"
        (near if len(xyz) == 0 or box.distance_outside(xyz).min() <= NEAR_BOX else far).append(label)
    return polymer, near, far


def pdbfixer_available() -> bool:
    """Whether PDBFixer (and OpenMM) can be imported, for receptor repair."""
    try:
        import pdbfixer  # noqa: F401
    except ImportError:
        return False
    return True


def _rebuild_missing_atoms(structure) -> tuple[str, int]:
    """PDB text of ``structure`` without hydrogens and with missing heavy atoms of standard residues
    rebuilt by PDBFixer (no missing loops, no terminal oxygens); and the number of residues rebuilt."""
    from openmm.app import PDBFile
    from pdbfixer import PDBFixer

    stripped = structure.clone()
    stripped.remove_hydrogens()
    fixer = PDBFixer(pdbfile=io.StringIO(_pdb_text(stripped)))
    fixer.findMissingResidues()
    fixer.missingResidues = {}
    fixer.findMissingAtoms()
    fixer.missingTerminals = {}
    rebuilt = len(fixer.missingAtoms)
    fixer.addMissingAtoms()
    out = io.StringIO()
    PDBFile.writeFile(fixer.topology, fixer.positions, out, keepIds=True)
    return out.getvalue(), rebuilt


def prepare_receptor(path: str | os.PathLike, box: Box, repair: bool = True) -> PreparedReceptor:
    """Prepare the receptor in ``path`` (PDB or mmCIF) for docking in ``box``.

    Args:
        path: the protein; hydrogens optional.
        box: the docking box, which decides which unmatched residues matter.
        repair: rebuild the residues near the box that match no template with PDBFixer
            (when installed); False refuses such a receptor instead.

    Raises:
        ReceptorError: missing or unreadable file, no protein atoms, residues near the box that
            match no template and are not repaired (one line naming them).
    """
    from molgen.docking.dependencies import INSTALL_HINT

    path = Path(path)
    if not path.is_file():
        raise ReceptorError(f"receptor file not found: {path}")
    structure = _read_protein(path)
    polymer, near, far = _parameterize(_pdb_text(structure), box)
    notes = []
    if near and repair and pdbfixer_available():
        text, rebuilt = _rebuild_missing_atoms(structure)
        polymer, near, far = _parameterize(text, box)
        notes.append(
            f"repaired with PDBFixer: missing heavy atoms rebuilt in {rebuilt} residue(s), hydrogens removed and "
            "re-added by meeko"
        )
        hint = "they could not be rebuilt: fix or remove them in the receptor file"
    elif repair:
        hint = f"to rebuild them, install PDBFixer: {INSTALL_HINT}"
    else:
        hint = "drop --no-repair to rebuild them with PDBFixer, or fix them in the receptor file"
    if near:
        raise ReceptorError(
            f"receptor {path}: {len(near)} residue(s) within {NEAR_BOX:g} A of the box match no meeko template "
            f"(truncated side chains, ligands or cofactors?): {', '.join(near)}; {hint}"
        )
    if far:
        notes.append(
            f"removed {len(far)} residue(s) farther than {NEAR_BOX:g} A from the box that match no meeko template: "
            + ", ".join(far)
        )
    from meeko import PDBQTWriterLegacy

    rigid, _ = PDBQTWriterLegacy.write_from_polymer(polymer)
    return PreparedReceptor(rigid, tuple(notes))
