"""Tiny report inputs made in code: an SDF with one unreadable record, a folder of PDB files, a CSV log, and a
docking result: a peptide receptor (as tests/docking builds it) with poses placed on it, tagged as `molgen dock`
tags them, and a docked baseline."""

from __future__ import annotations

import csv
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from molgen.molecules.sdf import write_sdf
from molgen.proteins.geometry import ideal_helix, ideal_strand
from molgen.proteins.pdb import write_backbone_pdb

SMILES = ("CCO", "c1ccccc1O", "CC(=O)N", "C1CC1C#N", "OCC(O)CO")
BROKEN_RECORD = "broken\n  not a molfile\n\nnonsense\nM  END\n"
#: The test receptor: a 9-residue peptide, embedded extended (~24 A), with hydrogens and one water.
PEPTIDE = "GSAWYDKLG"
#: Docked samples (SMILES, Vina score in kcal/mol); the first is docked twice (two poses, ranks 1 and 2).
DOCKED = (("c1ccc2[nH]ccc2c1", -6.1), ("CC(=O)Nc1ccc(O)cc1", -5.4), ("OC(=O)c1ccccc1O", -4.9), ("CCOC(C)=O", -3.2))
#: Baseline molecules: only a score tag, as another docking program writes it.
BASELINE = (("c1ccncc1", -3.9), ("CC(C)Cc1ccc(cc1)C(C)C(=O)O", -5.0), ("NCCc1ccc(O)c(O)c1", -4.4))


def embedded(smiles: str, seed: int = 1) -> Chem.Mol:
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=seed)
    return mol


@pytest.fixture(scope="session")
def molecules_sdf(tmp_path_factory) -> Path:
    """Six records: five molecules and, third, an unparsable record."""
    path = tmp_path_factory.mktemp("molecules") / "samples.sdf"
    write_sdf(path, [(embedded(s), f"mol{i}", {"qed": "0.5"} if i == 0 else {}) for i, s in enumerate(SMILES)])
    blocks = path.read_text().split("$$$$\n")
    blocks.insert(2, BROKEN_RECORD)
    path.write_text("$$$$\n".join(blocks))
    return path


