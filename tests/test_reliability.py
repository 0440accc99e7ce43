"""Bad input, concurrent use and runaway requests: one clear line each, nothing lost (a test per case)."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys

import pytest
import torch

from molgen.checkpoint import CheckpointError, load_checkpoint
from molgen.cli import main
from molgen.locks import LockedError, exclusive_lock
from molgen.pretrained import PRETRAINED_DIR, load_pretrained
from molgen.training.train import AtomicCheckpointIO
from tests.helpers import save_tiny_checkpoint


def molgen(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "molgen.cli", *args], capture_output=True, text=True, cwd=cwd)


class Evil:
    """Unpickling this would run a shell command."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.fixture
def bad_files(tmp_path):
    good = save_tiny_checkpoint(tmp_path / "good.ckpt")
    files = {
        "text": tmp_path / "notes.txt",
        "empty": tmp_path / "empty.ckpt",
        "random_safetensors": tmp_path / "random.safetensors",
        "real_safetensors": tmp_path / "weights.safetensors",
        "pickle_with_code": tmp_path / "evil.ckpt",
        "truncated": tmp_path / "truncated.ckpt",
        "foreign": tmp_path / "foreign.ckpt",
        "folder": tmp_path / "run",
        "missing": tmp_path / "missing.ckpt",
    }
    files["text"].write_text("hello\n")
    files["empty"].write_bytes(b"")
    files["random_safetensors"].write_bytes(os.urandom(4000))
    files["real_safetensors"].write_bytes((PRETRAINED_DIR / "qm9.safetensors").read_bytes())
    torch.save({"x": Evil()}, files["pickle_with_code"])
    files["truncated"].write_bytes(good.read_bytes()[:20000])
    torch.save({"weights": torch.zeros(3)}, files["foreign"])
    (files["folder"] / "checkpoints").mkdir(parents=True)
    return files


