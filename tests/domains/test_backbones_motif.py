"""`molgen sample --motif` end to end on a tiny backbone model, placement, and bad input."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from molgen.checkpoint import load_checkpoint
from molgen.cli import main
from molgen.proteins.geometry import ideal_helix
from molgen.proteins.motif import Motif, minimum_gaps, place_motif, read_motif
from molgen.proteins.pdb import read_backbones, write_backbone_pdb
from molgen.sampling import SamplingConfig, generate
from tests.helpers import save_tiny_ca_checkpoint, save_tiny_checkpoint


@pytest.fixture
def motif_pdb(tmp_path):
    path = tmp_path / "motif.pdb"
    write_backbone_pdb(path, ideal_helix(20) + np.array([5.0, -2.0, 7.0]))  # residues A1-A20
    return path


def sample(tmp_path, *args):
    ckpt = save_tiny_checkpoint(tmp_path / "bb.ckpt", domain="backbones")
    out = str(tmp_path / "d")
    return main(["sample", "--ckpt", str(ckpt), "--steps", "4", "--no-progress", "--yes", "--out", out, *args])


def _placement_remark(path):
    """0-based segment starts from the PDB's ``REMARK  99 motif A3-8 at 6-11, ...`` line."""
    remark = next(line for line in path.read_text().splitlines() if line.startswith("REMARK  99 motif "))
    return [int(part.split(" at ")[1].split("-")[0]) - 1 for part in remark[len("REMARK  99 motif ") :].split(", ")]


def test_motif_is_kept_in_place_and_marked(tmp_path, motif_pdb, capsys):
    args = ["--motif", str(motif_pdb), "--motif-residues", "A3-8,A12-15", "--length", "24", "--num-samples", "6"]
    assert sample(tmp_path, *args, "--resample", "2", "--batch-size", "4") == 0
    motif = read_motif(motif_pdb, "A3-8,A12-15")
    placements = []
    for path in sorted((tmp_path / "d").glob("*.pdb")):
        chain = read_backbones(path)[0][0]
        marked = np.array([float(line[60:66]) for line in path.read_text().splitlines() if line[12:16] == " CA "])
        starts = _placement_remark(path)
        assert starts[1] - (starts[0] + 6) >= minimum_gaps(motif)[0] == 1  # CA8-CA12 of a helix: 6.2 A
        expected = np.zeros(24)
        for start, segment in zip(starts, motif.segments):
            expected[start : start + len(segment)] = 1.0
            assert np.abs(chain.coords[start : start + len(segment)] - segment).max() < 2e-3  # PDB's 3 decimals
        assert np.array_equal(marked, expected)
        placements.append(tuple(starts))
    assert len(set(placements)) > 1  # drawn per chain, not one place for all
    assert place_motif(motif, [24] * 6, seed=0).starts == tuple(placements)  # the seed fixes them
    assert "motif_rmsd_max" in capsys.readouterr().out


def test_placements_are_uniform_over_the_feasible_ones():
    """Every order-keeping placement with room to join the segments is drawn, equally often."""
    helix = ideal_helix(20)
    motif = Motif((helix[2:8], helix[11:15]), ("A3-8", "A12-15"))  # CA8-CA12 6.2 A: at least 1 between
    placement = place_motif(motif, [14] * 6000, seed=3)
    counts = Counter(placement.starts)
    # 14 residues - 10 motif - 1 join = 3 spare over 3 gaps: C(5, 2) = 10 placements
    feasible = {(a, a + 6 + 1 + b) for a in range(4) for b in range(4 - a)}
    assert set(counts) == feasible
    expected = 6000 / len(feasible)
    chi2 = sum((n - expected) ** 2 / expected for n in counts.values())
    assert chi2 < 27.9  # chi-square, 9 degrees of freedom, p = 0.001
    assert place_motif(motif, [14] * 6000, seed=3) == placement
    assert place_motif(motif, [14] * 6000, seed=4) != placement
    assert placement.describe(0) == ", ".join(
        f"{label} at {s + 1}-{s + n}" for label, s, n in zip(motif.labels, placement.starts[0], (6, 4))
    )
    with pytest.raises(ValueError, match="cannot hold the motif's 10 and the 1 needed to join"):
        place_motif(motif, [10], seed=0)