@pytest.fixture(scope="session")
def reference_sdf(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("reference") / "reference.sdf"
    write_sdf(path, [(embedded(s, seed=7), f"ref{i}") for i, s in enumerate(("CCN", "c1ccncc1", "CC(C)=O"))])
    return path


@pytest.fixture(scope="session")
def peptide() -> Chem.Mol:
    """The receptor peptide, hydrogens included, with PDB residue information."""
    mol = Chem.AddHs(Chem.MolFromSequence(PEPTIDE), addResidueInfo=True)
    assert AllChem.EmbedMolecule(mol, randomSeed=7) == 0
    return mol


@pytest.fixture(scope="session")
def receptor_pdb(peptide, tmp_path_factory) -> Path:
    """The peptide as PDB, and a water molecule (HETATM HOH), as deposited files have them."""
    path = tmp_path_factory.mktemp("receptor") / "peptide.pdb"
    water = "HETATM  500  O   HOH W   1      30.000  30.000  30.000  1.00  0.00           O\n"
    path.write_text(Chem.MolToPDBBlock(peptide).replace("END\n", water + "END\n"))
    return path


def pose(smiles: str, center: np.ndarray, seed: int = 1) -> Chem.Mol:
    """A 3D molecule with hydrogens, its centroid at ``center`` (Å)."""
    mol = embedded(smiles, seed)
    conf = mol.GetConformer()
    shifted = conf.GetPositions() - conf.GetPositions().mean(axis=0) + center
    for i, xyz in enumerate(shifted):
        conf.SetAtomPosition(i, xyz.tolist())
    return mol


def pocket_center(peptide: Chem.Mol) -> np.ndarray:
    """3 Å beside the tryptophan's centroid (Å)."""
    rows = [a.GetIdx() for a in peptide.GetAtoms() if a.GetPDBResidueInfo().GetResidueName() == "TRP"]
    return peptide.GetConformer().GetPositions()[rows].mean(axis=0) + np.array([0.0, 0.0, 3.0])


@pytest.fixture(scope="session")
def docked_sdf(peptide, tmp_path_factory) -> Path:
    """:data:`DOCKED` as `molgen dock` writes it: a record per pose with the docking SD tags
    (molgen.docking.results), placed on the peptide."""
    from rdkit.Chem import QED

    center = pocket_center(peptide)
    records = []
    for index, (smiles, score) in enumerate(DOCKED):
        for rank in (1, 2) if index == 0 else (1,):
            mol = pose(smiles, center, seed=rank)
            heavy = mol.GetNumHeavyAtoms()
            tags = {
                "vina_score": f"{score + rank - 1:.3f}",
                "vina_rank": rank,
                "source_index": index,
                "source_title": f"sample{index}",
                "ligand_efficiency": f"{-(score + rank - 1) / heavy:.3f}",
                "qed": f"{QED.qed(Chem.RemoveHs(mol)):.3f}",
                "sa_score": "2.50",
                "heavy_atoms": heavy,
            }
            records.append((mol, f"sample{index}", tags))
    path = tmp_path_factory.mktemp("docked") / "docked.sdf"
    write_sdf(path, records)
    return path


@pytest.fixture(scope="session")
def baseline_sdf(peptide, tmp_path_factory) -> Path:
    """:data:`BASELINE` with a score tag only (``minimizedAffinity``, as smina writes it)."""
    center = pocket_center(peptide)
    path = tmp_path_factory.mktemp("baseline") / "baseline.sdf"
    write_sdf(
        path, [(pose(s, center), f"base{i}", {"minimizedAffinity": score}) for i, (s, score) in enumerate(BASELINE)]
    )
    return path


@pytest.fixture(scope="session")
def designs(tmp_path_factory) -> Path:
    """Two backbones (helix, strand) and one unreadable file."""
    folder = tmp_path_factory.mktemp("designs")
    write_backbone_pdb(folder / "backbone_0000.pdb", ideal_helix(14))
    write_backbone_pdb(folder / "backbone_0001.pdb", ideal_strand(10))
    (folder / "backbone_0002.pdb").write_text("this is not a PDB file\n")
    return folder


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    """A run directory with a CSV log as `molgen train` writes it (Lightning's CSVLogger)."""
    run = tmp_path_factory.mktemp("run")
    (run / "logs").mkdir()
    columns = ["epoch", "lr-AdamW", "step", "train/loss", "train/loss_positions", "train/loss_bond"]
    columns += ["train/samples", "train/time", "val/loss", "val/loss_positions", "val/loss_bond"]
    with open(run / "logs" / "metrics.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        for step in range(4, 100, 5):
            loss = 3.0 * np.exp(-step / 50)
            writer.writerow({"step": step, "lr-AdamW": 1e-4})
            writer.writerow({"step": step, "epoch": 0, "train/samples": 32 * (step + 1), "train/time": 0.05 * step})
            writer.writerow({"step": step, "epoch": 0, "train/loss": loss, "train/loss_positions": loss / 2,
                             "train/loss_bond": loss / 2})  # fmt: skip
            if step % 20 == 19:
                writer.writerow({"step": step, "epoch": 0, "val/loss": loss * 1.1, "val/loss_positions": loss / 2,
                                 "val/loss_bond": loss * 0.6})  # fmt: skip
    (run / ".hydra").mkdir()
    (run / ".hydra" / "overrides.yaml").write_text("- experiment=qm9_bonds\n")
    return run


class Elements(HTMLParser):
    """Every start tag of a page as ``(tag, attributes, classes of the enclosing elements)``."""

    def __init__(self, text: str):
        super().__init__()
        self.elements: list[tuple[str, dict, list[str]]] = []
        self._stack: list[tuple[str, str]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.elements.append((tag, attributes, [c for _, c in self._stack]))
        if tag not in ("img", "meta", "link", "br", "input"):
            self._stack.append((tag, attributes.get("class") or ""))

    def handle_endtag(self, tag):
        while self._stack:
            if self._stack.pop()[0] == tag:
                break

    def inside(self, tag: str, css_class: str) -> list[dict]:
        """Attributes of the ``tag`` elements inside an element of class ``css_class``."""
        return [a for t, a, classes in self.elements if t == tag and any(css_class in c.split() for c in classes)]

    def with_class(self, css_class: str) -> list[dict]:
        return [a for _, a, _ in self.elements if css_class in (a.get("class") or "").split()]