EXPECTED = {
    "text": "is not a PyTorch checkpoint",
    "empty": "is empty (0 bytes)",
    "random_safetensors": "is not a PyTorch checkpoint",
    "real_safetensors": "is a safetensors weights file, not a checkpoint of `molgen train`",
    "pickle_with_code": "refusing to load",
    "truncated": "is truncated or corrupt",
    "foreign": "is a PyTorch file but not a molgen checkpoint",
    "folder": "is a folder, not a checkpoint file; the run's latest is",
    "missing": "checkpoint not found",
}


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_every_bad_checkpoint_is_one_line_naming_the_file(bad_files, case, tmp_path, capsys):
    path = bad_files[case]
    assert main(["sample", "--ckpt", str(path), "--out", str(tmp_path / "s.sdf"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("molgen sample: error: ")
    assert EXPECTED[case] in err and path.name in err
    assert "weights_only" not in err  # never the advice to unpickle untrusted files
    assert not (tmp_path / "s.sdf").exists()


def test_a_pickle_with_code_is_never_run(bad_files, capsys):
    with pytest.raises(CheckpointError, match="could run code"):
        load_checkpoint(bad_files["pickle_with_code"])
    assert "pwned" not in capsys.readouterr().out


def test_corrupt_shipped_weights_are_one_line(tmp_path):
    (tmp_path / "m.json").write_text((PRETRAINED_DIR / "qm9.json").read_text())
    (tmp_path / "m.safetensors").write_bytes(os.urandom(3000))
    with pytest.raises(CheckpointError, match="m.safetensors is not a safetensors file.*reinstall molgen"):
        load_pretrained("m", folder=tmp_path)
    (tmp_path / "m.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="is empty"):
        load_pretrained("m", folder=tmp_path)


TINY_TRAIN = [
    "train",
    "experiment=qm9",
    "model.hidden_dim=16",
    "model.num_layers=1",
    "data.subset=64",
    "data.val_subset=16",
    "trainer.max_steps=2",
    "trainer.progress_bar=false",
]


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr and lines[-1].startswith("molgen train: error: ")
    return lines[-1]


def test_train_refuses_a_pickle_with_code_as_ckpt_path(bad_files, tmp_path):
    line = _one_error_line(
        molgen(*TINY_TRAIN, f"hydra.run.dir={tmp_path / 'r'}", f"ckpt_path={bad_files['pickle_with_code']}")
    )
    assert "refusing to load" in line and "weights_only" not in line


def test_a_truncated_last_checkpoint_is_reported_with_the_best_one_offered(tmp_path):
    checkpoints = tmp_path / "r" / "checkpoints"
    checkpoints.mkdir(parents=True)
    good = save_tiny_checkpoint(checkpoints / "best.ckpt")
    (checkpoints / "last.ckpt").write_bytes(good.read_bytes()[:5000])
    line = _one_error_line(molgen(*TINY_TRAIN, f"hydra.run.dir={tmp_path / 'r'}"))
    assert "last.ckpt is truncated or corrupt" in line and f"ckpt_path={checkpoints / 'best.ckpt'}" in line


@pytest.mark.parametrize("kind", ["a file", "uncreatable"])
def test_a_bad_run_directory_is_one_line(tmp_path, capsys, kind):
    if kind == "a file":
        target = tmp_path / "taken"
        target.write_text("not a folder\n")
        expected = "is a file, not a folder"
    else:
        (tmp_path / "file").write_text("x")
        target = tmp_path / "file" / "run"  # a folder inside a file cannot be created
        expected = "cannot be created"
    assert main([*TINY_TRAIN, f"hydra.run.dir={target}"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err


def _live_lock(path, pid=None, host=None):
    path.write_text(json.dumps({"pid": pid or os.getpid(), "host": host or socket.gethostname(), "since": "now"}))


def test_a_run_directory_in_use_is_refused(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    _live_lock(run / ".molgen.lock")  # this test process is alive: the run looks in use
    line = _one_error_line(molgen(*TINY_TRAIN, f"hydra.run.dir={run}"))
    assert f"run directory {run} is in use by process {os.getpid()}" in line
    assert not (run / "checkpoints").exists()


def test_an_output_in_use_is_refused_and_left_alone(tmp_path, capsys):
    ckpt = save_tiny_checkpoint(tmp_path / "tiny.ckpt")
    out = tmp_path / "s.sdf"
    out.write_text("precious\n")
    _live_lock(tmp_path / "s.sdf.lock")
    assert main(["sample", "--ckpt", str(ckpt), "--out", str(out), "--steps", "2", "--no-progress"]) == 1
    assert "output" in capsys.readouterr().err and out.read_text() == "precious\n"


def test_locks_exclude_take_over_stale_ones_and_name_other_hosts(tmp_path, caplog):
    lock = tmp_path / "x.lock"
    with exclusive_lock(lock, "thing", "wait"):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        with pytest.raises(LockedError, match="thing is in use by process"):
            with exclusive_lock(lock, "thing", "wait"):
                pass
    assert not lock.exists()  # released
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _live_lock(lock, pid=dead.pid)
    with caplog.at_level(logging.WARNING, logger="molgen.locks"):
        with exclusive_lock(lock, "thing", "wait"):
            assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert "stale lock" in caplog.text
    _live_lock(lock, pid=dead.pid, host="elsewhere")  # cannot check another host's processes
    with pytest.raises(LockedError, match="on elsewhere"):
        with exclusive_lock(lock, "thing", "wait"):
            pass


def test_an_interrupted_checkpoint_save_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1}, path)

    def crash(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt  # as a kill during the write would stop it

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no temporary file left


@pytest.mark.parametrize(
    "args, message",
    [
        (["--num-atoms", "200"], "a sample of size 200 is far beyond the largest the model was trained on (29)"),
        (["--num-samples", "1000000000"], "would take too long: at most about"),
    ],
)
def test_runaway_molecule_requests_need_yes(tmp_path, capsys, args, message):
    assert main(["sample", "--out", str(tmp_path / "s.sdf"), "--no-progress", *args]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "--yes" in err
    assert not (tmp_path / "s.sdf").exists()


def test_the_cost_estimate_times_the_eager_network_before_compiling(tmp_path, capsys, monkeypatch):
    """With --compile, a network compiled before the estimate would time its own compilation (tens of
    seconds per call), and a 10,000-molecule request was refused as taking hundreds of hours."""
    import molgen.checkpoint

    calls = []
    monkeypatch.setattr(molgen.checkpoint.TrainedModel, "compile", lambda model: calls.append("compile") or model)
    args = ["sample", "--out", str(tmp_path / "s.sdf"), "--no-progress", "--compile", "--num-samples", "1000000000"]
    assert main(args) == 1
    assert "would take too long: at most about" in capsys.readouterr().err
    assert calls == []  # refused on the eager estimate, before anything was compiled


def test_runaway_backbone_length_needs_yes(tmp_path, capsys):
    args = ["sample", "--model", "backbone", "--length", "3000", "--out", str(tmp_path / "d"), "--no-progress"]
    assert main(args) == 1
    assert "size 3000 is far beyond the largest the model was trained on (128)" in capsys.readouterr().err


def test_yes_runs_a_large_size(tmp_path, capsys):
    out = tmp_path / "s.sdf"
    assert main(["sample", "--num-atoms", "70", "--num-samples", "1", "--steps", "2", "--out", str(out), "--yes"]) == 0
    assert out.read_text().count("$$$$") == 1


def test_arguments_are_checked_before_the_model_loads(tmp_path, capsys, monkeypatch):
    import molgen.checkpoint

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(molgen.checkpoint, "load_checkpoint", no_loading)
    monkeypatch.setattr(molgen.pretrained, "load_pretrained", no_loading)
    with pytest.raises(SystemExit):
        main(["sample", "--seed", "-1"])
    assert "argument --seed: must be >= 0, got -1" in capsys.readouterr().err
    for args, message in [
        (["--refine-time", "1.5"], "--refine-time must be in (0, 1), got 1.5"),
        (["--eta", "2"], "--eta must be in [0, 1], got 2.0"),
        (["--class-temperature", "0"], "--class-temperature must be a positive number"),
        (["--model", "backbone", "--length", "5-x"], "--length must be N or MIN-MAX"),
    ]:
        assert main(["sample", "--out", str(tmp_path / "s.sdf"), *args]) == 1
        assert message in capsys.readouterr().err
