"""The molecule report: what a chemist looks at first, then the numbers.

For an SDF file (``molgen sample``'s output or any other), the page shows:

- a grid of RDKit 2D depictions of the first ``max_grid`` records, each with badges from
  the evaluation (RDKit-valid, connected, stable; QED and SA from SD tags or computed for
  drug-like sets; a docking score tag when present), and a failed tile with the reason for
  each record that could not be read;
- one interactive 3D view (:mod:`molgen.report.viewer`) of the grid's molecules; a click
  on a tile shows that molecule;
- histograms against the reference (:mod:`molgen.report.statistics`): atoms per molecule,
  elements, bond lengths per bond type, bond angles by central element, ring sizes and,
  for drug-like sets, QED, SA, logP and molecular weight;
- the evaluation table of :func:`molgen.molecules.evaluate.evaluate_molecules`, with the
  published QM9 figures beside the EDM protocol's rows (:data:`ANCHORS`);
- for docked molecules, the docking sections of :mod:`molgen.report.docking` (scores against
  a baseline, the best poses inside the receptor's pocket).

A set is drug-like when its molecules are larger than QM9's (median above 9 heavy atoms,
QM9's maximum) or it is compared with MOSES. The grid is capped (``--max-grid``) so that a
report of thousands of molecules stays small and quick; histograms and the table always
cover every molecule.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem import rdDepictor
from rdkit.Chem.Draw import rdMolDraw2D

from molgen.molecules.metrics.distribution import molecule_statistics
from molgen.molecules.record import MoleculeRecord
from molgen.report.docking import DEFAULT_BEST_POSES, SCORE_TAGS, DockingReport, docking_report, tag_value
from molgen.report.html import Figure, Page, Section, badge, data_image, escape, metric_rows, table
from molgen.report.plots import bars, binned, new_figure, values_histogram
from molgen.report.statistics import (
    PROPERTY_NAMES,
    RING_CLASSES,
    MoleculeReference,
    angle_ring_statistics,
    molecule_reference,
    property_values,
)
from molgen.report.viewer import ViewItem, molblock, viewer_box, viewer_scripts

__all__ = ["ANCHORS", "DEFAULT_MAX_GRID", "build_molecule_page", "molecule_report"]

DEFAULT_MAX_GRID = 100
#: Tile depiction size, pixels.
TILE_SIZE = (220, 170)
#: QM9 has at most 9 heavy atoms; a set whose median is larger is drug-like.
QM9_MAX_HEAVY_ATOMS = 9
#: Bond-length panels (the most frequent bond types of the sample) and bond-angle panels (central elements).
MAX_BOND_TYPES = 6
MAX_ANGLE_ELEMENTS = 4

#: Published figures beside the evaluation's rows, (section, key) -> [(label, fraction)]; all QM9 with
#: hydrogens, EDM protocol (Hoogeboom et al. 2022, Table 1; GeoLDM: Xu et al. 2023).
ANCHORS: dict[tuple[str, str], list[tuple[str, float]]] = {
    ("edm", "atom_stability"): [("QM9 data", 0.990), ("EDM", 0.987), ("GeoLDM", 0.989)],
    ("edm", "mol_stability"): [("QM9 data", 0.952), ("EDM", 0.820), ("GeoLDM", 0.894)],
    ("edm", "validity"): [("QM9 data", 0.977), ("EDM", 0.919), ("GeoLDM", 0.938)],
}


# ----- reading and evaluating ---------------------------------------------------------------------
def molecule_report(
    path: str | Path,
    reference: str = "qm9",
    *,
    max_grid: int = DEFAULT_MAX_GRID,
    posebusters: int = 0,
    receptor: str | Path | None = None,
    baseline: str | Path | None = None,
    best_poses: int = DEFAULT_BEST_POSES,
    records: list[MoleculeRecord] | None = None,
    problems: list[str] | None = None,
    evaluation=None,
    progress: bool = False,
) -> Page:
    """The report page of the SDF file ``path``.

    Args:
        reference: ``qm9``, ``moses``, ``none`` or an SDF file (novelty, distribution and histograms).
        max_grid: records shown in the grid and the 3D viewer (the first ones of the file).
        posebusters: molecules PoseBusters checks (a seeded subset; 0 = skip, the default: slow).
        receptor, baseline, best_poses: docked molecules: the receptor they were docked into (PDB or mmCIF),
            a docked SDF to compare their scores with, and the molecules whose best pose the 3D pocket view
            lists (:func:`molgen.report.docking.docking_report`).
        records, problems, evaluation: what the caller already read (:func:`molgen.molecules.sdf.read_records`)
            and evaluated (:func:`molgen.molecules.evaluate.evaluate_molecules`), to skip doing it again.

    Raises:
        FileNotFoundError, ValueError: a missing, empty or wholly unreadable file or reference; receptor or
            baseline that cannot be used (checked before the evaluation).
    """
    from molgen.molecules.evaluate import evaluate_molecules, load_reference
    from molgen.molecules.sdf import read_records

    if records is None:
        records, problems = read_records(path)
    if not records:
        raise ValueError(f"no readable molecules in {path} ({len(problems or [])} unreadable records)")
    docking = docking_report(records, receptor, baseline, best_poses)
    scored = None if reference == "none" else load_reference(reference, progress=progress)
    if evaluation is None:
        evaluation = evaluate_molecules(records, reference=scored, problems=problems, posebusters_max=posebusters)
    return build_molecule_page(
        Path(path).name,
        records,
        problems or [],
        evaluation,
        molecule_reference(reference, scored),
        max_grid=max_grid,
        druglike=reference == "moses" or None,
        docking=docking,
    )


# ----- the page -----------------------------------------------------------------------------------
def build_molecule_page(
    name: str,
    records: list[MoleculeRecord],
    problems: list[str],
    evaluation,
    reference: MoleculeReference | None,
    *,
    max_grid: int = DEFAULT_MAX_GRID,
    druglike: bool | None = None,
    docking: DockingReport | None = None,
) -> Page:
    """The page of evaluated records (``evaluation.per_molecule`` aligned with ``records``).

    Args:
        name: the input's name, for the title.
        problems: read_records' unreadable records (``"record <i>...: <reason>"``), shown as failed tiles.
        druglike: show the drug-like property panels; None decides from the sizes (module docstring).
        docking: the docking sections' content (:func:`molgen.report.docking.docking_report`), None for none.
    """
    heavy = np.array([int(np.count_nonzero(r.atomic_numbers > 1)) for r in records])
    if druglike is None:
        druglike = bool(np.median(heavy) > QM9_MAX_HEAVY_ATOMS)
    properties = _properties(records, evaluation.per_molecule) if druglike else None
    total = len(records) + len(problems)
    page = Page(
        f"molgen report: {name}",
        f"{total:,} records: {len(records):,} molecules read, {len(problems):,} unreadable"
        + (f"; reference {reference.name}" if reference else "; no reference"),
    )
    page.sections.append(_grid_section(records, problems, evaluation.per_molecule, max_grid, druglike))
    page.sections.append(
        Section(
            "Metrics",
            _metric_table(evaluation.report, anchors=not druglike)
            + "".join(f'<p class="note">{escape(n)}</p>' for n in evaluation.report.get("notes", [])),
        )
    )
    page.sections.append(_distribution_section(records, reference, properties))
    if docking is not None:
        page.sections += docking.sections()
    page.scripts += viewer_scripts()
    return page


def _properties(records: list[MoleculeRecord], per_molecule: list[dict]) -> dict[str, np.ndarray]:
    """QED, SA, logP, MW of the valid molecules: the evaluation's (``druglike_<name>``, with a drug-like
    reference), else computed."""
    if any("druglike_qed" in row for row in per_molecule):
        return {
            name: np.array([row[f"druglike_{name}"] for row in per_molecule if f"druglike_{name}" in row])
            for name in PROPERTY_NAMES
        }
    return property_values([r.mol for r in records])


def _record_indices(num_records: int, problems: list[str]) -> tuple[list[int], dict[int, str]]:
    """File positions of the read records, and of the unreadable ones with their reasons.

    read_records names an unreadable record ``record <i>...``; the readable ones fill the other positions in order.
    """
    failed: dict[int, str] = {}
    for problem in problems:
        match = re.match(r"record (\d+)", problem)
        failed[int(match.group(1)) if match else -1 - len(failed)] = problem
    total = num_records + len(problems)
    return [i for i in range(total) if i not in failed][:num_records], failed


def depiction(mol: Chem.Mol | None) -> bytes | None:
    """RDKit's 2D depiction (SVG, :data:`TILE_SIZE`) of ``mol`` without its hydrogens, or None
    when it cannot be drawn. Molecules that do not sanitize are drawn as they are."""
    if mol is None or mol.GetNumAtoms() == 0:
        return None
    with rdBase.BlockLogs():
        try:
            plain = Chem.RemoveHs(mol, sanitize=False)
            plain.UpdatePropertyCache(strict=False)
            Chem.RemoveStereochemistry(plain)  # perceived from 3D, the wedges only distract here
            try:
                Chem.SanitizeMol(plain)
                sanitized = True
            except (ValueError, RuntimeError):
                sanitized = False
            rdDepictor.Compute2DCoords(plain)
            drawer = rdMolDraw2D.MolDraw2DSVG(*TILE_SIZE)
            drawer.drawOptions().clearBackground = False
            if sanitized:
                rdMolDraw2D.PrepareAndDrawMolecule(drawer, plain)
            else:
                drawer.DrawMolecule(plain)
            drawer.FinishDrawing()
        except (ValueError, RuntimeError):
            return None
    text = drawer.GetDrawingText()
    return text[text.index("<svg") :].encode()  # without the XML declaration


def _flag(row: dict, key: str, label: str) -> str:
    if key not in row:
        return ""
    return badge(label if row[key] else f"not {label}", "yes" if row[key] else "no")


def _badges(record: MoleculeRecord, row: dict, druglike: bool) -> str:
    stable = "graph_mol_stable" if record.bonds_generated and "graph_mol_stable" in row else "edm_mol_stable"
    parts = [
        _flag(row, "rdkit_valid", "valid"),
        _flag(row, "rdkit_connected", "connected"),
        _flag(row, stable, "stable"),
    ]
    parts.append(_flag(row, "posebusters_all_passed", "PB"))
    qed = row.get("druglike_qed", tag_value(record, "qed"))
    sa = row.get("druglike_sa", tag_value(record, "sa", "sa_score"))
    if druglike and (qed is None or sa is None) and row.get("rdkit_valid") and record.mol is not None:
        computed = property_values([record.mol])
        if len(computed["qed"]):
            qed = computed["qed"][0] if qed is None else qed
            sa = computed["sa"][0] if sa is None else sa
    if qed is not None:
        parts.append(badge(f"QED {qed:.2f}", title="quantitative estimate of drug-likeness, 0..1"))
    if sa is not None:
        parts.append(badge(f"SA {sa:.1f}", title="synthetic accessibility, 1 easy .. 10 hard"))
    score = tag_value(record, *SCORE_TAGS)
    if score is not None:
        parts.append(badge(f"dock {score:.1f}", title="docking score, kcal/mol"))
    return "".join(parts)


def _grid_section(
    records: list[MoleculeRecord], problems: list[str], per_molecule: list[dict], max_grid: int, druglike: bool
) -> Section:
    positions, failed = _record_indices(len(records), problems)
    by_position = dict(zip(positions, range(len(records))))
    tiles, items = [], []
    shown_failed = 0
    for position in sorted([*by_position, *failed])[:max_grid]:
        if position in failed:
            shown_failed += 1
            tiles.append(
                f'<div class="tile failed"><div class="name">#{position}</div>'
                f'<div class="reason">unreadable: {escape(failed[position])}</div></div>'
            )
            continue
        index = by_position[position]
        record = records[index]
        svg = depiction(record.mol)
        image = (
            f'<img alt="{escape(record.name)}" src="{data_image(svg, "image/svg+xml")}">'
            if svg is not None
            else '<div class="reason">no 2D depiction (no bonds)</div>'
        )
        block = molblock(record.mol) if record.mol is not None else None
        view = ""
        if block is not None:
            view = f' data-viewer="molecule-viewer" data-view="{len(items)}"'
            items.append(ViewItem(f"#{position} {record.name}", block, "sdf", "molecule"))
        tiles.append(
            f'<div class="tile"{view}><div class="name" title="{escape(record.name)}">#{position} '
            f"{escape(record.name)} · {record.num_atoms} atoms</div>{image}"
            f"<div>{_badges(record, per_molecule[index], druglike)}</div></div>"
        )
    shown = len(tiles)
    total = len(records) + len(problems)
    summary = f"The first {shown:,} of {total:,} records" if shown < total else f"All {total:,} records"
    summary += (
        f" ({shown_failed} unreadable shown of {len(problems)})" if problems else ""
    ) + "; the histograms and the metrics cover every molecule. Click a molecule to view it in 3D."
    body = f'<p class="note">{escape(summary)}</p><div class="grid">{"".join(tiles)}</div>'
    if items:
        body = viewer_box("molecule-viewer", items, "as written in the file, hydrogens included; drag to rotate") + body
    return Section("Molecules", body)


# ----- metrics table ------------------------------------------------------------------------------
def _format(section: str, key: str, value) -> str:
    """A table value: fractions as percentages, as `molgen evaluate` prints them; counts with separators."""
    from molgen.molecules.evaluate import is_fraction  # the evaluation's rule: the table matches its text form

    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return escape(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{100 * value:.2f} %" if is_fraction(section, key, value) else f"{value:.4f}"


def _metric_table(report: dict, anchors: bool) -> str:
    def cells(section: str, key: str, value) -> list[str]:
        published = ANCHORS.get((section, key), []) if anchors else []
        shown = ", ".join(f"{label} {100 * figure:.1f} %" for label, figure in published)
        return [_format(section, key, value), escape(shown)]

    rows = metric_rows(report, cells)
    note = (
        '<p class="note">Published: EDM protocol on QM9 with hydrogens (Hoogeboom et al. 2022; GeoLDM, '
        "Xu et al. 2023), 10,000 samples each.</p>"
        if anchors
        else ""
    )
    return table(rows, ["metric", "value", "published (QM9)" if anchors else ""], numeric={1}) + note


# ----- histograms ---------------------------------------------------------------------------------
def _distribution_section(
    records: list[MoleculeRecord], reference: MoleculeReference | None, properties: dict[str, np.ndarray] | None
) -> Section:
    names = ("samples", reference.name if reference else "")
    ref_stats = reference.statistics if reference else None
    ref_geometry = reference.angles_rings if reference else None
    stats = molecule_statistics(records)
    geometry = angle_ring_statistics(records)
    figures = []

    figure, (ax,) = new_figure()
    sizes = {n: c for n, c in enumerate(stats.num_atoms_counts.tolist()) if c}
    ref_sizes = {n: c for n, c in enumerate(ref_stats.num_atoms_counts.tolist()) if c} if ref_stats else None
    span = sorted(set(sizes) | set(ref_sizes or {}))
    bars(ax, sizes, ref_sizes, names, order=list(range(span[0], span[-1] + 1)))
    ax.set_xlabel("atoms per molecule (hydrogens included)")
    figures.append(Figure("atoms_per_molecule", "Atoms per molecule, sample against reference.", figure))

    figure, (ax,) = new_figure()
    bars(ax, stats.atom_counts, ref_stats.atom_counts if ref_stats else None, names)
    ax.set_xlabel("element")
    figures.append(Figure("elements", "Element frequencies (fraction of all atoms).", figure))

    bond_types = sorted(stats.bond_length_counts, key=lambda t: -stats.bond_length_counts[t].sum())[:MAX_BOND_TYPES]
    if bond_types:
        figure, axes = new_figure(len(bond_types), columns=3, size=(3.2, 2.4))
        low, high = stats.bond_length_range
        edges = np.linspace(low, high, stats.num_bins + 1)
        for ax, bond in zip(axes, bond_types):
            ref_counts = ref_stats.bond_length_counts.get(bond) if ref_stats and ref_stats.bond_length_counts else None
            counts = stats.bond_length_counts[bond]
            mass = np.flatnonzero(counts + (ref_counts if ref_counts is not None else 0))
            binned(ax, edges, counts, ref_counts, names, "length (Å)")
            ax.set_xlim(edges[max(mass[0] - 3, 0)], edges[min(mass[-1] + 4, len(edges) - 1)])
            ax.set_title(bond)
        figures.append(
            Figure(
                "bond_lengths",
                "Bond lengths per bond type (bonds by EDM's single-bond criterion, as the distribution metrics).",
                figure,
            )
        )

    elements = sorted(geometry.angle_counts, key=lambda e: -geometry.angle_counts[e].sum())[:MAX_ANGLE_ELEMENTS]
    if elements:
        figure, axes = new_figure(len(elements), columns=2, size=(3.4, 2.4))
        for ax, element in zip(axes, elements):
            ref_counts = ref_geometry.angle_counts.get(element) if ref_geometry else None
            binned(ax, np.arange(181.0), geometry.angle_counts[element], ref_counts, names, "angle (degrees)")
            ax.set_xlim(40, 180)
            ax.set_title(f"centred on {element}")
        figures.append(
            Figure(
                "bond_angles",
                "Bond angles by central element (bonds within 1.3 x the sum of covalent radii).",
                figure,
            )
        )

    figure, (ax,) = new_figure()
    ring_ref = dict(zip(RING_CLASSES, ref_geometry.ring_counts.tolist())) if ref_geometry else None
    bars(ax, dict(zip(RING_CLASSES, geometry.ring_counts.tolist())), ring_ref, names, order=RING_CLASSES)
    ax.set_xlabel("ring size (atoms)")
    ax.set_ylabel("fraction of rings")
    figures.append(Figure("ring_sizes", "Ring sizes (smallest set of smallest rings).", figure))

    if properties is not None and len(properties["qed"]):
        figure, axes = new_figure(4, columns=2, size=(3.4, 2.4))
        for ax, (key, label) in zip(axes, PROPERTY_NAMES.items()):
            ref_values = reference.properties.get(key) if reference and reference.properties else None
            values_histogram(ax, properties[key], ref_values, names, label, bins=30)
        figures.append(Figure("properties", "Drug-like properties of the molecules that sanitize (RDKit).", figure))
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in (reference.notes if reference else []))
    return Section("Distributions", notes, figures)
