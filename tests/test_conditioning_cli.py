"""Target properties for conditional models: training statistics, p(N | c), target checks and files
(molgen.targets), QM9 properties on the datasets, and `molgen sample --condition` end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rdkit import Chem

from molgen.cli import main
from molgen.targets import (
    SIZE_BINS,
    conditions_info,
    denormalize,
    normalize,
    read_target_file,
    requested_targets,
    sample_sizes_given_targets,
    target_tensors,
)
from tests.diffusion.test_conditioning import tiny_conditional_module


def toy_conditions(seed=0, m=4000):
    """Property 0 grows with the size (3..8 nodes), property 1 is noise."""
    gen = torch.Generator().manual_seed(seed)
    sizes = torch.randint(3, 9, (m,), generator=gen)
    values = torch.stack([10.0 * sizes + torch.randn(m, generator=gen), torch.randn(m, generator=gen)], dim=1)
    return conditions_info(["a", "b"], ["u", "v"], values.double(), sizes), values.double(), sizes


def test_statistics_normalisation_and_range():
    info, values, _ = toy_conditions()
    torch.testing.assert_close(torch.tensor(info["mean"], dtype=torch.float64), values.mean(0))
    assert info["min"] == values.min(0).values.tolist() and info["max"] == values.max(0).values.tolist()
    assert len(info["size_bins"][0]["edges"]) == SIZE_BINS + 1
    assert sum(map(sum, info["size_bins"][0]["counts"])) == len(values)
    torch.testing.assert_close(denormalize(normalize(values, info), info), values)
    torch.testing.assert_close(normalize(values, info).std(0), torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="without spread"):
        conditions_info(["a"], ["u"], torch.ones(5, 1), torch.full((5,), 3))
    with pytest.raises(ValueError, match="finite"):
        conditions_info(["a"], ["u"], torch.tensor([[1.0], [float("nan")]]), torch.tensor([3, 4]))


def test_sizes_given_one_property_follow_the_training_frequencies_in_its_bin():
    """For one property p(N | c) is the empirical frequency of each size among training graphs in c's bin."""
    info, values, sizes = toy_conditions()
    edges = torch.tensor(info["size_bins"][0]["edges"])
    target = 55.0  # between sizes 5 and 6
    k = int(torch.bucketize(torch.tensor([target], dtype=torch.float64), edges[1:-1], right=True))
    in_bin = (values[:, 0] >= edges[k]) & (values[:, 0] < edges[k + 1])
    expected = torch.bincount(sizes[in_bin], minlength=9).double()
    expected = (expected + 0.5 * (torch.bincount(sizes, minlength=9) > 0)) / (expected.sum())
    histogram = torch.bincount(sizes).tolist()
    vals, mask = target_tensors([{"a": target}], info)
    draws = sample_sizes_given_targets(
        info, histogram, vals.expand(20000, -1), mask.expand(20000, -1), torch.Generator().manual_seed(0)
    )
    observed = torch.bincount(draws, minlength=9).double() / 20000
    assert set(draws.unique().tolist()) <= set(sizes.unique().tolist())
    torch.testing.assert_close(observed, expected / expected.sum(), atol=0.015, rtol=0)
    # a property unrelated to the size leaves p(N) about as it is; none given is p(N) exactly in distribution
    free = sample_sizes_given_targets(
        info, histogram, torch.zeros(20000, 2), torch.zeros(20000, 2, dtype=bool), torch.Generator().manual_seed(1)
    )
    prior = torch.tensor(histogram, dtype=torch.float64) / len(sizes)
    torch.testing.assert_close(torch.bincount(free, minlength=9).double() / 20000, prior, atol=0.015, rtol=0)


def test_target_checks_name_the_problem():
    info, _, _ = toy_conditions()
    values, mask = target_tensors([{"a": 55.0}, {}, {"b": 0.0, "a": 40.0}], info)
    assert mask.tolist() == [[True, False], [False, False], [True, True]]
    assert values[1].abs().sum() == 0
    with pytest.raises(ValueError, match="not on 'c'"):
        target_tensors([{"c": 1.0}], info)
    with pytest.raises(ValueError, match=r"outside the training range \["):
        target_tensors([{"a": 1000.0}], info)
    with pytest.raises(ValueError, match="outside the training range"):
        target_tensors([{"a": float("nan")}], info)
    with pytest.raises(ValueError, match="not trained with conditions"):
        target_tensors([{"a": 1.0}], None)


