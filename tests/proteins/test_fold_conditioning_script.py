"""scripts/fold_conditioning.py: each held-out chain's DSSP string sampled with and without its labels."""

import json

import pytest

from molgen.proteins.geometry import ideal_helix, ideal_strand
from molgen.proteins.pdb import write_backbone_pdb
from tests.helpers import load_script, save_tiny_ca_checkpoint, save_tiny_internal_checkpoint


def test_rows_for_real_conditioned_and_hidden_labels_and_the_refusal(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MOLGEN_CACHE", str(tmp_path / "cache"))
    chains = tmp_path / "chains"
    chains.mkdir()
    for name, coords in (("1aaa", ideal_helix(44)), ("2bbb", ideal_strand(42)), ("3ccc", ideal_helix(60))):
        write_backbone_pdb(chains / f"{name}.pdb", coords)
    script = load_script("fold_conditioning")
    out = tmp_path / "rows.json"
    for saver in (save_tiny_ca_checkpoint, save_tiny_internal_checkpoint):  # labels in h, labels beside the angles
        ckpt = saver(tmp_path / f"{saver.__name__}.ckpt", secondary_structure=True)
        args = ["--ckpt", str(ckpt), "--data", str(chains), "--lengths", "40-50", "--num-chains", "2"]
        sampler = ["--sampler", "ddpm", "--steps", "3", "--json", str(out)]
        monkeypatch.setattr("sys.argv", ["fold_conditioning.py", *args, *sampler])
        script.main()
        assert "2 chains of chains, 86 residues" in capsys.readouterr().out
        rows = json.loads(out.read_text())["rows"]
        assert set(rows) == {"real chains", "fold-conditioned", "labels hidden"}
        assert rows["real chains"]["match"] == 1.0 and rows["real chains"]["helix"] > 0.4
        assert 0.0 <= rows["fold-conditioned"]["match"] <= 1.0 and rows["fold-conditioned"]["seconds"] > 0
    plain = save_tiny_internal_checkpoint(tmp_path / "plain.ckpt")
    monkeypatch.setattr("sys.argv", ["fold_conditioning.py", "--ckpt", str(plain), "--data", str(chains)])
    with pytest.raises(SystemExit, match="not fold-conditioned"):
        script.main()
