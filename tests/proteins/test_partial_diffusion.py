"""scripts/partial_diffusion.py's restore: real chains noised to a time and denoised come back as
backbones of the same lengths, the closer the smaller the time."""

import numpy as np
import pytest
import torch

from molgen.checkpoint import load_checkpoint
from molgen.proteins.geometry import ideal_helix, ideal_strand
from tests.helpers import load_script, save_tiny_ca_checkpoint, save_tiny_internal_checkpoint


def _distance_rmsd(a: np.ndarray, b: np.ndarray) -> float:
    """RMS difference (Å) of two CA traces' pairwise distances: no superposition needed (an internal-coordinate
    model rebuilds its chains in a frame of its own)."""
    return float(
        np.sqrt(np.mean((np.linalg.norm(a[:, None] - a, axis=-1) - np.linalg.norm(b[:, None] - b, axis=-1)) ** 2))
    )


@pytest.fixture(scope="module")
def script():
    return load_script("partial_diffusion")


@pytest.mark.parametrize("saver", [save_tiny_ca_checkpoint, save_tiny_internal_checkpoint], ids=["ca", "internal"])
def test_restored_chains_keep_their_lengths_and_stay_close_at_small_times(script, tmp_path, saver):
    """CA models are noised in space, internal-coordinate models in their angles; both come back close from a
    small time and far from a large one, and so do the noised chains decoded as they are."""
    model = load_checkpoint(saver(tmp_path / "model.ckpt"))
    chains = [ideal_helix(12), ideal_strand(9)]
    errors, noised_errors = {}, {}
    for t in (0.01, 0.6):
        generator = torch.Generator().manual_seed(0)
        state = script.noised(model, chains, t, generator)
        for found, backbones in (
            (errors, script.restore(model, state, t, steps=10, generator=generator)),
            (noised_errors, script.as_noised(model, state, t)),
        ):
            assert [b.shape for b in backbones] == [c.shape for c in chains]
            found[t] = max(_distance_rmsd(b[:, 1], c[:, 1]) for b, c in zip(backbones, chains))
    assert errors[0.01] < 0.5 < errors[0.6]  # an untrained network: what it returns is what the noise left
    assert noised_errors[0.01] < 0.5 < noised_errors[0.6]


def test_atom_level_checkpoints_are_refused(script, tmp_path):
    from tests.helpers import save_tiny_checkpoint

    model = load_checkpoint(save_tiny_checkpoint(tmp_path / "atoms.ckpt", domain="backbones"))
    with pytest.raises(SystemExit, match="CA-trace"):
        script.noised(model, [ideal_helix(12)], 0.1, generator=torch.Generator())


def test_main_restores_the_chains_of_a_folder_and_writes_them(script, tmp_path, monkeypatch, capsys):
    """``--chains DIR --out DIR``: a cascade's command line, another model's backbones finished by this one."""
    from molgen.proteins.pdb import read_backbones, write_backbone_pdb

    ckpt = save_tiny_ca_checkpoint(tmp_path / "model.ckpt")
    given = tmp_path / "given"
    given.mkdir()
    write_backbone_pdb(given / "a.pdb", ideal_helix(12))
    write_backbone_pdb(given / "b.pdb", ideal_strand(9))
    write_backbone_pdb(given / "c.pdb", ideal_helix(30))  # outside --lengths: not taken
    out = tmp_path / "out"
    args = ["--ckpt", str(ckpt), "--chains", str(given), "--lengths", "5-20", "--times", "0.05", "--steps", "5"]
    monkeypatch.setattr("sys.argv", ["partial_diffusion.py", *args, "--out", str(out)])
    script.main()
    assert "2 chains of given, 21 residues" in capsys.readouterr().out
    written = sorted((out / "t0.05").iterdir())
    assert [p.name for p in written] == ["restored_0000.pdb", "restored_0001.pdb"]
    assert [len(read_backbones(p)[0][0].coords) for p in written] == [12, 9]
    monkeypatch.setattr("sys.argv", ["partial_diffusion.py", *args[:4], "--lengths", "40-50"])
    with pytest.raises(SystemExit, match="no chains of 40-50 residues in"):
        script.main()