def test_target_files_and_options(tmp_path):
    good = tmp_path / "targets.csv"
    good.write_text("alpha,gap,num_atoms\n80.5,,17\n,6800,12\n")
    assert read_target_file(good) == [{"alpha": 80.5, "num_atoms": 17.0}, {"gap": 6800.0, "num_atoms": 12.0}]
    rows, sizes, count = requested_targets(None, good, None)
    assert rows == [{"alpha": 80.5}, {"gap": 6800.0}] and sizes.tolist() == [17, 12] and count == 2
    rows, sizes, count = requested_targets(["alpha=70", "gap=7000"], None, 3)
    assert rows == [{"alpha": 70.0, "gap": 7000.0}] * 3 and sizes is None and count == 3
    assert requested_targets(None, None, None) == ([], None, 100)
    cases = {
        "": "empty target file",
        "alpha\n": "no target rows",
        "alpha,gap\n1\n": "1 cells for 2 columns",
        "alpha\nabc\n": "'abc' is not a number",
        "alpha,num_atoms\n80,5\n81,\n": "whole number",
        "alpha,num_atoms\n80,5.5\n": "whole number",
    }
    for text, message in cases.items():
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        with pytest.raises(ValueError, match=message):
            requested_targets(None, bad, None)
    with pytest.raises(ValueError, match="--num-samples 5 but"):
        requested_targets(None, good, 5)
    with pytest.raises(ValueError, match="NAME=VALUE"):
        requested_targets(["alpha:3"], None, None)
    with pytest.raises(ValueError, match="cannot read"):
        requested_targets(None, tmp_path / "missing.csv", None)


@pytest.fixture
def conditional_ckpt(tmp_path):
    module = tiny_conditional_module()
    path = tmp_path / "cond.ckpt"
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    return path


def sample(ckpt, out, *extra):
    return main(["sample", "--ckpt", str(ckpt), "--out", str(out), "--steps", "3", "--no-progress", *extra])


def test_sample_with_targets_records_them_and_refuses_bad_ones(conditional_ckpt, tmp_path, capsys):
    out = tmp_path / "cond.sdf"
    assert sample(conditional_ckpt, out, "--condition", "alpha=80.5", "--guidance", "1.5", "--num-samples", "3") == 0
    mols = [m for m in Chem.SDMolSupplier(str(out), removeHs=False, sanitize=False)]
    assert len(mols) == 3
    assert all(m.GetProp("target_alpha") == "80.5" and not m.HasProp("target_gap") for m in mols)
    assert "guidance=1.5" in mols[0].GetProp("sampler")
    file = tmp_path / "targets.csv"
    file.write_text("gap,num_atoms\n7000,4\n5000,5\n")
    out2 = tmp_path / "file.sdf"
    assert sample(conditional_ckpt, out2, "--condition-file", str(file)) == 0
    mols = [m for m in Chem.SDMolSupplier(str(out2), removeHs=False, sanitize=False)]
    assert [m.GetNumAtoms() for m in mols] == [4, 5] and [m.GetProp("target_gap") for m in mols] == ["7000.0", "5000.0"]
    capsys.readouterr()
    assert main(["sample", "--ckpt", str(conditional_ckpt), "--out", str(tmp_path / "free.sdf"), "--steps", "2"]) == 0
    assert (
        "this model takes --condition (alpha in [40, 120] Bohr^3, gap in [2800, 1.05e+04] meV)"
        in capsys.readouterr().err
    )
    refused = {
        ("--condition", "mu=1"): "not on 'mu'",
        ("--condition", "alpha=500"): "outside the training range [40, 120] Bohr^3",
        ("--condition", "alpha=nan"): "outside the training range",
        ("--guidance", "2"): "--guidance needs targets",
        ("--condition", "alpha=80", "--guidance", "-1"): "--guidance must be a number >= 0",
        ("--condition-file", str(file), "--num-atoms", "5"): "exclude each other",
    }
    for args, message in refused.items():
        bad = tmp_path / "refused.sdf"
        assert sample(conditional_ckpt, bad, *args) == 1
        assert message in capsys.readouterr().err and not bad.exists()


