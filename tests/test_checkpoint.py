import collections

import pytest
import torch

from molgen.checkpoint import CheckpointError, load_checkpoint
from molgen.training.module import check_resumable
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


def test_resume_refuses_another_model_or_diffusion_config(tmp_path):
    saved = torch.load(save_tiny_checkpoint(tmp_path / "last.ckpt"), weights_only=True)["hyper_parameters"]
    hparams = tiny_molecule_module().hparams
    model, diffusion = dict(hparams["model"]), dict(hparams["diffusion"])
    check_resumable(saved, model, diffusion)  # same config: fine
    check_resumable(saved, {**model, "added_later": 1}, diffusion)  # options newer than the checkpoint: fine
    with pytest.raises(ValueError, match=r"model.hidden_dim=16 there, 32 here") as err:
        check_resumable(saved, {**model, "hidden_dim": 32}, diffusion)
    assert "hydra.run.dir" in str(err.value)
    schedule = {**diffusion["schedule"], "power": 3.0}
    with pytest.raises(ValueError, match=r"diffusion.schedule.power=2.0 there, 3.0 here"):
        check_resumable(saved, model, {**diffusion, "schedule": schedule})
    with pytest.raises(ValueError, match=r"model.num_layers=2 there, unset here"):
        check_resumable(saved, {k: v for k, v in model.items() if k != "num_layers"}, diffusion)
