"""The docking panels of the molecule report: scores against a baseline, and the best poses inside their pocket.

Docking scores alone say little: a generated set is judged against a baseline docked the
same way (e.g. MOSES molecules through the same ``molgen dock`` run), and a good score is
believed once the pose is seen in the pocket. A docked SDF (``molgen dock``'s output, or
any SDF whose records carry a score tag of :data:`SCORE_TAGS`) therefore gets two sections:

- **Docked poses**: the best poses of the ``best_poses`` best-scoring molecules in one 3D viewer
  (:mod:`molgen.report.viewer`; one, since browsers keep about 16 WebGL contexts), inside the
  receptor when ``--receptor`` is given: the receptor as a cartoon, its residues near the pose
  as sticks, the pose as sticks without its hydrogens on carbon; and their figures as a table.
- **Docking**: the score histogram (kcal/mol) of the samples against the baseline's
  (``--baseline``), medians marked; ligand efficiency, QED and SA against the score; and a
  table of the figures `molgen dock` prints (:func:`molgen.docking.summary.distribution`:
  mean, median, mean of the best 10 %, best), the samples' row beside the baseline's.

Each molecule counts once, by its best pose: ``molgen dock --num-poses k`` writes k poses of a
molecule, all tagged with its ``source_index``; a record without that tag is a molecule of its
own. Ligand efficiency, QED and SA come from the SD tags ``molgen dock`` writes
(:mod:`molgen.docking.results`) and are computed with RDKit where a record lacks them.

The receptor goes into the page as PDB text: its first model without waters and hydrogens,
and, for receptors of more than :data:`MAX_RECEPTOR_ATOMS` heavy atoms, only the residues
within :data:`CROP_DISTANCE` of a shown pose, so that a large receptor does not swell the page
(a 5,000-residue receptor is ~3 MB of PDB text, the 12 Å pocket of one pose ~0.05 MB).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from Bio.PDB import PDBIO, NeighborSearch, Select
from rdkit import Chem, rdBase

from molgen.docking.properties import ligand_efficiency, molecule_properties
from molgen.docking.summary import distribution
from molgen.molecules.record import MoleculeRecord
from molgen.report.html import Figure, Section, escape, table
from molgen.report.plots import REFERENCE_COLOR, SAMPLE_COLOR, new_figure, values_histogram
from molgen.report.viewer import POCKET_DISTANCE, ViewItem, molblock, viewer_box

__all__ = [
    "CROP_DISTANCE",
    "DEFAULT_BEST_POSES",
    "MAX_RECEPTOR_ATOMS",
    "SCORE_TAGS",
    "DockedSet",
    "DockingReport",
    "QUANTITIES",
    "Receptor",
    "docked_set",
    "docking_report",
    "read_receptor",
    "tag_value",
]

#: SD tags of a docking score (kcal/mol, lower binds better): Vina's as ``molgen dock`` writes it, smina's, others.
SCORE_TAGS = ("vina_score", "minimizedAffinity", "docking_score")
DEFAULT_BEST_POSES = 5
#: Receptors with more heavy atoms than this are cropped to the residues within CROP_DISTANCE (Å) of a shown pose.
MAX_RECEPTOR_ATOMS = 2500
CROP_DISTANCE = 12.0


class Quantity(NamedTuple):
    """A per-molecule figure: its name in the table, on plot axes and column heads, and how it reads."""

    label: str
    short: str
    lower_is_better: bool
    number: str


#: The per-molecule figures. The score is in kcal/mol, ligand efficiency (LE) -score / heavy atoms.
QUANTITIES = {
    "score": Quantity("docking score (kcal/mol)", "score (kcal/mol)", True, "{:.2f}"),
    "ligand_efficiency": Quantity("ligand efficiency (kcal/mol per heavy atom)", "LE (kcal/mol/atom)", False, "{:.3f}"),
    "qed": Quantity("QED (0-1, drug-like)", "QED", False, "{:.2f}"),
    "sa": Quantity("SA score (1 easy .. 10 hard)", "SA score", True, "{:.2f}"),
}
#: Rows of the summary table: key of :func:`molgen.docking.summary.distribution` -> label.
STATISTICS = {"mean": "mean", "median": "median", "best_10pct": "mean of the best 10 %", "best": "best"}
#: Bins of the score histogram: twice the square root of the molecules drawn, within these bounds.
SCORE_BINS = (10, 40)
#: Median lines of the score histogram: samples, baseline (darker than the baseline's grey fill).
MEDIAN_COLORS = (SAMPLE_COLOR, "#4d5560")


def tag_value(record: MoleculeRecord, *names: str) -> float | None:
    """The number in the record's first SD tag named one of ``names`` (case-insensitive), or None when it has
    none or it is not a number."""
    wanted = {name.lower() for name in names}
    for key, value in record.properties.items():
        if key.lower() in wanted:
            try:
                return float(value)
            except ValueError:
                return None
    return None


# ----- the docked molecules -----------------------------------------------------------------------
@dataclass
class DockedSet:
    """The molecules of a docked SDF, each by its best pose, best score first.

    Attributes:
        name: as shown in legends and the table.
        records: [m] each molecule's best pose.
        values: key of :data:`QUANTITIES` -> float64 [m] aligned with ``records``; NaN where unknown
            (QED and SA of a molecule RDKit cannot sanitize).
        num_poses: scored records read (all poses of all molecules).
    """

    name: str
    records: list[MoleculeRecord]
    values: dict[str, np.ndarray]
    num_poses: int

    def finite(self, key: str) -> np.ndarray:
        """The known values of ``key``."""
        values = self.values[key]
        return values[np.isfinite(values)]


def _computed(record: MoleculeRecord) -> dict[str, float]:
    """QED and SA of the record's molecule (RDKit), NaN when it has none or it does not sanitize."""
    unknown = {"qed": float("nan"), "sa": float("nan")}
    if record.mol is None:
        return unknown
    mol = Chem.Mol(record.mol)
    with rdBase.BlockLogs():
        try:
            Chem.SanitizeMol(mol)
            properties = molecule_properties(mol)
        except (ValueError, RuntimeError):
            return unknown
    return {"qed": float(properties["qed"]), "sa": float(properties["sa"])}


