"""The `molgen` command as a user runs it (subprocesses, real configs)."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest
import torch
from rdkit import Chem

from molgen.cli import main
from tests.helpers import save_tiny_checkpoint


def molgen(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "molgen.cli", *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture
def tiny_ckpt(tmp_path):
    return save_tiny_checkpoint(tmp_path / "tiny.ckpt")


def _sample(ckpt, out, *extra):
    return main(["sample", "--ckpt", str(ckpt), "--out", str(out), "--steps", "5", "--no-progress", *extra])


def test_sample_writes_titled_tagged_sdf(tiny_ckpt, tmp_path):
    out = tmp_path / "s.sdf"
    assert _sample(tiny_ckpt, out, "--num-samples", "7", "--batch-size", "3", "--seed", "4") == 0
    mols = [m for m in Chem.SDMolSupplier(str(out), removeHs=False, sanitize=False)]
    assert len(mols) == 7 and all(m is not None for m in mols)
    for i, m in enumerate(mols):
        assert m.GetProp("_Name") == f"molgen_{i}"
        assert m.GetProp("index") == str(i) and m.GetProp("seed") == "4"
        assert m.GetProp("checkpoint") == str(tiny_ckpt.resolve())
        assert m.HasProp("bonds_perceived")
        assert 3 <= m.GetNumAtoms() <= 5  # drawn from the checkpoint's histogram
        assert all(a.GetSymbol() in "HCNOF" for a in m.GetAtoms())


def test_same_seed_same_file_and_fixed_size(tiny_ckpt, tmp_path):
    a, b, c = tmp_path / "a.sdf", tmp_path / "b.sdf", tmp_path / "c.sdf"
    for path, seed in ((a, "1"), (b, "1"), (c, "2")):
        assert _sample(tiny_ckpt, path, "--num-samples", "4", "--seed", seed, "--num-atoms", "6") == 0
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    assert all(m.GetNumAtoms() == 6 for m in Chem.SDMolSupplier(str(a), removeHs=False, sanitize=False))


@pytest.mark.parametrize("sampler", ["ddim", "dpm-solver"])
def test_sample_with_other_samplers(tiny_ckpt, tmp_path, sampler):
    out = tmp_path / f"{sampler}.sdf"
    assert _sample(tiny_ckpt, out, "--num-samples", "3", "--sampler", sampler, "--num-atoms", "5") == 0
    mols = list(Chem.SDMolSupplier(str(out), removeHs=False, sanitize=False))
    assert len(mols) == 3 and all(m.GetProp("sampler") == sampler for m in mols)


def test_sample_sampler_options_change_the_output_and_are_tagged(tiny_ckpt, tmp_path):
    paths = {name: tmp_path / f"{name}.sdf" for name in ("eta0", "eta1", "grid")}
    assert _sample(tiny_ckpt, paths["eta0"], "--num-samples", "3", "--num-atoms", "5", "--sampler", "ddim") == 0
    assert (
        _sample(tiny_ckpt, paths["eta1"], "--num-samples", "3", "--num-atoms", "5", "--sampler", "ddim", "--eta", "1")
        == 0
    )
    grid = ("--sampler", "ddim", "--grid", "logsnr")
    assert _sample(tiny_ckpt, paths["grid"], "--num-samples", "3", "--num-atoms", "5", *grid) == 0
    texts = {name: path.read_text() for name, path in paths.items()}
    positions = {name: text.split("M  END")[0].split("\n", 4)[4] for name, text in texts.items()}
    assert positions["eta0"] != positions["eta1"] and positions["eta0"] != positions["grid"]
    labels = {
        name: Chem.SDMolSupplier(str(p), removeHs=False, sanitize=False)[0].GetProp("sampler")
        for name, p in paths.items()
    }
    assert labels == {"eta0": "ddim", "eta1": "ddim eta=1.0", "grid": "ddim grid=logsnr"}


def test_sample_refinement_moves_atoms_and_is_tagged(tiny_ckpt, tmp_path, capsys):
    plain, refined = tmp_path / "plain.sdf", tmp_path / "refined.sdf"
    common = ("--num-samples", "2", "--num-atoms", "5", "--steps", "5")
    assert _sample(tiny_ckpt, plain, *common) == 0
    assert _sample(tiny_ckpt, refined, *common, "--refine-steps", "2", "--refine-time", "0.05") == 0
    a, b = (Chem.SDMolSupplier(str(p), removeHs=False, sanitize=False)[0] for p in (plain, refined))
    assert b.GetProp("sampler") == "ddpm refine_steps=2 refine_time=0.05"
    assert a.GetNumAtoms() == b.GetNumAtoms() == 5
    assert a.GetConformer().GetPositions().tolist() != b.GetConformer().GetPositions().tolist()
    assert _sample(tiny_ckpt, tmp_path / "bad.sdf", "--refine-time", "1.5") == 1
    assert "--refine-time must be in (0, 1), got 1.5" in capsys.readouterr().err
    assert _sample(tiny_ckpt, tmp_path / "bad.sdf", "--polish-steps", "-1") == 1
    assert "--polish-steps must be a whole number >= 0, got -1" in capsys.readouterr().err
    ladder = ("--refine-steps", "2", "1", "--refine-time", "0.3", "0.05")
    assert _sample(tiny_ckpt, tmp_path / "bad.sdf", *ladder, "0.02") == 1
    assert "--refine-time must list as many stages as refine_steps (2), got 3" in capsys.readouterr().err
    assert not (tmp_path / "bad.sdf").exists()
    laddered = tmp_path / "laddered.sdf"
    assert _sample(tiny_ckpt, laddered, *common, *ladder) == 0
    tag = Chem.SDMolSupplier(str(laddered), removeHs=False, sanitize=False)[0].GetProp("sampler")
    assert tag == "ddpm refine_steps=2,1 refine_time=0.3,0.05"


def test_sample_noise_scale_lowers_the_temperature_and_is_checked(tiny_ckpt, tmp_path, capsys):
    plain, cold = tmp_path / "plain.sdf", tmp_path / "cold.sdf"
    common = ("--num-samples", "2", "--num-atoms", "5", "--steps", "5")
    assert _sample(tiny_ckpt, plain, *common) == 0
    assert _sample(tiny_ckpt, cold, *common, "--noise-scale", "0.5") == 0
    a, b = (Chem.SDMolSupplier(str(p), removeHs=False, sanitize=False)[0] for p in (plain, cold))
    assert b.GetProp("sampler") == "ddpm noise_scale=0.5"
    assert a.GetConformer().GetPositions().tolist() != b.GetConformer().GetPositions().tolist()
    assert _sample(tiny_ckpt, tmp_path / "bad.sdf", "--noise-scale", "1.5") == 1
    assert "--noise-scale must be in [0, 1], got 1.5" in capsys.readouterr().err
    assert _sample(tiny_ckpt, tmp_path / "bad.sdf", "--sampler", "ddim", "--noise-scale", "0.5") == 1
    assert "--noise-scale is an option of --sampler ddpm, not ddim" in capsys.readouterr().err
    assert not (tmp_path / "bad.sdf").exists()


def test_sample_eta_needs_ddim(tiny_ckpt, tmp_path, capsys):
    assert _sample(tiny_ckpt, tmp_path / "x.sdf", "--sampler", "ddpm", "--eta", "0.5") == 1
    assert "--eta is an option of --sampler ddim and dpm-solver" in capsys.readouterr().err
    assert not (tmp_path / "x.sdf").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--num-samples", "0"], "must be a positive integer"),
        (["--num-samples", "-3"], "must be a positive integer"),
        (["--num-atoms", "0"], "must be a positive integer"),
    ],
)
def test_sample_rejects_bad_numbers(tiny_ckpt, tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        _sample(tiny_ckpt, tmp_path / "x.sdf", *args)
    assert exit_info.value.code != 0
    assert message in capsys.readouterr().err


def test_sample_errors_keep_existing_output(tiny_ckpt, tmp_path, capsys):
    out = tmp_path / "keep.sdf"
    out.write_text("precious\n")
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"\x00garbage")
    assert _sample(tmp_path / "missing.ckpt", out) == 1
    assert _sample(bad, out) == 1
    assert _sample(tiny_ckpt, tmp_path / "no_such_dir" / "x.sdf") == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(line.startswith("molgen sample: error: ") for line in errors)
    assert "checkpoint not found" in errors[0] and "bad.ckpt is not a PyTorch checkpoint" in errors[1]
    assert "does not exist" in errors[2]
    assert out.read_text() == "precious\n"


@pytest.mark.parametrize(
    "override, message",
    [
        ("trainer.no_such_key=1", "Key 'no_such_key' not in 'TrainerConfig'"),
        ("model=unknown_model", "Could not find 'model/unknown_model'"),
        ("model.hidden_dim=wide", "model.hidden_dim must be int"),
    ],
)
def test_train_rejects_bad_overrides(override, message, capsys):
    assert main(["train", override]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("molgen train: error:") and message in err and "\n" not in err


def test_unknown_command(capsys):
    assert main(["fly"]) == 2
    assert "unknown command" in capsys.readouterr().err


@pytest.mark.slow
def test_train_bf16_mixed_with_gradient_clipping(tmp_path):
    """trainer.precision=bf16-mixed with the default gradient clipping trains and checkpoints.

    Guards the layer's in-place ops under autocast and the optimizer's compatibility with
    Lightning's mixed-precision clipping (a fused AdamW is refused there)."""
    run_dir = tmp_path / "run"
    result = molgen(
        "train",
        "experiment=qm9_bonds",
        "model.hidden_dim=16",
        "model.num_layers=2",
        "model.edge_dim=8",
        "data.subset=200",
        "data.val_subset=32",
        "data.batch_size=32",
        "trainer.max_steps=3",
        "trainer.precision=bf16-mixed",
        "trainer.progress_bar=false",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3


@pytest.mark.slow
def test_train_resume_sample_end_to_end(tmp_path):
    """Real configs + real QM9 subset: train, resume on the same run dir, sample, read back."""
    run_dir = tmp_path / "run"
    common = [
        "train",
        "experiment=qm9",
        "model.hidden_dim=16",
        "model.num_layers=2",
        "data.subset=300",
        "data.val_subset=64",
        "data.batch_size=32",
        "trainer.val_check_interval=8",
        "trainer.checkpoint_every_n_steps=4",
        "trainer.log_every_n_steps=4",
        "trainer.progress_bar=false",
        f"hydra.run.dir={run_dir}",
    ]
    first = molgen(*common, "trainer.max_steps=12")
    assert first.returncode == 0, first.stderr[-2000:]
    last = run_dir / "checkpoints" / "last.ckpt"
    first_ckpt = torch.load(last, weights_only=True)
    assert first_ckpt["global_step"] == 12
    first_lr = first_ckpt["optimizer_states"][0]["param_groups"][0]["lr"]
    assert first_lr != 3e-5
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    assert (run_dir / "config_resolved.yaml").is_file() and (run_dir / "logs" / "metrics.csv").is_file()
    assert list((run_dir / "logs").glob("events.out.tfevents.*"))

    # resumed at another learning rate: the optimiser keeps its moments and takes the new rate
    second = molgen(*common, "trainer.max_steps=20", "optim.lr=3e-5")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "Restored all states" in second.stderr + second.stdout
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["global_step"] == 20
    assert [group["lr"] for group in ckpt["optimizer_states"][0]["param_groups"]] == [3e-5]
    with open(run_dir / "logs" / "metrics.csv") as fh:
        rates = {row["step"]: float(row["lr-AdamW"]) for row in csv.DictReader(fh) if row.get("lr-AdamW")}
    # the first run's rows are kept (Lightning's logger would delete them), the second's appended
    assert min(map(int, rates)) < 12 <= max(map(int, rates))
    assert all(rate == (3e-5 if int(step) >= 12 else first_lr) for step, rate in rates.items())
    assert ckpt["hyper_parameters"]["model"]["hidden_dim"] == 16

    # the same run directory with another architecture: one clear error, the checkpoint untouched
    changed = molgen(*common, "trainer.max_steps=28", "model.hidden_dim=32")
    assert changed.returncode == 1
    message = changed.stderr.strip().splitlines()[-1]
    assert message.startswith("molgen train: error:") and "model.hidden_dim=16 there, 32 here" in message
    assert torch.load(last, weights_only=True)["global_step"] == 20

    # a new run fine-tuned from it, with self-conditioning added; a missing source is one clear error
    tuned_dir = tmp_path / "tuned"
    base = [a for a in common if not a.startswith("hydra.run.dir")]
    tuned = molgen(
        *base, f"hydra.run.dir={tuned_dir}", "trainer.max_steps=4", f"init_from={last}", "model.self_conditioning=true"
    )
    assert tuned.returncode == 0, tuned.stderr[-2000:]
    assert "initialised from" in tuned.stderr + tuned.stdout and "estimate_embedding" in tuned.stderr + tuned.stdout
    tuned_ckpt = torch.load(tuned_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert tuned_ckpt["global_step"] == 4 and tuned_ckpt["hyper_parameters"]["model"]["self_conditioning"]
    missing = molgen(*base, f"hydra.run.dir={tmp_path / 'other'}", f"init_from={tmp_path / 'absent.ckpt'}")
    assert missing.returncode == 1
    assert "is neither a checkpoint file nor a shipped model" in missing.stderr.strip().splitlines()[-1]

    out = tmp_path / "samples.sdf"
    sample = molgen(
        "sample", "--ckpt", str(last), "--num-samples", "5", "--steps", "10", "--out", str(out), "--device", "cpu"
    )
    assert sample.returncode == 0, sample.stderr[-2000:]
    mols = list(Chem.SDMolSupplier(str(out), removeHs=False, sanitize=False))
    assert len(mols) == 5 and all(m is not None and m.GetNumConformers() == 1 for m in mols)
