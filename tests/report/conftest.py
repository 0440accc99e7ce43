"""Tiny report inputs made in code: an SDF with one unreadable record, a folder of PDB files, a CSV log."""

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
