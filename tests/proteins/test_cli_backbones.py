"""`molgen sample` / `molgen evaluate` / `molgen train` on protein backbones, as a user runs them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from Bio.PDB import PDBParser

from molgen.cli import main
from molgen.proteins.geometry import ideal_helix, ideal_strand
from molgen.proteins.metrics import validate_backbone
from molgen.proteins.pdb import read_backbones, write_backbone_pdb
from tests.helpers import save_tiny_checkpoint
from tests.test_cli import molgen


@pytest.fixture
def backbone_ckpt(tmp_path):
    return save_tiny_checkpoint(tmp_path / "bb.ckpt", domain="backbones")


def _sample(ckpt, out, *extra):
    return main(["sample", "--ckpt", str(ckpt), "--out", str(out), "--steps", "4", "--no-progress", *extra])


def test_sample_writes_one_pdb_per_backbone(backbone_ckpt, tmp_path):
    out = tmp_path / "designs"
    assert _sample(backbone_ckpt, out, "--num-samples", "3", "--length", "7-9", "--batch-size", "2") == 0
    files = sorted(out.glob("*.pdb"))
    assert [f.name for f in files] == ["backbone_0000.pdb", "backbone_0001.pdb", "backbone_0002.pdb"]
    for path in files:
        lines = path.read_text().splitlines()
        atoms = [line for line in lines if line.startswith("ATOM")]
        length = len(atoms) // 4
        assert 7 <= length <= 9
        assert [line[12:16] for line in atoms[:4]] == [" N  ", " CA ", " C  ", " O  "]
        assert {line[17:20] for line in atoms} == {"GLY"} and {line[21] for line in atoms} == {"A"}
        assert [int(line[22:26]) for line in atoms[::4]] == list(range(1, length + 1))
        assert lines[-2].startswith("TER") and lines[-1] == "END"
        structure = PDBParser(QUIET=True).get_structure("x", str(path))
        assert len(list(structure.get_residues())) == length


def test_sample_feeds_a_self_conditioned_model_its_estimates(backbone_ckpt, tmp_path):
    """Same weights plus a non-zero estimate embedding: same seed, other backbones (the estimates are fed)."""

    def set_estimate_weights(module):
        with torch.no_grad():
            module.denoiser.estimate_embedding.weight.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(1))

    conditioned = save_tiny_checkpoint(
        tmp_path / "sc.ckpt", domain="backbones", edit=set_estimate_weights, self_conditioning=True
    )
    outputs = {}
    for name, ckpt in (("plain", backbone_ckpt), ("conditioned", conditioned)):
        assert _sample(ckpt, tmp_path / name, "--num-samples", "2", "--length", "8", "--refine-steps", "2") == 0
        outputs[name] = [read_backbones(tmp_path / name / f"backbone_000{i}.pdb")[0][0] for i in range(2)]
    for plain, fed in zip(outputs["plain"], outputs["conditioned"]):
        assert fed.length == 8 and np.isfinite(fed.coords).all()
        assert np.abs(fed.coords - plain.coords).max() > 1e-3


def test_sample_fixed_length_is_reproducible(backbone_ckpt, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert _sample(backbone_ckpt, out, "--num-samples", "2", "--length", "8", "--seed", "3") == 0
    for name in ("backbone_0000.pdb", "backbone_0001.pdb"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
        chains, _ = read_backbones(a / name)
        assert chains[0].length == 8


def test_sample_evaluate_prints_and_writes_backbone_report(backbone_ckpt, tmp_path, capsys):
    report = tmp_path / "report.json"
    args = ["--num-samples", "2", "--length", "10", "--evaluate", "--json", str(report)]
    assert _sample(backbone_ckpt, tmp_path / "d", *args) == 0
    assert "secondary" in capsys.readouterr().out.lower()
    section = json.loads(report.read_text())["backbone"]
    assert section["input"]["num_structures"] == 2


@pytest.mark.parametrize(
    "args,message",
    [
        (["--length", "9-3"], "length range"),
        (["--length", "x"], "length must be"),
        (["--num-atoms", "5"], "--num-atoms and --filter are for molecule checkpoints"),
    ],
)
def test_sample_backbone_argument_errors(backbone_ckpt, tmp_path, capsys, args, message):
    assert _sample(backbone_ckpt, tmp_path / "d", "--num-samples", "1", *args) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "d").exists()


def test_sample_backbone_out_must_be_a_folder(backbone_ckpt, tmp_path, capsys):
    out = tmp_path / "existing.pdb"
    out.write_text("keep me")
    assert _sample(backbone_ckpt, out, "--num-samples", "1", "--length", "5") == 1
    assert "must be a folder" in capsys.readouterr().err
    assert out.read_text() == "keep me"


def test_diverged_samples_are_reported_not_written(tmp_path, capsys, monkeypatch):
    import molgen.sampling as sampling

    ckpt = save_tiny_checkpoint(tmp_path / "bb.ckpt", domain="backbones")
    real = sampling.generate

    def diverging(*args, **kwargs):
        backbones = real(*args, **kwargs)
        backbones[1] = backbones[1] * 1e6
        return backbones

    monkeypatch.setattr(sampling, "generate", diverging)
    out = tmp_path / "d"
    assert _sample(ckpt, out, "--num-samples", "3", "--length", "6") == 0
    assert sorted(f.name for f in out.iterdir()) == ["backbone_0000.pdb", "backbone_0002.pdb"]
    assert "1 backbones not written: 1 (coordinates must lie" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--length", "10"], "--length is for backbone checkpoints"),
        (["--relax-restraint", "0.5"], "--relax-restraint applies only with --relax"),
        (["--relax", "--relax-restraint", "-1"], "--relax-restraint must be a positive number"),
    ],
)
def test_molecule_checkpoints_refuse_backbone_options_and_bad_restraints(tmp_path, capsys, option, message):
    ckpt = save_tiny_checkpoint(tmp_path / "mol.ckpt")
    assert _sample(ckpt, tmp_path / "s.sdf", "--num-samples", "1", *option) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "s.sdf").exists()


def _noisy_helices(monkeypatch, nan_index: int | None = None):
    """Make the CLI's generator return noisy ideal helices (one all-NaN, if asked), whatever the model."""
    import molgen.sampling as sampling

    def helices(model, num_samples, *args, **options):
        rng = np.random.default_rng(0)
        backbones = [ideal_helix(12) + rng.normal(scale=0.15, size=(12, 4, 3)) for _ in range(num_samples)]
        if nan_index is not None:
            backbones[nan_index][:] = np.nan
        return backbones

    monkeypatch.setattr(sampling, "generate", helices)


