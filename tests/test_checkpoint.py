import collections

import pytest
import torch

from molgen.checkpoint import CheckpointError, load_checkpoint
from molgen.dataset_info import BackboneInfo, MoleculeInfo
from molgen.diffusion.self_conditioning import GaussianEstimate
from molgen.pretrained import load_pretrained, model_card
from molgen.training.module import DiffusionModule, check_resumable
from molgen.training.train import warm_start
from tests.helpers import save_tiny_checkpoint, tiny_backbone_module, tiny_molecule_module
from tests.joint_helpers import save_tiny_joint_checkpoint, tiny_joint_module, tiny_molecules


def test_roundtrip_restores_weights(tmp_path):
    path = save_tiny_checkpoint(tmp_path / "m.ckpt", seed=3)
    model = load_checkpoint(path)
    reference = tiny_molecule_module(seed=3).denoiser
    for (name, a), (_, b) in zip(model.denoiser.state_dict().items(), reference.state_dict().items()):
        assert torch.equal(a, b), name
    assert not model.denoiser.training
    assert isinstance(model.info, MoleculeInfo) and model.info.num_features == 6
    assert model.domain.name == "molecules" and model.card is None
    assert model.source == str(path.resolve())


def test_checkpoints_with_the_first_dataset_info_layout_still_load(tmp_path):
    """Checkpoints written before typed dataset infos (no version, domain ``backbone``, per-domain histogram keys)."""
    molecules = torch.load(save_tiny_checkpoint(tmp_path / "m.ckpt"), weights_only=True)
    backbones = torch.load(save_tiny_checkpoint(tmp_path / "b.ckpt", domain="backbones"), weights_only=True)
    old = {
        "m": {"domain": "molecules", "num_atoms_histogram": [0, 0, 0, 2, 5, 3]},
        "b": {"domain": "backbone", "num_residues_histogram": [0] * 6 + [3, 0, 2]},
    }
    for name, ckpt in (("m", molecules), ("b", backbones)):
        info = ckpt["hyper_parameters"]["dataset_info"]
        assert info.pop("version") == 2 and "size_histogram" in info
        del info["size_histogram"]
        info.update(old[name])
        torch.save(ckpt, tmp_path / f"old_{name}.ckpt")
    model = load_checkpoint(tmp_path / "old_m.ckpt")
    assert isinstance(model.info, MoleculeInfo) and model.domain.name == "molecules"
    assert model.info.size_histogram == [0, 0, 0, 2, 5, 3]
    model = load_checkpoint(tmp_path / "old_b.ckpt")
    assert isinstance(model.info, BackboneInfo) and model.domain.name == "backbones"
    assert model.info.size_histogram == [0] * 6 + [3, 0, 2] and model.info.length_scale == 0.1


def test_missing_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "absent.ckpt")
    (tmp_path / "garbage.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.ckpt is not a PyTorch checkpoint"):
        load_checkpoint(tmp_path / "garbage.ckpt")
    good = save_tiny_checkpoint(tmp_path / "good.ckpt").read_bytes()
    (tmp_path / "truncated.ckpt").write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="truncated.ckpt is truncated or corrupt"):
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
    check_resumable(saved, {**model, "self_conditioning": False}, diffusion)  # ...at the value it was built with
    with pytest.raises(ValueError, match=r"model.self_conditioning unset there \(so False\), True here"):
        check_resumable(saved, {**model, "self_conditioning": True}, diffusion)
    with pytest.raises(ValueError, match=r"model.hidden_dim=16 there, 32 here") as err:
        check_resumable(saved, {**model, "hidden_dim": 32}, diffusion)
    assert "hydra.run.dir" in str(err.value)
    schedule = {**diffusion["schedule"], "power": 3.0}
    with pytest.raises(ValueError, match=r"diffusion.schedule.power=2.0 there, 3.0 here"):
        check_resumable(saved, model, {**diffusion, "schedule": schedule})
    with pytest.raises(ValueError, match=r"model.num_layers=2 there, unset here"):
        check_resumable(saved, {k: v for k, v in model.items() if k != "num_layers"}, diffusion)


def _with_model_options(module, **options):
    """A new module like ``module`` whose model config has ``options`` changed."""
    hparams = module.hparams
    return type(module)(
        model={**hparams["model"], **options},
        diffusion=hparams["diffusion"],
        optim=hparams["optim"],
        dataset_info=hparams["dataset_info"],
    )


