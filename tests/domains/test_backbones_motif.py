"""`molgen sample --motif` end to end on a tiny backbone model, placement, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from molgen.cli import main
from molgen.proteins.geometry import ideal_helix
from molgen.proteins.motif import motif_starts, read_motif
from molgen.proteins.pdb import read_backbones, write_backbone_pdb
from tests.helpers import save_tiny_checkpoint


@pytest.fixture
def motif_pdb(tmp_path):
    path = tmp_path / "motif.pdb"
    write_backbone_pdb(path, ideal_helix(20) + np.array([5.0, -2.0, 7.0]))  # residues A1-A20
    return path


def sample(tmp_path, *args):
    ckpt = save_tiny_checkpoint(tmp_path / "bb.ckpt", domain="backbones")
    out = str(tmp_path / "d")
    return main(["sample", "--ckpt", str(ckpt), "--steps", "4", "--no-progress", "--yes", "--out", out, *args])


def test_motif_is_kept_in_place_and_marked(tmp_path, motif_pdb, capsys):
    args = ["--motif", str(motif_pdb), "--motif-residues", "A3-8,A12-15", "--length", "24", "--num-samples", "2"]
    assert sample(tmp_path, *args, "--resample", "2") == 0
    motif = read_motif(motif_pdb, "A3-8,A12-15")
    for path in sorted((tmp_path / "d").glob("*.pdb")):
        chain = read_backbones(path)[0][0]
        marked = np.array([float(line[60:66]) for line in path.read_text().splitlines() if line[12:16] == " CA "])
        starts = motif_starts(motif, 24)
        assert starts == [5, 16]  # 14 free residues spread over 3 gaps: 5, 5, 4
        expected = np.zeros(24)
        for start, segment in zip(starts, motif.segments):
            expected[start : start + len(segment)] = 1.0
            assert np.abs(chain.coords[start : start + len(segment)] - segment).max() < 2e-3  # PDB's 3 decimals
        assert np.array_equal(marked, expected)
    assert "motif_rmsd_max" in capsys.readouterr().out


def test_given_motif_positions_are_used(tmp_path, motif_pdb):
    args = ["--motif", str(motif_pdb), "--motif-residues", "A1-4", "--motif-positions", "10", "--length", "16"]
    assert sample(tmp_path, *args, "--num-samples", "1") == 0
    chain = read_backbones(tmp_path / "d" / "backbone_0000.pdb")[0][0]
    assert np.abs(chain.coords[9:13] - read_motif(motif_pdb, "A1-4").segments[0]).max() < 2e-3


@pytest.mark.parametrize(
    "args, message",
    [
        (["--motif-residues", "A3-8"], "--motif-residues and --motif-positions apply only with --motif"),
        (["--motif", "MOTIF"], "--motif needs --motif-residues"),
        (["--motif", "MOTIF", "--motif-residues", "A18-25"], "motif residues missing from"),
        (["--motif", "MOTIF", "--motif-residues", "B1-4"], "has no chain B"),
        (["--motif", "MOTIF", "--motif-residues", "A1-4;A6-8"], "motif residues must be like A12-26,A40-48"),
        (["--motif", "MOTIF", "--motif-residues", "A1-10", "--length", "8"], "cannot hold the motif's 10"),
        (["--motif", "MOTIF", "--motif-residues", "A1-4,A6-9", "--motif-positions", "3,5"], "overlap"),
        (["--motif", "MOTIF", "--motif-residues", "A1-4", "--motif-positions", "1,9"], "2 starts for 1 motif"),
    ],
)
def test_bad_motifs_are_one_line(tmp_path, motif_pdb, capsys, args, message):
    args = [str(motif_pdb) if a == "MOTIF" else a for a in args]
    if "--length" not in args:
        args += ["--length", "12"]
    assert sample(tmp_path, *args, "--num-samples", "1") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").iterdir())


def test_motifs_are_for_backbone_models(tmp_path, motif_pdb, capsys):
    ckpt = save_tiny_checkpoint(tmp_path / "mol.ckpt")
    args = ["sample", "--ckpt", str(ckpt), "--motif", str(motif_pdb), "--motif-residues", "A1-4"]
    assert main([*args, "--out", str(tmp_path / "s.sdf")]) == 1
    assert "--motif is for backbone checkpoints" in capsys.readouterr().err
