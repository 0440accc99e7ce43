"""Shipped pretrained models: export, load, sample (API and CLI), and every model actually shipped."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import torch
from rdkit import Chem

import molgen
import molgen.pretrained as pretrained
from molgen.checkpoint import CheckpointError, load_checkpoint
from molgen.cli import main
from molgen.diffusion.prediction import VelocityDenoiser
from tests.helpers import save_tiny_checkpoint

CARD = {"summary": "tiny untrained test model", "sampling": {"sampler": "dpm-solver", "steps": 3}}


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A pretrained folder holding a tiny molecule model 'qm9' and a tiny backbone model 'backbone'."""
    folder = tmp_path / "pretrained"
    folder.mkdir()
    pretrained.export_pretrained(save_tiny_checkpoint(tmp_path / "m.ckpt"), "qm9", CARD, folder)
    backbone_ckpt = save_tiny_checkpoint(tmp_path / "b.ckpt", domain="backbones")
    pretrained.export_pretrained(backbone_ckpt, "backbone", CARD, folder)
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", folder)
    return folder


def test_export_writes_weights_and_card_that_rebuild_the_model(folder, tmp_path):
    assert sorted(p.name for p in folder.iterdir()) == [
        "backbone.json",
        "backbone.safetensors",
        "qm9.json",
        "qm9.safetensors",
    ]
    card = json.loads((folder / "qm9.json").read_text())
    assert card["summary"] == CARD["summary"] and set(card["config"]) == {"model", "diffusion", "dataset_info"}
    checkpoint = load_checkpoint(tmp_path / "m.ckpt")
    assert card["config"]["dataset_info"] == checkpoint.info.to_dict()
    original = checkpoint.denoiser.state_dict()
    loaded = pretrained.load_pretrained("qm9")
    assert loaded.card["name"] == "qm9" and loaded.info == checkpoint.info
    shipped = loaded.denoiser.state_dict()
    assert original.keys() == shipped.keys() and all(torch.equal(original[k], shipped[k]) for k in original)


def test_load_pretrained_samples_rdkit_molecules_with_conformers(folder):
    model = molgen.load_pretrained("qm9")
    mols = model.sample(3, seed=1)
    assert len(mols) == 3 and all(isinstance(m, Chem.Mol) and m.GetNumConformers() == 1 for m in mols)
    again = model.sample(3, seed=1)
    assert [Chem.MolToMolBlock(m) for m in mols] == [Chem.MolToMolBlock(m) for m in again]


def test_backbone_model_samples_arrays(folder):
    backbones = pretrained.load_pretrained("backbone").sample(2, length=(6, 6))
    assert [b.shape for b in backbones] == [(6, 4, 3), (6, 4, 3)] and all(np.isfinite(b).all() for b in backbones)


def test_velocity_model_round_trips(tmp_path, monkeypatch):
    """A v-predicting model ships the wrapped network's weights and rebuilds the wrapper."""
    ckpt = save_tiny_checkpoint(tmp_path / "v.ckpt", domain="backbones", prediction="v")
    pretrained.export_pretrained(ckpt, "backbone", CARD, tmp_path)
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path)
    shipped = pretrained.load_pretrained("backbone")
    original = load_checkpoint(ckpt)
    assert isinstance(shipped.denoiser, VelocityDenoiser) and shipped.diffusion.prediction == "v"
    a, b = original.denoiser.state_dict(), shipped.denoiser.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    backbones = pretrained.load_pretrained("backbone").sample(2, length=(6, 6), seed=0)
    assert all(b.shape == (6, 4, 3) and np.isfinite(b).all() for b in backbones)


