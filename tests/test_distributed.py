"""Data-parallel training (Lightning DDP, gloo on CPU) and sharded sampling (torchrun)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import lightning as L
import pytest
import torch

from molgen.checkpoint import load_checkpoint
from molgen.cli import main
from molgen.sampling import SamplingConfig, generate, merge_shards, shard_indices
from molgen.training.config import validate_overrides
from molgen.training.train import _relaunches_command, ddp_strategy
from tests.helpers import save_tiny_checkpoint, tiny_backbone_module, tiny_molecule_module

needs_qm9 = pytest.mark.skipif(importlib.util.find_spec("qm9pack") is None, reason="QM9 comes from qm9pack")


def run(*args: str) -> subprocess.CompletedProcess:
    # One thread per process: results then do not depend on how the 2 shared cores are split.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env)


def test_shards_merge_into_single_process_order(tmp_path):
    model = load_checkpoint(save_tiny_checkpoint(tmp_path / "tiny.ckpt"))
    kwargs = dict(batch_size=2, seed=5, progress=False)
    sampling = SamplingConfig(steps=2)
    whole = generate(model, 7, sampling, **kwargs)
    for world_size in (2, 3, 5):
        shards = [generate(model, 7, sampling, shard=(r, world_size), **kwargs) for r in range(world_size)]
        merged = merge_shards(shards, batch_size=2)
        assert len(merged) == 7
        indices = [shard_indices(7, 2, (r, world_size)) for r in range(world_size)]
        assert [len(i) for i in indices] == [len(s) for s in shards]
        assert merge_shards(indices, batch_size=2) == list(range(7))  # each sample's place in the request
        for a, b in zip(merged, whole):
            assert (a.atomic_numbers == b.atomic_numbers).all() and (a.positions == b.positions).all()
    with pytest.raises(ValueError, match="shard"):
        generate(model, 7, sampling, shard=(2, 2), **kwargs)


@pytest.mark.parametrize(
    "overrides",
    [
        ["trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu"],
        ["trainer=ddp", "trainer.devices=auto", "trainer.num_nodes=2", "trainer.precision=bf16-mixed"],
        ["trainer.strategy=ddp", "trainer.devices=4", "trainer.precision=16-mixed"],
    ],
)
def test_ddp_overrides_pass_validation(overrides):
    assert validate_overrides(["experiment=qm9", *overrides]) is None


def test_multirun_refuses_local_ddp_only():
    """Local DDP re-runs the command line per rank; in a Hydra sweep that would restart the sweep."""
    assert _relaunches_command(L.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False))
    assert not _relaunches_command(L.Trainer(accelerator="cpu", devices=1, logger=False))


def test_torchrun_sampling_matches_single_process(tmp_path):
    ckpt = save_tiny_checkpoint(tmp_path / "tiny.ckpt")
    common = ["--ckpt", str(ckpt), "--num-samples", "7", "--batch-size", "2", "--steps", "5", "--seed", "3"]
    single, sharded = tmp_path / "single.sdf", tmp_path / "sharded.sdf"
    assert main(["sample", *common, "--no-progress", "--out", str(single)]) == 0
    launch = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    result = run(*launch, "-m", "molgen.cli", "sample", *common, "--out", str(sharded))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("wrote 7 molecules") == 1  # only rank 0 writes
    assert sharded.read_bytes() == single.read_bytes()


@needs_qm9
@pytest.mark.slow
def test_ddp_training_two_processes_and_resume(tmp_path):
    """Two CPU processes: each sees half of every epoch, rank 0 alone writes the checkpoints, resume works."""
    run_dir = tmp_path / "run"
    common = [
        "-m",
        "molgen.cli",
        "train",
        "experiment=qm9",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "model.hidden_dim=16",
        "model.num_layers=2",
        "data.subset=128",
        "data.val_subset=32",
        "data.batch_size=32",
        "trainer.val_check_interval=4",
        "trainer.checkpoint_every_n_steps=2",
        "trainer.progress_bar=false",
        f"hydra.run.dir={run_dir}",
    ]
    first = run(*common, "trainer.max_steps=6")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Starting with 2 processes" in first.stdout + first.stderr
    assert (run_dir / "train_ddp_process_1.log").is_file()  # rank 1 ran in the same run directory
    checkpoints = run_dir / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best.ckpt", "last.ckpt"]
    ckpt = torch.load(checkpoints / "last.ckpt", weights_only=True)
    # 128 molecules / (2 processes x 32) = 2 steps per epoch: 6 steps end in epoch index 2
    assert (ckpt["global_step"], ckpt["epoch"]) == (6, 2)
    assert "averaging_state" in ckpt  # EMA weights in state_dict
    load_checkpoint(checkpoints / "last.ckpt")

    second = run(*common, "trainer.max_steps=8")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Restored all states" in second.stdout + second.stderr
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["global_step"] == 8
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best.ckpt", "last.ckpt"]


def test_ddp_looks_for_unused_parameters_only_when_features_are_conditioning():
    """Backbone models never use their feature readout: plain DDP would fail at the first step."""
    backbone, molecules = tiny_backbone_module(), tiny_molecule_module()
    assert ddp_strategy("ddp", backbone) == "ddp_find_unused_parameters_true"
    assert ddp_strategy("ddp", molecules) == "ddp"
    assert ddp_strategy("auto", backbone) == "auto"