def test_warm_start_loads_every_weight_and_keeps_the_new_embedding_at_zero(tmp_path):
    source = save_tiny_checkpoint(tmp_path / "plain.ckpt", seed=3, domain="backbones", prediction="v")
    plain = load_checkpoint(source).denoiser
    target = _with_model_options(tiny_backbone_module(seed=5, prediction="v"), self_conditioning=True).denoiser
    assert warm_start(target, str(source)) == ["net.estimate_embedding.weight"]
    for name, value in plain.state_dict().items():
        assert torch.equal(target.state_dict()[name], value), name
    assert not target.net.estimate_embedding.weight.any()
    # so the fine-tuning starts from the source's predictions exactly, estimate or not
    gen = torch.Generator().manual_seed(0)
    pos, h = torch.randn(24, 3, generator=gen), torch.eye(4).repeat(6, 1)
    t, batch = torch.tensor([0.3, 0.7]), torch.tensor([0] * 12 + [1] * 12)
    expected = plain(pos, h, t, batch)[0]
    estimate = GaussianEstimate(pos, None)
    torch.testing.assert_close(target.eval()(pos, h, t, batch, self_condition=estimate)[0], expected, rtol=0, atol=0)


def test_warm_start_a_self_conditioned_joint_model_from_a_plain_one(tmp_path):
    source = save_tiny_joint_checkpoint(tmp_path / "plain.ckpt", seed=3)
    plain = load_checkpoint(source).denoiser
    target = tiny_joint_module(seed=5, self_conditioning=True).denoiser
    new = ["estimate_node_embedding.weight", "estimate_pair_embedding.weight"]
    assert warm_start(target, str(source)) == new
    for name, value in plain.state_dict().items():
        assert torch.equal(target.state_dict()[name], value), name
    assert not any(target.get_parameter(name).any() for name in new)
    # so the fine-tuning starts from the source's predictions exactly, estimate or not
    diffusion, clean = load_checkpoint(source).diffusion, tiny_molecules()
    inputs = (
        clean.pos,
        diffusion.node_features(clean.node_classes, clean.pos.dtype),
        diffusion.edge_features(clean.edge_classes, clean.pos.dtype),
        clean.pair_index,
        torch.full((3,), 0.3),
        clean.batch,
    )
    expected = plain(*inputs)
    estimate = diffusion.self_condition_estimate(inputs, expected)
    for got, want in zip(target.eval()(*inputs, self_condition=estimate), expected):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_warm_start_leaves_a_fold_conditioned_sources_label_map_out_of_a_model_without_labels(tmp_path):
    """The source with every label hidden is the network without labels: its other weights load, exactly."""
    from tests.helpers import save_tiny_internal_checkpoint

    labelled = load_checkpoint(save_tiny_internal_checkpoint(tmp_path / "ss.ckpt", secondary_structure=True))
    plain_ckpt = save_tiny_internal_checkpoint(tmp_path / "plain.ckpt", seed=4)
    target = load_checkpoint(plain_ckpt).denoiser
    assert warm_start(target, str(tmp_path / "ss.ckpt")) == []
    h, t, batch = (
        torch.randn(9, 3, generator=torch.Generator().manual_seed(0)),
        torch.tensor([0.4]),
        torch.zeros(9).long(),
    )
    hidden = labelled.denoiser(torch.zeros(9, 0), h, t, batch, node_labels=torch.full((9,), -1))[1]
    torch.testing.assert_close(target(torch.zeros(9, 0), h, t, batch)[1], hidden, rtol=0, atol=0)


def test_warm_start_refuses_unknown_sources_and_other_architectures(tmp_path):
    target = tiny_molecule_module().denoiser
    with pytest.raises(CheckpointError, match=r"init_from='nowhere.ckpt' is neither a checkpoint file nor a shipped"):
        warm_start(target, "nowhere.ckpt")
    wider = _with_model_options(tiny_molecule_module(), hidden_dim=24)
    torch.save({"hyper_parameters": dict(wider.hparams), "state_dict": wider.state_dict()}, tmp_path / "wide.ckpt")
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"do not fit this model \(embedding.weight, .* and \d+ more"):
        warm_start(target, str(tmp_path / "wide.ckpt"))
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())


def test_warm_start_from_a_shipped_model():
    card = model_card("backbone-ca")["config"]
    module = DiffusionModule(
        model={**card["model"], "self_conditioning": True},
        diffusion=card["diffusion"],
        optim={"lr": 1e-4},
        dataset_info=card["dataset_info"],
    )
    new = warm_start(module.denoiser, "backbone-ca")
    assert new == ([] if card["model"].get("self_conditioning") else ["net.estimate_embedding.weight"])
    shipped = load_pretrained("backbone-ca").denoiser.state_dict()
    assert all(torch.equal(module.denoiser.state_dict()[k], v) for k, v in shipped.items())