def test_sample_relax_writes_relaxed_backbones_and_reports_both(backbone_ckpt, tmp_path, capsys, monkeypatch):
    _noisy_helices(monkeypatch)
    out, report = tmp_path / "d", tmp_path / "r.json"
    assert _sample(backbone_ckpt, out, "--num-samples", "3", "--relax", "--evaluate", "--json", str(report)) == 0
    assert "[relaxation]" in capsys.readouterr().out
    sections = json.loads(report.read_text())
    relaxed, unrelaxed = sections["backbone"], sections["backbone_unrelaxed"]
    assert unrelaxed["validity"]["passing_fraction"] < 1.0 and relaxed["validity"]["passing_fraction"] == 1.0
    assert relaxed["relaxation"]["num_structures"] == 3 and 0.05 < relaxed["relaxation"]["rmsd_mean"] < 0.5
    assert relaxed["relaxation"]["unrelaxed_passing_fraction"] == unrelaxed["validity"]["passing_fraction"]
    for path in sorted(out.glob("*.pdb")):
        assert validate_backbone(read_backbones(path)[0][0].coords).passes


def test_sample_relax_skips_diverged_samples(backbone_ckpt, tmp_path, capsys, monkeypatch):
    _noisy_helices(monkeypatch, nan_index=1)
    out, report = tmp_path / "d", tmp_path / "r.json"
    assert _sample(backbone_ckpt, out, "--num-samples", "3", "--relax", "--evaluate", "--json", str(report)) == 0
    assert sorted(f.name for f in out.iterdir()) == ["backbone_0000.pdb", "backbone_0002.pdb"]
    relaxed = json.loads(report.read_text())["backbone"]
    assert relaxed["input"]["num_structures"] == 2 and relaxed["relaxation"]["num_structures"] == 2
    assert "1 samples with non-finite coordinates not evaluated" in relaxed["notes"]
    assert "1 backbones not written" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args,message",
    [
        (["--relax-restraint", "0.5"], "--relax-restraint applies only with --relax"),
        (["--relax", "--relax-restraint", "0"], "--relax-restraint must be a positive number"),
        (["--relax", "--relax-restraint", "nan"], "--relax-restraint must be a positive number"),
    ],
)
def test_sample_relax_option_errors(backbone_ckpt, tmp_path, capsys, args, message):
    assert _sample(backbone_ckpt, tmp_path / "d", "--num-samples", "1", *args) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "d").exists()


