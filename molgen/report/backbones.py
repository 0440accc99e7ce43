"""The backbone report: generated protein backbones (a PDB/mmCIF file or a folder of them), as pictures.

For every chain the page draws what :mod:`molgen.proteins.metrics` measures:

- Ramachandran densities (phi, psi) of the designs, beside natural chains when given,
  with the ideal alpha helix and beta strand marked;
- CA-CA distances and the four backbone bond lengths against Engh-Huber's ideal values;
- secondary-structure composition (DSSP, three states);
- radius of gyration against length, with the natural scaling 2.2 L^0.38 Å;
- CA contact maps (CA-CA < 8 Å) of the first designs;
- a 3D cartoon of each design (the viewer's list), coloured from N to C terminus,
  helices and strands from the DSSP assignment;
- the table of :func:`molgen.proteins.metrics.evaluate_backbones`, with the natural
  chains' figures beside it.

Natural chains are read only when ``reference`` names a folder of structures (e.g.
``../shared/data/proteins/db55``): up to :data:`MAX_REFERENCE_FILES` files of it (a seeded
choice), split at chain breaks into segments of at least :data:`MIN_SEGMENT` residues.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.colors import LogNorm

from molgen.proteins.geometry import (
    CA_CA_DISTANCE,
    HELIX_PHI_PSI,
    IDEAL_BOND_LENGTHS,
    STRAND_PHI_PSI,
    backbone_dihedrals,
)
from molgen.proteins.metrics import RG_EXPONENT, RG_PREFACTOR, evaluate_backbones, validate_backbone
from molgen.report.html import Figure, Page, Section, escape, metric_rows, table
from molgen.report.plots import REFERENCE_COLOR, SAMPLE_COLOR, bars, new_figure, values_histogram
from molgen.report.viewer import ViewItem, viewer_box, viewer_scripts

__all__ = ["MAX_CONTACT_MAPS", "MAX_REFERENCE_FILES", "backbone_report"]

#: Natural structure files read from a reference folder (seeded choice), and their shortest segment kept.
MAX_REFERENCE_FILES = 100
MIN_SEGMENT = 40
#: Designs drawn as contact maps; CA atoms closer than this are in contact (Å).
MAX_CONTACT_MAPS = 6
CONTACT_DISTANCE = 8.0
#: Designs in the 3D viewer's list and structures TM-aligned for the diversity row.
MAX_VIEWED = 200
MAX_TM_STRUCTURES = 50


@dataclass
class ChainSet:
    """Per-residue measurements pooled over a set of chains.

    Attributes:
        names: [N] chain names.
        lengths: [N] residues per chain.
        phi, psi: [R] dihedrals in degrees, pooled, residues where both are defined.
        bond_lengths: bond name -> [B] Å, pooled (keys of Engh-Huber's table).
        ca_ca: [R'] consecutive CA-CA distances, Å.
        secondary: [N] DSSP strings (``H``, ``E``, ``-``).
        rg: [N] CA radius of gyration, Å.
    """

    names: list[str]
    lengths: np.ndarray
    phi: np.ndarray
    psi: np.ndarray
    bond_lengths: dict[str, np.ndarray]
    ca_ca: np.ndarray
    secondary: list[str]
    rg: np.ndarray


def _measure(names: list[str], backbones: list[np.ndarray]) -> ChainSet:
    """:class:`ChainSet` of ``[L, 4, 3]`` backbones (Å), each of at least 2 residues."""
    phi, psi, lengths, ca_ca, secondary, rg = [], [], [], [], [], []
    bonds: dict[str, list[np.ndarray]] = {name: [] for name in IDEAL_BOND_LENGTHS}
    for coords in backbones:
        result = validate_backbone(coords)
        p, s, _ = backbone_dihedrals(coords)
        both = np.isfinite(p) & np.isfinite(s)
        phi.append(p[both])
        psi.append(s[both])
        for name in bonds:
            bonds[name].append(result.bond_lengths[name])
        ca_ca.append(result.ca_distances)
        secondary.append(result.secondary_structure)
        rg.append(result.radius_of_gyration)
        lengths.append(result.length)
    return ChainSet(
        names,
        np.asarray(lengths),
        np.concatenate(phi),
        np.concatenate(psi),
        {name: np.concatenate(values) for name, values in bonds.items()},
        np.concatenate(ca_ca),
        secondary,
        np.asarray(rg),
    )


def _read(path: Path, progress: bool):
    """Chains of a structure file or folder, and the files that failed as ``(file, reason)``."""
    from molgen.proteins.pdb import read_backbone_folder, read_backbones

    if path.is_dir():
        chains, parse_report = read_backbone_folder(path, progress=progress)
        return chains, parse_report.failures
    chains, _ = read_backbones(path)
    if not chains:
        raise ValueError(f"{path}: no chain with a complete N, CA, C, O residue")
    return chains, []


def _natural(folder: str) -> list:
    """Break-free segments (at least :data:`MIN_SEGMENT` residues) of a seeded choice of the folder's files."""
    from molgen.proteins.pdb import StructureError, find_structure_files, read_backbones

    files = find_structure_files(folder)
    if len(files) > MAX_REFERENCE_FILES:
        pick = np.random.default_rng(0).choice(len(files), size=MAX_REFERENCE_FILES, replace=False)
        files = [files[i] for i in sorted(pick)]
    segments = []
    for file in files:
        try:
            chains, _ = read_backbones(file)
        except StructureError:
            continue
        segments += [s for chain in chains for s in chain.segments(min_length=MIN_SEGMENT)]
    if not segments:
        raise ValueError(f"no natural segment of at least {MIN_SEGMENT} residues in {folder}")
    return segments


def backbone_report(path: str | Path, reference: str | None = None, *, progress: bool = False) -> Page:
    """The report page of the backbones in ``path`` (a structure file or a folder of them).

    Args:
        reference: a folder of natural structures to compare with (None: the designs alone).

    Raises:
        OSError, ValueError: no readable chain in ``path`` or ``reference``.
    """
    from molgen.proteins.pdb import format_backbone_pdb

    path = Path(path)
    chains, failures = _read(path, progress)
    chains = [c for c in chains if c.length >= 2]
    if not chains:
        raise ValueError(f"{path}: no chain of at least 2 residues")
    designs = _measure([c.name for c in chains], [c.coords for c in chains])
    report = evaluate_backbones([c.coords for c in chains], tm_max_structures=MAX_TM_STRUCTURES)
    natural, natural_report = None, None
    if reference is not None:
        segments = _natural(reference)
        natural = _measure([s.name for s in segments], [s.coords for s in segments])
        natural_report = evaluate_backbones([s.coords for s in segments], tm_score=False)
    names = ("designs", f"natural ({Path(reference).name})" if reference else "")

    page = Page(
        f"molgen report: {path.name}",
        f"{len(chains):,} chains of {designs.lengths.min()}-{designs.lengths.max()} residues"
        + (f", {len(failures)} unreadable files" if failures else "")
        + (f"; natural reference: {len(natural.names):,} segments from {reference}" if natural else ""),
    )
    items = [
        ViewItem(f"{c.name} ({c.length} residues)", format_backbone_pdb(c.coords), "pdb", "backbone", ss)
        for c, ss in zip(chains[:MAX_VIEWED], designs.secondary)
    ]
    body = viewer_box(
        "backbone-viewer",
        items,
        "cartoon coloured N (blue) to C terminus (red); helices and strands as DSSP assigns them",
    )
    if len(chains) > MAX_VIEWED:
        body += f'<p class="note">The viewer lists the first {MAX_VIEWED} of {len(chains):,} chains.</p>'
    if failures:
        rows = "".join(f"<li>{escape(file)}: {escape(reason)}</li>" for file, reason in failures)
        body += f'<p class="note">Unreadable files ({len(failures)}):</p><ul class="note">{rows}</ul>'
    page.sections.append(Section("Designs", body))
    page.sections.append(Section("Metrics", _metric_table(report, natural_report)))
    page.sections.append(Section("Geometry", "", _figures(designs, natural, names, chains)))
    page.scripts += viewer_scripts()
    return page


def _metric_table(report: dict, natural: dict | None) -> str:
    def cells(section: str, key: str, value) -> list[str]:
        if natural is None:
            return [_format(key, value)]
        other = natural.get(section, {}).get(key)
        return [_format(key, value), _format(key, other) if other is not None else ""]

    rows = metric_rows(report, cells)
    header = ["metric", "designs"] + (["natural"] if natural is not None else [])
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in report.get("notes", []))
    return table(rows, header, numeric={1, 2}) + notes


def _format(key: str, value) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return escape(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{100 * value:.1f} %" if key.endswith("_fraction") else f"{value:.3f}"


def _figures(designs: ChainSet, natural: ChainSet | None, names: tuple[str, str], chains: list) -> list[Figure]:
    figures = []
    sets = [(names[0], designs)] + ([(names[1], natural)] if natural else [])
    figure, axes = new_figure(len(sets), columns=len(sets), size=(3.6, 3.4))
    for ax, (name, chain_set) in zip(axes, sets):
        ax.hist2d(
            chain_set.phi, chain_set.psi, bins=72, range=[[-180, 180], [-180, 180]], cmap="viridis_r", norm=LogNorm()
        )
        for (phi, psi), label in ((HELIX_PHI_PSI, "α"), (STRAND_PHI_PSI, "β")):
            ax.annotate(label, (phi, psi), color="#c0392b", ha="center", va="center", fontsize=11)
        ax.set(xlim=(-180, 180), ylim=(-180, 180), xlabel="φ (degrees)", ylabel="ψ (degrees)", aspect="equal")
        ax.set_xticks([-180, -90, 0, 90, 180])
        ax.set_yticks([-180, -90, 0, 90, 180])
        ax.set_title(f"{name}: {len(chain_set.phi):,} residues")
    figures.append(
        Figure(
            "ramachandran",
            "Ramachandran density (residue counts, 5-degree bins, log colour scale); α, β: ideal helix and strand.",
            figure,
        )
    )

    panels = [("CA-CA", designs.ca_ca, natural.ca_ca if natural else None, CA_CA_DISTANCE)]
    panels += [
        (bond, designs.bond_lengths[bond], natural.bond_lengths[bond] if natural else None, ideal)
        for bond, ideal in IDEAL_BOND_LENGTHS.items()
    ]
    figure, axes = new_figure(len(panels), columns=3, size=(3.2, 2.4))
    for ax, (name, values, reference, ideal) in zip(axes, panels):
        span = (ideal - 0.25, ideal + 0.25) if name != "CA-CA" else (ideal - 0.8, ideal + 0.8)
        values_histogram(ax, values, reference, names, "length (Å)", bins=50, value_range=span)
        ax.axvline(ideal, color="#c0392b", linewidth=0.8, linestyle="--")
        ax.set_title(f"{name} (ideal {ideal:.3f} Å)")
    figures.append(Figure("backbone_bonds", "CA-CA distances and bond lengths; dashed: Engh-Huber ideal.", figure))

    figure, (ax,) = new_figure()

    def composition(chain_set: ChainSet) -> dict[str, int]:
        pooled = "".join(chain_set.secondary)
        return {label: pooled.count(code) for code, label in (("H", "helix"), ("E", "strand"), ("-", "coil"))}

    bars(
        ax,
        composition(designs),
        composition(natural) if natural else None,
        names,
        order=["helix", "strand", "coil"],
        ylabel="fraction of residues",
    )
    figures.append(
        Figure("secondary_structure", "Secondary structure (DSSP, three states), pooled over residues.", figure)
    )

    figure, (ax,) = new_figure()
    if natural is not None:
        ax.scatter(natural.lengths, natural.rg, s=8, color=REFERENCE_COLOR, label=names[1])
    ax.scatter(designs.lengths, designs.rg, s=12, color=SAMPLE_COLOR, label=names[0])
    top = max(designs.lengths.max(), natural.lengths.max() if natural else 0)
    length = np.linspace(2, top, 200)
    ax.plot(length, RG_PREFACTOR * length**RG_EXPONENT, color="#c0392b", linewidth=1, label="2.2 L^0.38 (folded)")
    ax.set(xlabel="residues", ylabel="radius of gyration (Å, CA)")
    ax.legend()
    figures.append(Figure("radius_of_gyration", "Radius of gyration against length, with the natural scaling.", figure))

    shown = chains[:MAX_CONTACT_MAPS]
    figure, axes = new_figure(len(shown), columns=3, size=(2.6, 2.6))
    for ax, chain in zip(axes, shown):
        ca = chain.coords[:, 1]
        contacts = np.linalg.norm(ca[:, None] - ca[None], axis=-1) < CONTACT_DISTANCE
        ax.imshow(contacts, cmap="Greys", interpolation="nearest", origin="upper")
        ax.set_title(chain.name, fontsize=8)
        ax.set(xlabel="residue", ylabel="residue")
    figures.append(
        Figure("contact_maps", f"CA contact maps (CA-CA < {CONTACT_DISTANCE:.0f} Å) of the first designs.", figure)
    )
    return figures
