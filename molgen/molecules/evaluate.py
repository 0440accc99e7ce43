"""Run every validation protocol on a set of molecules and report the results.

The report is a plain dict, one section per protocol, each mapping metric
names to numbers (fractions in [0, 1] unless the name says otherwise):

    input         counts: records, evaluated, unreadable, bonds in file, ...
    edm           EDM protocol (bonds from distances): atom_stability, mol_stability,
                  validity, uniqueness, novelty
    graph         stability of the file's own bonds and formal charges (when the file has
                  bonds): atom_stability, mol_stability, counts
    rdkit         RDKit protocol (file bonds or rdDetermineBonds): validity,
                  connectivity, valid_and_connected, uniqueness, novelty
    posebusters   PoseBusters "mol" checks: pass rate per check, all_passed
    distribution  distances to the reference: atom_type_tv, num_atoms_tv, bond_length_w1 (Å)
    druglike      MOSES-style metrics of the valid molecules (IntDiv, SNN, fragment and scaffold
                  similarity, property distances and means, filter pass rates, ring sizes)
    geometry      distances of the valid molecules' bond lengths (Å), bond angles and torsions
                  (degrees) from the reference conformers', per bonded type
    strain        MMFF94s strain energy of the valid molecules (kcal/mol: median, quartiles)
    notes         human-readable remarks (skipped sections and why, molecules with
                  elements outside molgen's tables)

The druglike, geometry and strain sections need a drug-like reference
(``--reference moses``, :mod:`~molgen.molecules.metrics.moses_reference`):
the drug-like metrics and geometry compare with its molecules, and strain is
reported with them because MMFF94s is a force field for drug-like molecules
(it needs explicit hydrogens: with implicit ones the section is skipped, as
edm is). They judge the RDKit protocol's valid molecules (the sanitized
largest fragment, duplicates kept, as MOSES does), so uniqueness and novelty
stay in the rdkit section.

A molecule holding an element outside molgen's tables
(:data:`~molgen.molecules.metrics.elements.TABLE_ELEMENTS`, e.g. Xe or U) is
invalid and unstable in the edm, graph and rdkit sections; a note names each
such molecule and its elements, and its per-molecule row carries
``unknown_elements``. Its hydrogens do not decide whether the edm and graph
sections run (RDKit guesses implicit hydrogens on such elements, e.g. on Xe
with three bonds).

``per_molecule`` results (for ``--annotate`` and ``--filter``) are kept apart.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

from molgen.molecules.metrics.conformer_geometry import compare_geometry, conformer_geometry
from molgen.molecules.metrics.distribution import compare_statistics, molecule_statistics
from molgen.molecules.metrics.druglike import FRACTION_KEYS, PROPERTIES, evaluate_druglike
from molgen.molecules.metrics.edm import evaluate_edm
from molgen.molecules.metrics.elements import TABLE_ELEMENTS, elements_outside_tables
from molgen.molecules.metrics.graph_stability import evaluate_graph_stability
from molgen.molecules.metrics.rdkit_protocol import evaluate_rdkit
from molgen.molecules.metrics.reference import Reference
from molgen.molecules.metrics.strain import evaluate_strain
from molgen.molecules.record import MoleculeRecord
from molgen.reports import format_sections

#: Molecules with elements outside the tables named one by one in the note; the rest are counted.
MAX_NAMED_RECORDS = 10

#: Sections whose numbers are distances or energies, never shown as percentages.
_NOT_FRACTIONS = ("distribution", "geometry", "strain")


@dataclass
class Evaluation:
    """``report``: JSON-ready sections; ``per_molecule``: one dict of SD-tag-ready values per record."""

    report: dict
    per_molecule: list[dict] = field(default_factory=list)


def evaluate_molecules(
    records: list[MoleculeRecord],
    *,
    reference: Reference | None = None,
    problems: list[str] | None = None,
    posebusters_max: int | None = 0,
    posebusters_energy: bool = False,
    posebusters_workers: int = 1,
) -> Evaluation:
    """Evaluate ``records`` with every protocol.

    Args:
        reference: novelty and distribution reference (None skips both; a drug-like one adds the
            druglike, geometry and strain sections).
        problems: records of the input that could not be read (reported).
        posebusters_max: molecules to bust (a seeded random subset); None =
            all, 0 = skip PoseBusters.
        posebusters_energy: include PoseBusters' internal-energy check (~0.5-1 s per molecule here).
    """
    if not records:
        raise ValueError("no readable molecules to evaluate" + (f" ({len(problems)} unreadable)" if problems else ""))
    problems = problems or []
    unknown = [elements_outside_tables(r.atomic_numbers) for r in records]
    # Molecules with unknown elements fail every protocol anyway, and their implicit hydrogens
    # may be nothing but RDKit's guess for an element it has no usual valence for.
    implicit = sum(r.implicit_hydrogens > 0 and not u for r, u in zip(records, unknown))
    report: dict = {
        "input": {
            "num_records": len(records) + len(problems),
            "num_evaluated": len(records),
            "num_unreadable": len(problems),
            "num_with_bonds_in_file": sum(r.has_bonds for r in records),
            "num_with_implicit_hydrogens": sum(r.implicit_hydrogens > 0 for r in records),
        },
        "notes": [f"unreadable {p}" for p in problems],
    }
    per_molecule: list[dict] = [{"unknown_elements": ",".join(u)} if u else {} for u in unknown]
    if any(unknown):
        report["input"]["num_with_unknown_elements"] = sum(bool(u) for u in unknown)
        report["notes"].append(_unknown_elements_note(records, unknown))

    def merge(prefix: str, rows: list[dict | None], keys: tuple[str, ...]) -> None:
        for target, row in zip(per_molecule, rows):
            if row is not None:
                target.update({f"{prefix}_{k}": row[k] for k in keys if k in row and row[k] is not None})

    if implicit:
        report["edm"] = {}
        report["notes"].append(
            f"edm: skipped, {implicit} molecules have implicit hydrogens; the EDM protocol infers bonds "
            "from distances and needs every hydrogen placed in 3D"
        )
    else:
        with warnings.catch_warnings():  # any implicit hydrogens are on molecules with unknown elements
            warnings.filterwarnings("ignore", message="some records have implicit hydrogens")
            edm = evaluate_edm(records, reference.edm_smiles if reference else None)
        report["edm"] = {k: v for k, v in edm.summary.items() if v is not None}
        # Elements within molgen's tables that the EDM bond tables lack (unknown ones have their own note).
        outside_bonds = [set(row["unsupported_elements"]) - set(u) for row, u in zip(edm.per_molecule, unknown)]
        unsupported = sorted(set().union(*outside_bonds))
        if unsupported:
            count = sum(bool(elements) for elements in outside_bonds)
            report["notes"].append(
                f"edm: {count} molecules contain elements outside the protocol's bond tables "
                f"({', '.join(unsupported)}); counted invalid and unstable"
            )
        merge("edm", edm.per_molecule, ("mol_stable", "stable_atoms", "valid", "smiles"))

    if any(r.has_bonds or r.bonds_generated for r in records):
        if implicit:
            report["notes"].append(
                f"graph: skipped, {implicit} molecules have implicit hydrogens; graph stability counts placed atoms"
            )
        else:
            graph = evaluate_graph_stability(records)
            report["graph"] = graph.summary
            merge("graph", graph.per_molecule, ("mol_stable", "stable_atoms"))
            if graph.summary["num_bonds_generated"] < len(records):
                report["notes"].append(
                    "graph: bonds of records not tagged bonds_generated=1 were perceived or given by the file, "
                    "so their graph stability says more about perception than about the geometry"
                )

    rdkit = evaluate_rdkit(records, reference.rdkit_smiles if reference else None)
    report["rdkit"] = {k: v for k, v in rdkit.summary.items() if v is not None}
    merge("rdkit", rdkit.per_molecule, ("valid", "connected", "smiles"))

    if posebusters_max == 0:
        report["posebusters"] = {}
        report["notes"].append("posebusters: skipped (--posebusters 0)")
    else:
        from molgen.molecules.metrics.posebusters_checks import evaluate_posebusters

        busted = evaluate_posebusters(
            records, max_molecules=posebusters_max, energy=posebusters_energy, workers=posebusters_workers
        )
        report["posebusters"] = dict(busted.summary)
        merge("posebusters", busted.per_molecule, ("all_passed",))

    if reference is None:
        report["distribution"] = {}
        report["notes"].append("novelty and distribution: skipped (no reference)")
    else:
        report["distribution"] = compare_statistics(molecule_statistics(records), reference.statistics)
        report["input"]["reference"] = reference.name
        if reference.edm_smiles is None and report["edm"]:
            report["notes"].append(f"edm: no novelty, the {reference.name} reference has no training geometries")

    if reference is not None and reference.druglike is not None:
        valid = [index for index, mol in enumerate(rdkit.molecules) if mol is not None]
        mols = [rdkit.molecules[index] for index in valid]

        def aligned(rows: list[dict]) -> list[dict | None]:
            """Rows of the valid molecules placed at their records (None for the others)."""
            placed: list[dict | None] = [None] * len(records)
            for index, row in zip(valid, rows):
                placed[index] = row
            return placed

        if not mols:
            report["notes"].append("druglike, geometry and strain: skipped, no valid molecule")
        else:
            druglike = evaluate_druglike(mols, reference.druglike)
            report["druglike"] = druglike.summary
            merge("druglike", aligned(druglike.per_molecule), (*PROPERTIES, "filters_passed", "filters_failed"))
            geometry = compare_geometry(conformer_geometry(mols), reference.geometry)
            report["geometry"] = {"num_molecules": len(mols), **geometry}
            if implicit:
                report["notes"].append(
                    f"strain: skipped, {implicit} molecules have implicit hydrogens; MMFF94s needs every hydrogen"
                )
            else:
                strain = evaluate_strain(mols)
                report["strain"] = strain.summary
                merge("strain", aligned(strain.per_molecule), ("energy", "status"))
    return Evaluation(report, per_molecule)


def _unknown_elements_note(records: list[MoleculeRecord], unknown: list[list[str]]) -> str:
    """The note naming the molecules with elements outside the tables: position among the evaluated
    molecules (as in ``--annotate``), name where it says more, and the elements."""
    named = []
    for index, (record, elements) in enumerate(zip(records, unknown)):
        if elements:
            label = f"record {index}" + (f' "{record.name}"' if record.name and record.name != str(index) else "")
            named.append(f"{label} ({', '.join(elements)})")
    shown = ", ".join(named[:MAX_NAMED_RECORDS]) + (
        f", and {len(named) - MAX_NAMED_RECORDS} more" if len(named) > MAX_NAMED_RECORDS else ""
    )
    return (
        f"{len(named)} molecules contain elements outside the tables ({', '.join(TABLE_ELEMENTS)}); "
        f"the edm, graph and rdkit protocols count them invalid and unstable: {shown}"
    )


def is_fraction(section: str, key: str, value: float) -> bool:
    if section == "druglike":
        return key in FRACTION_KEYS  # the rest are similarities, distances and means, whatever their range
    if section == "relaxation":  # `molgen sample --relax`: energies and distances beside one fraction
        return key.endswith("_fraction")
    return section not in _NOT_FRACTIONS and 0 <= value <= 1


def format_report(report: dict) -> str:
    """The report as an aligned text table, one block per section (fractions of molecules or atoms as
    percentages; distances, similarities, means and energies as numbers)."""
    return format_sections(report, is_fraction)


def load_reference(spec: str, progress: bool):
    """The novelty/distribution reference of ``--reference``: ``qm9``, ``moses`` (drug-like; needs the molsets
    wheel, else FileNotFoundError with the install line), ``none`` or an SDF file."""
    from molgen.molecules.metrics.reference import qm9_reference
    from molgen.molecules.sdf import read_records

    if spec == "none":
        return None
    if spec == "qm9":
        return qm9_reference(progress=progress)
    if spec == "moses":
        from molgen.molecules.metrics.moses_reference import moses_reference

        return moses_reference(progress=progress)
    records, _ = read_records(spec)
    return Reference.from_records(Path(spec).name, records, progress=progress)