def test_unknown_model_and_corrupt_weights(folder):
    with pytest.raises(CheckpointError, match="no pretrained model named 'nope'; available: backbone, qm9"):
        pretrained.load_pretrained("nope")
    with pytest.raises(CheckpointError, match="a checkpoint file goes to --ckpt"):
        pretrained.load_pretrained("runs/x/checkpoints/last.ckpt")
    (folder / "qm9.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="qm9.safetensors is not a safetensors file"):
        pretrained.load_pretrained("qm9")


def _write_preset(folder, name: str, **card) -> None:
    (folder / f"{name}.json").write_text(json.dumps({"summary": "preset", **card}))


def test_a_sampler_preset_shares_its_owners_weights_and_config(folder, tmp_path):
    _write_preset(folder, "fast", weights="qm9", sampling={"sampler": "ddim", "steps": 2}, quality={"x": 1})
    assert pretrained.available_models()["fast"]["config"] == json.loads((folder / "qm9.json").read_text())["config"]
    preset, owner = pretrained.load_pretrained("fast"), pretrained.load_pretrained("qm9")
    assert preset.card["name"] == "fast" and preset.card["quality"] == {"x": 1}
    assert preset.card["summary"] == "preset" and preset.card["config"] == owner.card["config"]
    owner_card = json.loads((folder / "qm9.json").read_text())
    owner_card.update(command="train it", training="an hour", quality={"y": 2})
    (folder / "qm9.json").write_text(json.dumps(owner_card))
    merged = pretrained.model_card("fast")
    assert (merged["command"], merged["training"], merged["quality"]) == ("train it", "an hour", {"x": 1})
    a, b = preset.denoiser.state_dict(), owner.denoiser.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert preset.sampling.sampler == "ddim" and preset.sampling.steps == 2
    out = tmp_path / "p.sdf"
    assert (
        main(
            ["sample", "--model", "fast", "--num-samples", "2", "--num-atoms", "5", "--out", str(out), "--no-progress"]
        )
        == 0
    )
    first = Chem.SDMolSupplier(str(out), sanitize=False)[0]
    assert first.GetProp("checkpoint") == "pretrained:fast" and first.GetProp("sampler") == "ddim"


def test_a_fixed_part_note_belongs_to_the_cards_sampler():
    from molgen.sampling import SamplingConfig

    card = SamplingConfig.from_card({"sampler": "ddim", "steps": 4, "fixed_part_note": "not for --link"})
    assert card.fixed_part_note == "not for --link"
    assert card.updated(steps=8, options={"eta": 1.0}, precision="bf16").fixed_part_note == "not for --link"
    assert card.updated(sampler="ddim").fixed_part_note is None  # a sampler the user names has no note
    assert SamplingConfig.from_card(None).fixed_part_note is None


def test_a_cards_fixed_part_note_is_printed_with_its_sampler_only(folder, tmp_path, capsys):
    from tests.domains.test_molecules_inpainting import SCAFFOLD

    _set_card_sampling(folder, fixed_part_note="use another model for --fix")
    args = ["sample", "--num-samples", "1", "--num-atoms", "9", "--steps", "2", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "a.sdf")]) == 0
    assert "use another model" not in capsys.readouterr().err  # nothing fixed
    assert main([*args, "--fix", str(SCAFFOLD), "--out", str(tmp_path / "b.sdf")]) == 0
    assert "molgen sample: note: use another model for --fix" in capsys.readouterr().err
    assert main([*args, "--fix", str(SCAFFOLD), "--sampler", "ddpm", "--out", str(tmp_path / "c.sdf")]) == 0
    assert "use another model" not in capsys.readouterr().err  # a sampler of the user's own


def test_a_preset_of_missing_or_preset_weights_is_refused(folder):
    _write_preset(folder, "orphan", weights="gone")
    assert "orphan" not in pretrained.available_models()
    with pytest.raises(CheckpointError, match="no pretrained model named 'orphan'"):
        pretrained.load_pretrained("orphan")
    _write_preset(folder, "fast", weights="qm9")
    _write_preset(folder, "faster", weights="fast")
    (folder / "fast.safetensors").write_bytes(b"")  # even with a file of that name, a preset owns no weights
    with pytest.raises(CheckpointError, match="'faster' names the weights of 'fast', which is not a model with its"):
        pretrained.available_models()


def test_cli_sample_defaults_to_the_shipped_model(folder, tmp_path, capsys):
    out = tmp_path / "s.sdf"
    assert main(["sample", "--num-samples", "2", "--steps", "3", "--out", str(out), "--no-progress"]) == 0
    mols = list(Chem.SDMolSupplier(str(out), removeHs=False, sanitize=False))
    assert len(mols) == 2 and mols[0].GetProp("checkpoint") == "pretrained:qm9"
    assert (
        main(
            [
                "sample",
                "--model",
                "backbone",
                "--length",
                "5",
                "--num-samples",
                "1",
                "--steps",
                "3",
                "--out",
                str(tmp_path / "d"),
                "--no-progress",
            ]
        )
        == 0
    )
    assert (tmp_path / "d" / "backbone_0000.pdb").is_file()


def _set_card_sampling(folder, **entries) -> None:
    """Write ``entries`` into the ``sampling`` entry of the test folder's qm9 card."""
    card_path = folder / "qm9.json"
    card = json.loads(card_path.read_text())
    card["sampling"].update(entries)
    card_path.write_text(json.dumps(card))