def _values(record: MoleculeRecord, score: float) -> dict[str, float]:
    """The record's :data:`QUANTITIES`: from its SD tags (molgen dock's names) or computed."""
    efficiency = tag_value(record, "ligand_efficiency")
    if efficiency is None:
        efficiency = ligand_efficiency(score, int(np.count_nonzero(record.atomic_numbers > 1)))
    qed, sa = tag_value(record, "qed"), tag_value(record, "sa_score", "sa")
    if qed is None or sa is None:
        computed = _computed(record)
        qed = computed["qed"] if qed is None else qed
        sa = computed["sa"] if sa is None else sa
    return {"score": score, "ligand_efficiency": efficiency, "qed": qed, "sa": sa}


def docked_set(records: list[MoleculeRecord], name: str) -> DockedSet | None:
    """The molecules of ``records`` by their best pose (module docstring), or None when no record carries a
    score tag (:data:`SCORE_TAGS`)."""
    best: dict[str, tuple[float, MoleculeRecord]] = {}
    num_poses = 0
    for position, record in enumerate(records):
        score = tag_value(record, *SCORE_TAGS)
        if score is None:
            continue
        num_poses += 1
        key = record.properties.get("source_index", f"record {position}")
        if key not in best or score < best[key][0]:
            best[key] = (score, record)
    if not best:
        return None
    ranked = sorted(best.values(), key=lambda pair: pair[0])
    rows = [_values(record, score) for score, record in ranked]
    values = {key: np.array([row[key] for row in rows], dtype=np.float64) for key in QUANTITIES}
    return DockedSet(name, [record for _, record in ranked], values, num_poses)


def _read_baseline(path: str | Path) -> DockedSet:
    """The docked baseline SDF ``path``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: no readable record, or none with a docking score.
    """
    from molgen.molecules.sdf import read_records

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"baseline SDF not found: {path}")
    records, _ = read_records(path)
    baseline = docked_set(records, path.name)
    if baseline is None:
        raise ValueError(
            f"baseline {path} has no docking scores (no record has an SD tag {', '.join(SCORE_TAGS)}): "
            "dock it first, e.g. molgen dock baseline.sdf --receptor receptor.pdb --ref-ligand ligand.sdf"
        )
    return baseline


# ----- the receptor -------------------------------------------------------------------------------
@dataclass
class Receptor:
    """The receptor as the page carries it.

    Attributes:
        name: its file name.
        pdb: PDB text: the first model's residues shown, without waters and hydrogens.
        residues_shown, residues_total: residues (waters excluded) in ``pdb`` and in the file.
    """

    name: str
    pdb: str
    residues_shown: int
    residues_total: int

    @property
    def cropped(self) -> bool:
        return self.residues_shown < self.residues_total


def _residue_key(residue) -> tuple:
    """A residue's identity within its model: chain id, (hetero flag, number, insertion code)."""
    return residue.get_parent().id, residue.id