def test_unconditional_models_refuse_targets(tmp_path, capsys):
    from tests.joint_helpers import save_tiny_joint_checkpoint

    ckpt = save_tiny_joint_checkpoint(tmp_path / "plain.ckpt")
    assert sample(ckpt, tmp_path / "x.sdf", "--condition", "alpha=80") == 1
    assert "not trained with conditions" in capsys.readouterr().err


def save_predictor(path, names=("alpha", "gap")):
    """A tiny untrained property predictor of ``names`` (statistics of the conditional test model's)."""
    from molgen.training.property_module import PropertyModule
    from tests.diffusion.test_conditioning import conditional_info

    info = conditional_info()
    info["conditions"] = {key: value[: len(names)] for key, value in info["conditions"].items() if key != "size_bins"}
    info["conditions"]["names"] = list(names)
    torch.manual_seed(1)
    module = PropertyModule(
        model={"name": "property_egnn", "hidden_dim": 8, "num_layers": 1}, optim={}, dataset_info=info
    )
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    return path


def test_sample_with_energy_guidance_records_it_and_refuses_bad_requests(conditional_ckpt, tmp_path, capsys):
    predictor = save_predictor(tmp_path / "guide.ckpt")
    out = tmp_path / "guided.sdf"
    plain = tmp_path / "plain.sdf"
    args = ("--condition", "alpha=80.5", "--num-samples", "3", "--num-atoms", "5", "--sampler", "ddim", "--eta", "1")
    assert sample(conditional_ckpt, plain, *args) == 0
    guide = ("--energy-predictor", str(predictor), "--energy-scale", "0.5", "--energy-max-time", "1")
    assert sample(conditional_ckpt, out, *args, *guide) == 0
    mols = [m for m in Chem.SDMolSupplier(str(out), removeHs=False, sanitize=False)]
    unguided = [m for m in Chem.SDMolSupplier(str(plain), removeHs=False, sanitize=False)]
    label = f"{predictor} scale=0.5 class_scale=0 min_time=0.05 max_time=1"
    assert len(mols) == 3 and mols[0].GetProp("energy_guidance") == label
    assert not unguided[0].HasProp("energy_guidance")
    guided_pos, plain_pos = ([m.GetConformer().GetPositions() for m in group] for group in (mols, unguided))
    assert all(np.isfinite(p).all() for p in guided_pos)
    assert any(not np.allclose(a, b) for a, b in zip(guided_pos, plain_pos))  # the same seed, steered elsewhere
    through = tmp_path / "through.sdf"
    assert sample(conditional_ckpt, through, *args, *guide, "--energy-through-network", "--energy-max-step", "0.1") == 0
    mols = [m for m in Chem.SDMolSupplier(str(through), removeHs=False, sanitize=False)]
    assert mols[0].GetProp("energy_guidance") == label + " max_step=0.1 through_network"
    assert all(np.isfinite(m.GetConformer().GetPositions()).all() for m in mols)
    refused = {
        ("--energy-through-network",): "--energy-through-network applies only with --energy-predictor",
        ("--energy-scale", "0.1"): "--energy-scale applies only with --energy-predictor",
        ("--energy-predictor", str(predictor)): "--energy-predictor needs targets",
        (*args, "--energy-predictor", str(tmp_path / "missing.ckpt")): "missing.ckpt",
        (*args, "--energy-predictor", str(save_predictor(tmp_path / "mu.ckpt", ["mu"]))): "estimates mu; the model",
        (*args, "--energy-predictor", str(predictor), "--energy-scale", "-1"): "finite numbers >= 0",
        (*args, "--energy-predictor", str(predictor), "--energy-max-time", "2"): "--energy-max-time must be in",
        (*args, "--energy-predictor", str(predictor), "--energy-max-step", "0"): "--energy-max-step must be a finite",
        (*args, "--energy-predictor", str(predictor), "--energy-min-time", "0.5"): "min_time must be in [0, max_time",
    }
    for extra, message in refused.items():
        bad = tmp_path / "refused.sdf"
        assert sample(conditional_ckpt, bad, *extra) == 1
        assert message in capsys.readouterr().err and not bad.exists()