def test_given_motif_positions_are_used(tmp_path, motif_pdb):
    args = ["--motif", str(motif_pdb), "--motif-residues", "A1-4", "--motif-positions", "10", "--length", "16"]
    assert sample(tmp_path, *args, "--num-samples", "1") == 0
    path = tmp_path / "d" / "backbone_0000.pdb"
    chain = read_backbones(path)[0][0]
    assert np.abs(chain.coords[9:13] - read_motif(motif_pdb, "A1-4").segments[0]).max() < 2e-3
    assert _placement_remark(path) == [9]


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
        (["--motif", "MOTIF", "--motif-residues", "A1-4,A12-15", "--motif-positions", "1,5"], "too few to span"),
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


def test_relaxation_holds_each_chain_at_its_own_placement(tmp_path, motif_pdb):
    """`--relax` restrains the residues where each chain's motif went, so the motif stays put there."""
    args = ["--motif", str(motif_pdb), "--motif-residues", "A3-8,A12-15", "--length", "22-26", "--num-samples", "3"]
    assert sample(tmp_path, *args, "--batch-size", "1", "--relax") == 0
    motif = np.concatenate(read_motif(motif_pdb, "A3-8,A12-15").segments)
    for path in sorted((tmp_path / "d").glob("*.pdb")):
        coords = read_backbones(path)[0][0].coords
        first, second = _placement_remark(path)
        kept = np.concatenate([coords[first : first + 6], coords[second : second + 4]])
        # held loosely (or at another chain's placement) the tiny model's motif drifts ~7 A
        assert np.sqrt(((kept - motif) ** 2).sum(-1).mean()) < 0.5


def test_python_api_places_a_motif_per_chain(tmp_path, motif_pdb):
    """`generate(fixed=Motif)` draws the placements from its seed; a placement made for other lengths
    is refused rather than applied to the wrong residues."""
    model = load_checkpoint(save_tiny_checkpoint(tmp_path / "bb.ckpt", domain="backbones"))
    motif = read_motif(motif_pdb, "A3-8")
    chains = generate(model, 4, SamplingConfig(steps=2), fixed=motif, length=(20, 20), seed=1, progress=False)
    placement = place_motif(motif, [20] * 4, seed=1)
    for chain, (start,) in zip(chains, placement.starts):
        assert np.abs(chain[start : start + 6] - motif.segments[0]).max() < 1e-6
    with pytest.raises(ValueError, match="placed in chains of \\[21, 21, 21, 21\\] residues"):
        generate(model, 4, SamplingConfig(steps=2), fixed=place_motif(motif, [21] * 4, 1), length=(20, 20))


def test_a_residue_level_model_keeps_the_motifs_own_atoms(tmp_path, motif_pdb):
    """A CA-trace model holds the motif's CA atoms while sampling and rebuilds N, C and O from the trace;
    the motif's residues get its own N, C and O back (the rebuild alone moves them)."""
    from molgen.proteins.ca_trace import backbone_from_ca

    model = load_checkpoint(save_tiny_ca_checkpoint(tmp_path / "ca.ckpt"))
    motif = read_motif(motif_pdb, "A3-8,A12-15")
    chains = generate(model, 3, SamplingConfig(steps=3), fixed=motif, length=(24, 24), seed=2, progress=False)
    placement = place_motif(motif, [24] * 3, seed=2)
    for index, chain in enumerate(chains):
        mask = placement.mask(index)
        np.testing.assert_array_equal(chain[mask], np.concatenate(motif.segments))
        rebuilt = backbone_from_ca(chain[:, 1])
        np.testing.assert_array_equal(chain[~mask], rebuilt[~mask])  # generated residues as rebuilt
        assert np.abs(rebuilt[mask] - chain[mask]).max() > 0.05  # what the restore undoes