def test_evaluate_folder_and_file(tmp_path, capsys):
    folder = tmp_path / "structures"
    folder.mkdir()
    write_backbone_pdb(folder / "helix.pdb", ideal_helix(30))
    write_backbone_pdb(folder / "strand.pdb", ideal_strand(20))
    report = tmp_path / "r.json"
    assert main(["evaluate", str(folder), "--json", str(report), "--no-progress"]) == 0
    section = json.loads(report.read_text())["backbone"]
    assert section["input"]["num_structures"] == 2
    assert section["validity"]["passing_fraction"] == 1.0
    capsys.readouterr()
    assert main(["evaluate", str(folder / "helix.pdb"), "--no-progress"]) == 0
    assert "helix" in capsys.readouterr().out.lower()


@pytest.mark.parametrize("content,message", [("", "empty file"), ("HETATM    1  O   HOH A   1\n", "")])
def test_evaluate_bad_structure_file(tmp_path, capsys, content, message):
    path = tmp_path / "bad.pdb"
    path.write_text(content)
    assert main(["evaluate", str(path), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("molgen evaluate: error:") and message in err and err.count("\n") == 1


def _write_training_folder(folder):
    """Four small chains (helices and strands of 12-16 residues), two PDB entries each side."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, (name, coords) in enumerate(
        [
            ("1AAA_l", ideal_helix(16)),
            ("1AAA_r", ideal_strand(12)),
            ("2BBB_l", ideal_helix(14)),
            ("3CCC_r", ideal_strand(13)),
        ]
    ):
        write_backbone_pdb(folder / f"{name}.pdb", coords + rng.normal(scale=0.05, size=coords.shape) + i)


@pytest.mark.slow
def test_train_sample_evaluate_backbones_end_to_end(tmp_path):
    """experiment=backbone on a code-built folder: train, sample PDBs, evaluate them."""
    data = tmp_path / "pdbs"
    _write_training_folder(data)
    run_dir = tmp_path / "run"
    train = molgen(
        "train",
        "experiment=backbone",
        f"data.root={data}",
        "data.min_length=10",
        "data.max_length=12",
        "data.val_fraction=0.34",
        "data.batch_size=2",
        # Model units of 1 Å: an untrained model's samples (hundreds of units wide) then fit PDB columns.
        "data.length_scale=1.0",
        f"data.cache_dir={tmp_path / 'cache'}",
        "model.hidden_dim=16",
        "model.num_layers=2",
        "trainer.max_steps=4",
        "trainer.val_check_interval=2",
        "trainer.progress_bar=false",
        f"hydra.run.dir={run_dir}",
    )
    assert train.returncode == 0, train.stderr[-2000:]
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    info = torch.load(ckpt, weights_only=True)["hyper_parameters"]["dataset_info"]
    assert info["domain"] == "backbones" and info["length_scale"] == 1.0
    designs = tmp_path / "designs"
    sample = molgen(
        "sample",
        "--ckpt",
        str(ckpt),
        "--length",
        "12",
        "--num-samples",
        "2",
        "--steps",
        "5",
        "--out",
        str(designs),
        "--no-progress",
    )
    assert sample.returncode == 0, sample.stderr[-2000:]
    evaluate = molgen("evaluate", str(designs), "--no-progress")
    assert evaluate.returncode == 0, evaluate.stderr[-2000:]
    assert len(list(designs.glob("*.pdb"))) == 2


def test_train_backbone_requires_root(tmp_path):
    result = molgen("train", "experiment=backbone", "trainer.max_steps=1", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode != 0
    assert "data.root" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("self_conditioning", ["false", "true"])
def test_train_sample_evaluate_an_internal_coordinate_model_end_to_end(tmp_path, capsys, self_conditioning):
    """experiment=backbone_internal on a code-built folder, plain, and self-conditioned (the estimate's trace in
    space) with the CA distance loss: train, resume, sample PDBs (CA steps of 3.80 Å, every atom rebuilt, clashes
    repaired), evaluate them; a motif is refused in one line."""
    data = tmp_path / "pdbs"
    _write_training_folder(data)
    run_dir = tmp_path / "run"
    options = [
        "experiment=backbone_internal",
        f"data.root={data}",
        "data.min_length=10",
        "data.max_length=12",
        "data.val_fraction=0.34",
        "data.batch_size=2",
        f"data.cache_dir={tmp_path / 'cache'}",
        "model.hidden_dim=16",
        "model.num_layers=2",
        "model.num_heads=2",
        "model.feedforward_dim=32",
        f"model.self_conditioning={self_conditioning}",
        f"diffusion.structure_loss={'ca_distances' if self_conditioning == 'true' else 'null'}",
        "diffusion.structure_loss_max_time=1.0",  # every step of the tiny run gets it
        "trainer.val_check_interval=2",
        "trainer.checkpoint_every_n_steps=2",
        "trainer.progress_bar=false",
        f"hydra.run.dir={run_dir}",
    ]
    train = molgen("train", *options, "trainer.max_steps=2")
    assert train.returncode == 0, train.stderr[-2000:]
    resumed = molgen("train", *options, "trainer.max_steps=4")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(ckpt, weights_only=True)
    assert checkpoint["global_step"] == 4
    assert checkpoint["hyper_parameters"]["dataset_info"]["internal_coordinates"] is True
    assert checkpoint["hyper_parameters"]["model"]["self_conditioning"] is (self_conditioning == "true")
    logged = (run_dir / "logs" / "metrics.csv").read_text().splitlines()[0]
    assert ("val/loss_structure" in logged) is (self_conditioning == "true")
    designs = tmp_path / "designs"
    assert _sample(ckpt, designs, "--num-samples", "2", "--length", "12") == 0
    for path in sorted(designs.glob("*.pdb")):
        (chain,), _ = read_backbones(path)
        assert chain.coords.shape == (12, 4, 3)
        np.testing.assert_allclose(np.linalg.norm(np.diff(chain.coords[:, 1], axis=0), axis=1), 3.80, atol=2e-3)
    capsys.readouterr()
    assert main(["evaluate", str(designs), "--no-progress"]) == 0
    assert "helix" in capsys.readouterr().out
    motif = tmp_path / "motif.pdb"
    write_backbone_pdb(motif, ideal_helix(6))
    assert _sample(ckpt, tmp_path / "m", "--length", "12", "--motif", str(motif), "--motif-residues", "A1-4") == 1
    err = capsys.readouterr().err
    assert "internal coordinates" in err and err.count("\n") == 1


def test_repair_clashes_is_checked(backbone_ckpt, tmp_path, capsys):
    """--repair-clashes: a negative count, or any rounds for a model with coordinates, is one line and exit 1."""
    for value, message in (("-1", "0 or more"), ("2", "internal-coordinate")):
        assert _sample(backbone_ckpt, tmp_path / value, "--length", "8", "--repair-clashes", value) == 1
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
        assert not (tmp_path / value).exists()