def _sample_five_atoms(tmp_path, name, *extra):
    """`molgen sample` of two 5-atom molecules in 3 steps with ``extra`` options; returns the SDF's path."""
    out = tmp_path / f"{name}.sdf"
    args = ["sample", "--num-samples", "2", "--num-atoms", "5", "--steps", "3", "--out", str(out), "--no-progress"]
    assert main([*args, *extra]) == 0
    return out


def test_card_sampler_options_apply_with_the_card_sampler_only(folder, tmp_path):
    _set_card_sampling(folder, options={"eta": 1.0})
    sample = functools.partial(_sample_five_atoms, tmp_path)

    card_default = sample("card")
    assert Chem.SDMolSupplier(str(card_default), sanitize=False)[0].GetProp("sampler") == "dpm-solver eta=1.0"
    same = sample("same", "--sampler", "dpm-solver", "--eta", "1")
    assert card_default.read_bytes() == same.read_bytes()
    ode = sample("ode", "--sampler", "dpm-solver")  # an explicit sampler drops the card's options
    assert Chem.SDMolSupplier(str(ode), sanitize=False)[0].GetProp("sampler") == "dpm-solver"
    api = molgen.load_pretrained("qm9")
    with_card = [Chem.MolToMolBlock(m) for m in api.sample(2, seed=0, num_atoms=5)]
    explicit = [
        Chem.MolToMolBlock(m)
        for m in api.sample(2, seed=0, num_atoms=5, sampler="dpm-solver", sampler_options={"eta": 1.0})
    ]
    ode_api = [Chem.MolToMolBlock(m) for m in api.sample(2, seed=0, num_atoms=5, sampler="dpm-solver")]
    assert with_card == explicit and with_card != ode_api


def test_card_precision_is_the_default_and_fp32_overrides_it(folder, tmp_path):
    _set_card_sampling(folder, precision="bf16")
    sample = functools.partial(_sample_five_atoms, tmp_path)

    card_default = sample("card")
    assert Chem.SDMolSupplier(str(card_default), sanitize=False)[0].GetProp("sampler") == "dpm-solver precision=bf16"
    assert card_default.read_bytes() == sample("same", "--precision", "bf16").read_bytes()
    fp32 = sample("fp32", "--precision", "fp32")
    assert Chem.SDMolSupplier(str(fp32), sanitize=False)[0].GetProp("sampler") == "dpm-solver"
    assert fp32.read_bytes() != card_default.read_bytes()  # bfloat16 products move the coordinates
    api = molgen.load_pretrained("qm9")
    assert api.sampling.precision == "bf16"
    cli_positions = [m.GetConformer().GetPositions() for m in Chem.SDMolSupplier(str(card_default), sanitize=False)]
    api_positions = [m.GetConformer().GetPositions() for m in api.sample(2, seed=0, num_atoms=5)]
    assert all(np.allclose(a, b, atol=1e-4) for a, b in zip(cli_positions, api_positions))
    api_fp32 = [m.GetConformer().GetPositions() for m in api.sample(2, seed=0, num_atoms=5, precision="fp32")]
    fp32_positions = [m.GetConformer().GetPositions() for m in Chem.SDMolSupplier(str(fp32), sanitize=False)]
    assert all(np.allclose(a, b, atol=1e-4) for a, b in zip(fp32_positions, api_fp32))


def test_cli_models_lists_cards_and_refuses_both_sources(folder, tmp_path, capsys):
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert "qm9 (default): tiny untrained test model" in listing and "backbone:" in listing
    with pytest.raises(SystemExit):
        main(["sample", "--model", "qm9", "--ckpt", str(tmp_path / "x.ckpt")])
    assert "not allowed with argument" in capsys.readouterr().err


SHIPPED = pretrained.available_models()
PREDICTORS = sorted(name for name, card in SHIPPED.items() if card.get("kind") == "property_predictor")


@pytest.mark.parametrize("name", sorted(set(SHIPPED) - set(PREDICTORS)))
def test_every_shipped_model_loads_and_samples(name):
    """The models in the package itself (no monkeypatching): a few items, few steps."""
    model = pretrained.load_pretrained(name)
    card = model.card
    assert {"summary", "command", "data", "training", "quality"} <= card.keys(), "incomplete model card"
    options = {"length": (20, 20)} if model.domain.name == "backbones" else {}
    items = model.sample(2, steps=5, **options)
    assert len(items) == 2
    if getattr(model.info, "remove_h", False):  # heavy-atom models: molecules come with hydrogens placed
        assert all(m.GetProp("hydrogens") in ("mmff", "geometric", "not_placed") for m in items)
        assert all(
            any(a.GetAtomicNum() == 1 for a in m.GetAtoms()) for m in items if m.GetProp("hydrogens") != "not_placed"
        )