class _Shown(Select):
    """PDBIO's filter: the residues of ``kept`` (:func:`_residue_key`), their heavy atoms."""

    def __init__(self, kept: set[tuple]):
        self.kept = kept

    def accept_residue(self, residue) -> bool:
        return _residue_key(residue) in self.kept

    def accept_atom(self, atom) -> bool:
        return atom.element != "H"


def read_receptor(
    path: str | Path, poses: list[np.ndarray], max_atoms: int = MAX_RECEPTOR_ATOMS, crop: float = CROP_DISTANCE
) -> Receptor:
    """The receptor in ``path`` (PDB or mmCIF) around the ``poses`` ([n, 3] coordinates each, Å).

    Args:
        max_atoms: a receptor of more heavy atoms keeps only the residues within ``crop`` Å of a pose atom.

    Raises:
        ValueError: a missing, unreadable or empty file, or no receptor atom within ``crop`` Å of any pose
            (the poses were docked into another receptor).
    """
    from molgen.proteins.pdb import StructureError, read_model

    path = Path(path)
    try:
        model, _ = read_model(path)
    except StructureError as err:
        raise ValueError(f"receptor {err}") from None
    residues = [residue for residue in model.get_residues() if residue.id[0] != "W"]
    atoms = [atom for residue in residues for atom in residue if atom.element != "H"]
    if not atoms:
        raise ValueError(f"receptor {path}: no atoms but waters and hydrogens")
    search = NeighborSearch(atoms)
    near = {_residue_key(atom.get_parent()) for xyz in np.concatenate(poses) for atom in search.search(xyz, crop)}
    if not near:
        raise ValueError(
            f"receptor {path}: no atom within {crop:g} A of the poses shown; were they docked into this receptor?"
        )
    kept = near if len(atoms) > max_atoms else {_residue_key(residue) for residue in residues}
    writer = PDBIO()
    writer.set_structure(model)
    text = io.StringIO()
    writer.save(text, _Shown(kept))
    return Receptor(path.name, text.getvalue(), len(kept), len(residues))


# ----- the sections -------------------------------------------------------------------------------
def _pose_block(mol: Chem.Mol) -> str | None:
    """The viewer's text of a pose without its hydrogens on carbon (the polar ones make the hydrogen bonds)."""
    editable = Chem.RWMol(mol)
    carbon_hydrogens = [
        atom.GetIdx()
        for atom in editable.GetAtoms()
        if atom.GetAtomicNum() == 1 and any(n.GetAtomicNum() == 6 for n in atom.GetNeighbors())
    ]
    for index in sorted(carbon_hydrogens, reverse=True):
        editable.RemoveAtom(index)
    return molblock(editable.GetMol())


