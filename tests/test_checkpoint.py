import collections

import pytest
import torch

from molgen.checkpoint import CheckpointError, load_checkpoint
from tests.helpers import save_tiny_checkpoint, tiny_molecule_module


def test_roundtrip_restores_weights(tmp_path):
    path = save_tiny_checkpoint(tmp_path / "m.ckpt", seed=3)
    model = load_checkpoint(path)
    reference = tiny_molecule_module(seed=3).denoiser
    for (name, a), (_, b) in zip(model.denoiser.state_dict().items(), reference.state_dict().items()):
        assert torch.equal(a, b), name
    assert not model.denoiser.training
    assert model.dataset_info["num_features"] == 6


def test_missing_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "absent.ckpt")
    (tmp_path / "garbage.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_checkpoint(tmp_path / "garbage.ckpt")
    good = save_tiny_checkpoint(tmp_path / "good.ckpt").read_bytes()
    (tmp_path / "truncated.ckpt").write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(tmp_path / "truncated.ckpt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.ckpt")
    with pytest.raises(CheckpointError, match="not a molgen checkpoint"):
        load_checkpoint(tmp_path / "foreign.ckpt")


class _Payload:
    def __reduce__(self):
        return (print, ("unpickled code ran",))


def test_refuses_arbitrary_pickles(tmp_path, capsys):
    torch.save({"hyper_parameters": _Payload()}, tmp_path / "evil.ckpt")
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_checkpoint(tmp_path / "evil.ckpt")
    assert "unpickled code ran" not in capsys.readouterr().out
    # plain containers are fine but still not a checkpoint
    torch.save(collections.OrderedDict(a=1), tmp_path / "plain.ckpt")
    with pytest.raises(CheckpointError, match="not a molgen checkpoint"):
        load_checkpoint(tmp_path / "plain.ckpt")