CONDITIONAL = sorted(
    name
    for name, card in SHIPPED.items()
    if name not in PREDICTORS and card.get("config", {}).get("dataset_info", {}).get("conditions")
)


@pytest.mark.parametrize("name", CONDITIONAL)
def test_every_shipped_conditional_model_samples_a_target_with_guidance(name, tmp_path):
    """``molgen sample --model NAME --condition P=V --guidance 1`` writes the requested value as an SD tag; a
    target outside the card's training range is refused with nothing written."""
    conditions = SHIPPED[name]["config"]["dataset_info"]["conditions"]
    prop, mean = conditions["names"][0], conditions["mean"][0]
    out = tmp_path / "c.sdf"
    args = ["sample", "--model", name, "--num-samples", "2", "--steps", "5", "--no-progress", "--guidance", "1"]
    assert main([*args, "--condition", f"{prop}={mean:.3f}", "--out", str(out)]) == 0
    tags = [float(m.GetProp(f"target_{prop}")) for m in Chem.SDMolSupplier(str(out), removeHs=False, sanitize=False)]
    assert tags == [pytest.approx(mean, abs=1e-3)] * 2
    refused = tmp_path / "r.sdf"
    assert main([*args, "--condition", f"{prop}={conditions['max'][0] * 10 + 1}", "--out", str(refused)]) == 1
    assert not refused.exists()


@pytest.mark.parametrize("model, guide", [(m, g) for m in CONDITIONAL for g in PREDICTORS if g.endswith("-guide")])
def test_a_shipped_guide_steers_a_shipped_conditional_model(model, guide, tmp_path):
    """``molgen sample --model qm9-cond --condition ... --energy-predictor qm9-guide`` runs with the shipped
    pair and records the guidance; the judging predictor is a different network."""
    from molgen.property_prediction import load_property_predictor

    conditions = SHIPPED[model]["config"]["dataset_info"]["conditions"]
    prop, mean = conditions["names"][0], conditions["mean"][0]
    out = tmp_path / "g.sdf"
    args = ["sample", "--model", model, "--num-samples", "2", "--steps", "5", "--no-progress"]
    assert main([*args, "--condition", f"{prop}={mean:.3f}", "--energy-predictor", guide, "--out", str(out)]) == 0
    tags = [m.GetProp("energy_guidance") for m in Chem.SDMolSupplier(str(out), removeHs=False, sanitize=False)]
    assert tags == [f"{guide} scale=0.5 class_scale=0 min_time=0.05 max_time=0.3"] * 2
    judge = load_property_predictor("qm9-property").predictor.state_dict()
    steer = load_property_predictor(guide).predictor.state_dict()
    assert any(not torch.equal(judge[k], steer[k]) for k in judge)


@pytest.mark.parametrize("name", PREDICTORS)
def test_every_shipped_predictor_loads_and_scores_real_qm9_molecules(name):
    """The first 300 molecules of qm9pack's second CSV (DFT geometries and properties): a shipped predictor
    lands within about twice its card's validation MAE, and a generative model's loader refuses it."""
    import csv
    import itertools

    from molgen.molecules.qm9 import locate_qm9pack_csvs, parse_qm9_row
    from molgen.molecules.qm9_properties import PROPERTIES
    from molgen.property_prediction import load_property_predictor

    predictor = load_property_predictor(name)
    assert {"summary", "command", "data", "training", "quality"} <= SHIPPED[name].keys()
    with open(locate_qm9pack_csvs()[1], newline="") as fh:
        rows = list(itertools.islice(csv.DictReader(fh), 300))
    records = [parse_qm9_row(row) for row in rows]
    estimate = predictor.predict([(np.array(r.z), np.array(r.pos)) for r in records])
    tolerance = {"alpha": 1.0, "gap": 400.0}  # Bohr^3, meV: the card's validation MAE is 0.47 and 180
    for prop, limit in tolerance.items():
        spec = PROPERTIES[prop]
        truth = np.array([float(row[spec.column]) * spec.factor for row in rows])
        mae = np.abs(estimate[:, predictor.names.index(prop)] - truth).mean()
        assert mae < limit, (prop, mae)
    with pytest.raises(CheckpointError, match="property predictor"):
        pretrained.load_pretrained(name)