@dataclass
class DockingReport:
    """What the docking sections show.

    Attributes:
        samples: the report's molecules.
        baseline: the baseline's (None: the samples alone).
        receptor: the receptor around the poses (None: the poses alone).
        best_poses: molecules in the 3D viewer, best first.
    """

    samples: DockedSet
    baseline: DockedSet | None = None
    receptor: Receptor | None = None
    best_poses: int = DEFAULT_BEST_POSES

    def sections(self) -> list[Section]:
        """The poses first (what a chemist looks at first), then the scores."""
        return [self._poses_section(), self._scores_section()]

    def _sets(self) -> list[DockedSet]:
        return [self.samples] + ([self.baseline] if self.baseline else [])

    def _scores_section(self) -> Section:
        notes = [
            f"{docked.name}: {len(docked.records):,} docked molecules ({docked.num_poses:,} poses; each molecule "
            "counts once, by its best pose)"
            for docked in self._sets()
        ]
        if self.baseline is None:
            notes.append("No baseline given: --baseline DOCKED.sdf compares with molecules docked the same way.")
        rows = []
        for key, quantity in QUANTITIES.items():
            rows.append([escape(quantity.label)])
            for docked in self._sets():
                figures = distribution(docked.finite(key).tolist(), quantity.lower_is_better)
                cells = [quantity.number.format(figures[s]) if figures["n"] else "" for s in STATISTICS]
                rows.append([escape(docked.name), *cells])
        body = "".join(f'<p class="note">{escape(n)}</p>' for n in notes)
        body += table(rows, ["", *STATISTICS.values()], numeric={1, 2, 3, 4})
        return Section("Docking", body, [self._score_figure(), self._property_figure()])

    def _score_figure(self) -> Figure:
        figure, (ax,) = new_figure()
        names = (self.samples.name, self.baseline.name if self.baseline else "")
        reference = self.baseline.values["score"] if self.baseline else None
        molecules = sum(len(docked.records) for docked in self._sets())
        bins = int(np.clip(2 * np.sqrt(molecules), *SCORE_BINS))
        values_histogram(ax, self.samples.values["score"], reference, names, QUANTITIES["score"].label, bins=bins)
        for docked, color in zip(self._sets(), MEDIAN_COLORS):
            median = float(np.median(docked.values["score"]))
            ax.axvline(median, color=color, linestyle="--", linewidth=1.2, label=f"median {median:.2f}")
        ax.legend()
        return Figure(
            "docking_scores",
            "Docking scores of each molecule's best pose (lower binds better), dashed: medians.",
            figure,
        )

    def _property_figure(self) -> Figure:
        keys = ("ligand_efficiency", "qed", "sa")
        figure, axes = new_figure(len(keys), columns=3, size=(3.2, 2.6))
        for ax, key in zip(axes, keys):
            if self.baseline is not None:
                baseline = self.baseline.values
                ax.scatter(baseline["score"], baseline[key], s=9, color=REFERENCE_COLOR, label=self.baseline.name)
            samples = self.samples.values
            ax.scatter(samples["score"], samples[key], s=14, color=SAMPLE_COLOR, label=self.samples.name)
            ax.set(xlabel=QUANTITIES["score"].short, ylabel=QUANTITIES[key].short)
        axes[0].legend()
        return Figure(
            "docking_properties",
            "Ligand efficiency, QED and SA score against the docking score, one point per molecule.",
            figure,
        )

    def _poses_section(self) -> Section:
        shown = [
            (rank, record, block)
            for rank, record in enumerate(self.samples.records[: self.best_poses], start=1)
            if record.mol is not None and (block := _pose_block(record.mol)) is not None
        ]
        values = self.samples.values
        items = [
            ViewItem(f"{rank}. {values['score'][rank - 1]:.2f} kcal/mol  {record.name}", block, "sdf", "pose")
            for rank, record, block in shown
        ]
        rows = [
            [str(rank), escape(record.name)]
            + [quantity.number.format(values[key][rank - 1]) for key, quantity in QUANTITIES.items()]
            for rank, record, _ in shown
        ]
        header = ["rank", "molecule", *(escape(quantity.short) for quantity in QUANTITIES.values())]
        listing = table(rows, header, numeric={0, 2, 3, 4, 5})
        if self.receptor is None:
            note = (
                "The poses alone: no receptor given (--receptor receptor.pdb shows them inside the pocket). "
                "Hydrogens on carbon hidden; drag to rotate."
            )
            return Section("Docked poses", viewer_box("pocket-viewer", items, note) + listing)
        receptor = self.receptor
        extent = (
            f"its {receptor.residues_shown:,} residues within {CROP_DISTANCE:g} Å of the poses shown (of "
            f"{receptor.residues_total:,}, to keep the page small)"
            if receptor.cropped
            else f"all {receptor.residues_total:,} residues"
        )
        note = (
            f"Receptor {receptor.name}: {extent}, as a cartoon, without waters and hydrogens; sticks: its residues "
            f"within {POCKET_DISTANCE:g} Å of the pose. The pose in green, hydrogens on carbon hidden. Drag to rotate, "
            "scroll to zoom."
        )
        return Section("Docked poses", viewer_box("pocket-viewer", items, note, receptor.pdb) + listing)


def docking_report(
    records: list[MoleculeRecord],
    receptor: str | Path | None = None,
    baseline: str | Path | None = None,
    best_poses: int = DEFAULT_BEST_POSES,
) -> DockingReport | None:
    """The docking sections' content for the report's ``records``, with every input read and checked.

    Returns:
        None when no record carries a docking score and neither ``receptor`` nor ``baseline`` is given.

    Raises:
        FileNotFoundError, ValueError: ``receptor`` or ``baseline`` given for records without docking scores;
            a missing or unreadable receptor or baseline, a baseline without docking scores, a receptor
            nowhere near the poses.
    """
    samples = docked_set(records, "samples")
    if samples is None:
        if receptor is None and baseline is None:
            return None
        raise ValueError(
            f"--receptor and --baseline need docked molecules: no record has an SD tag {', '.join(SCORE_TAGS)} "
            "(dock them with molgen dock first)"
        )
    report = DockingReport(samples, best_poses=best_poses)
    if baseline is not None:
        report.baseline = _read_baseline(baseline)
    if receptor is not None:
        report.receptor = read_receptor(receptor, [record.positions for record in samples.records[:best_poses]])
    return report
