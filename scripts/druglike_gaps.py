#!/usr/bin/env python
"""What a drug-like sample's two hardest gaps are made of: its SA score and its strain, term by term.

`molgen evaluate --reference moses` reports the SA score's Wasserstein
distance to the MOSES test set and the median MMFF94s strain; this script
splits both so that the next change can aim at the right term.

SA score (Ertl & Schuffenhauer 2009, RDKit Contrib's ``sascorer``): the raw
score is a fragment term (mean PubChem-frequency contribution of the
molecule's Morgan environments) minus penalties for size, stereocentres,
spiro atoms, bridgeheads and macrocycles, plus a symmetry correction, mapped
linearly onto 1 (easy) .. 10 (hard): one raw unit is -9 / 6.5 = -1.385 SA
units. Computed on each molecule's largest piece, without hydrogens and
stereo tags, as `molgen evaluate` does, for the sample and for the first N
prepared MOSES test molecules (the reference of ``--reference moses``).
Also lists the commonest Morgan environments of the sample that PubChem
rarely has (contribution below -2.5).

Strain (``molgen/molecules/metrics/strain.py``): the MMFF94s energy of the
pose minus that of its local minimum, split over the force field's terms
(bond stretch, angle bend, stretch-bend, out-of-plane, torsion, van der
Waals, electrostatics); the terms sum to the strain. Computed on each
molecule's largest piece with its hydrogens, as `molgen evaluate` does.

Usage: python scripts/druglike_gaps.py SAMPLES.sdf [--reference 1000] [--max-molecules 0]
"""

from __future__ import annotations

import argparse
import math
from collections import Counter
from collections.abc import Sequence

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem import rdFingerprintGenerator, rdForceFieldHelpers

from molgen.molecules.metrics.druglike import plain_molecule, sascorer
from molgen.molecules.metrics.strain import MAX_ITERATIONS, minimise

SA_TERMS = (
    "sa",
    "fragment",
    "unknown_fraction",
    "size_penalty",
    "stereo_penalty",
    "spiro_penalty",
    "bridge_penalty",
    "macrocycle_penalty",
    "symmetry_bonus",
    "stereocentres",
)
MMFF_TERMS = ("Bond", "Angle", "StretchBend", "Oop", "Torsion", "VdW", "Ele")
RARE_CONTRIBUTION = -2.5
"""Morgan environments whose PubChem contribution is below this are listed as rare (unknown ones count -4)."""


def largest_piece(mol: Chem.Mol) -> Chem.Mol:
    """The fragment with the most atoms (hydrogens as the molecule has them)."""
    return max(Chem.GetMolFrags(mol, asMols=True), key=lambda piece: piece.GetNumAtoms())


def sa_terms(mol: Chem.Mol) -> dict[str, float]:
    """The SA score of a hydrogen-free molecule and its terms (raw units; the penalties positive)."""
    sa = sascorer()
    if sa._fscores is None:
        sa.readFragmentScores()
    counts = sa.mfpgen.GetSparseCountFingerprint(mol).GetNonzeroElements()
    total = sum(counts.values())
    atoms = mol.GetNumAtoms()
    bridgeheads, spiro = sa.numBridgeheadsAndSpiro(mol, mol.GetRingInfo())
    stereocentres = len(Chem.FindMolChiralCenters(mol, includeUnassigned=True))
    macrocycle = any(len(ring) > 8 for ring in mol.GetRingInfo().AtomRings())
    return {
        "sa": sa.calculateScore(mol),
        "fragment": sum(sa._fscores.get(bit, -4) * count for bit, count in counts.items()) / total,
        "unknown_fraction": sum(count for bit, count in counts.items() if bit not in sa._fscores) / total,
        "size_penalty": atoms**1.005 - atoms,
        "stereo_penalty": math.log10(stereocentres + 1),
        "spiro_penalty": math.log10(spiro + 1),
        "bridge_penalty": math.log10(bridgeheads + 1),
        "macrocycle_penalty": math.log10(2) if macrocycle else 0.0,
        "symmetry_bonus": 0.5 * math.log(atoms / len(counts)) if atoms > len(counts) else 0.0,
        "stereocentres": float(stereocentres),
    }


def rare_environments(mols: Sequence[Chem.Mol], top: int = 15) -> list[tuple[str, int]]:
    """The commonest Morgan environments (radius 1-2, as SMILES of their atoms) that PubChem rarely has."""
    sa = sascorer()
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2)
    found: Counter[str] = Counter()
    for mol in mols:
        output = rdFingerprintGenerator.AdditionalOutput()
        output.AllocateBitInfoMap()
        generator.GetSparseCountFingerprint(mol, additionalOutput=output)
        for bit, environments in output.GetBitInfoMap().items():
            atom, radius = environments[0]
            if radius == 0 or sa._fscores.get(bit, -4) >= RARE_CONTRIBUTION:
                continue
            bonds = list(Chem.FindAtomEnvironmentOfRadiusN(mol, radius, atom))
            ends = (mol.GetBondWithIdx(bond) for bond in bonds)
            atoms = sorted({index for bond in ends for index in (bond.GetBeginAtomIdx(), bond.GetEndAtomIdx())})
            found[Chem.MolFragmentToSmiles(mol, atomsToUse=atoms, bondsToUse=bonds)] += 1
    return found.most_common(top)


def strain_terms(mol: Chem.Mol, max_iterations: int = MAX_ITERATIONS) -> dict[str, float] | None:
    """Each MMFF94s term's energy at the pose minus at its local minimum (kcal/mol; they sum to the strain).

    ``mol``: sanitized, explicit hydrogens, one conformer; not modified. The minimum is
    :func:`~molgen.molecules.metrics.strain.minimise`'s; None where it has none (e.g. no MMFF94s parameters)."""
    minimum = minimise(mol, max_iterations=max_iterations)
    if minimum.mol is None:
        return None
    typed = Chem.Mol(mol)  # MMFF typing re-flags aromaticity in place
    with rdBase.BlockLogs():
        properties = rdForceFieldHelpers.MMFFGetMoleculeProperties(typed, mmffVariant="MMFF94s")

    def term_energy(term: str, positions: np.ndarray) -> float:
        for other in MMFF_TERMS:
            getattr(properties, f"SetMMFF{other}Term")(other == term)
        field = rdForceFieldHelpers.MMFFGetMoleculeForceField(typed, properties, ignoreInterfragInteractions=False)
        return field.CalcEnergy(positions.ravel().tolist())

    start, end = (m.GetConformer().GetPositions() for m in (mol, minimum.mol))
    return {term: term_energy(term, start) - term_energy(term, end) for term in MMFF_TERMS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sdf", help="samples with explicit hydrogens (molgen sample --model drugs)")
    parser.add_argument("--reference", type=int, default=1000, help="MOSES test molecules for the SA rows (0: none)")
    parser.add_argument("--max-molecules", type=int, default=0, help="first N sanitizable samples only (0: all)")
    args = parser.parse_args()

    with rdBase.BlockLogs():
        samples = [mol for mol in Chem.SDMolSupplier(args.sdf, removeHs=False) if mol is not None]
    if args.max_molecules:
        samples = samples[: args.max_molecules]
    if not samples:
        raise SystemExit(f"druglike_gaps: no sanitizable molecules in {args.sdf}")
    pieces = [largest_piece(plain_molecule(mol)) for mol in samples]
    rows = {"sample": [sa_terms(mol) for mol in pieces]}
    if args.reference:
        from molgen.molecules.metrics.moses_reference import moses_molecules

        reference_mols = moses_molecules("test", args.reference)
        rows["MOSES test"] = [sa_terms(largest_piece(plain_molecule(mol))) for mol in reference_mols]
    reference = f", {len(rows['MOSES test'])} MOSES test molecules" if args.reference else ""
    print(f"SA score terms, means ({len(samples)} samples{reference})")
    print(f"{'term':20s}" + "".join(f"{name:>12s}" for name in rows))
    for term in SA_TERMS:
        print(f"{term:20s}" + "".join(f"{np.mean([row[term] for row in r]):12.3f}" for r in rows.values()))
    print(f"rare Morgan environments in the sample (PubChem contribution < {RARE_CONTRIBUTION}):")
    for smiles, count in rare_environments(pieces):
        print(f"  {count:4d}  {smiles}")

    terms = [t for t in (strain_terms(largest_piece(mol)) for mol in samples) if t is not None]
    totals = np.array([sum(t.values()) for t in terms])
    print(
        f"\nstrain by MMFF94s term ({len(terms)} molecules with parameters; median {np.median(totals):.1f}, "
        f"mean {totals.mean():.1f} kcal/mol)"
    )
    print(f"{'term':12s}{'median':>10s}{'mean':>10s}{'share of mean':>15s}")
    for term in MMFF_TERMS:
        values = np.array([t[term] for t in terms])
        print(f"{term:12s}{np.median(values):10.2f}{values.mean():10.2f}{values.mean() / totals.mean():15.2f}")


if __name__ == "__main__":
    main()
