"""EDM's conditional-generation protocol (`molgen evaluate-conditioning`) end to end on synthetic QM9 caches."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from molgen.cli import main
from molgen.conditioning_benchmark import ProtocolData, agreement, composition_estimate, element_counts
from molgen.molecules.qm9 import QM9Dataset, edm_split
from molgen.molecules.qm9_properties import (
    PROPERTIES,
    PROPERTIES_CACHE_FILENAME,
    PROPERTIES_CACHE_VERSION,
    process_qm9_properties,
)
from molgen.training.module import DiffusionModule
from molgen.training.property_module import PropertyModule
from tests.helpers import DIFFUSION, TINY_MODEL, write_synthetic_qm9_cache


@pytest.fixture(scope="module")
def synthetic_qm9(tmp_path_factory):
    """QM9-shaped caches: molecule i (C-H) has alpha = 40 + i % 61 and gap = 5000 + 13 * (i % 97) meV."""
    cache_dir = tmp_path_factory.mktemp("qm9_properties")
    m = write_synthetic_qm9_cache(cache_dir)
    i = torch.arange(m, dtype=torch.float64)
    values = torch.zeros(m, len(PROPERTIES), dtype=torch.float64)
    values[:, 0], values[:, 1] = 40 + i % 61, 5000 + 13 * (i % 97)
    values[:, 2:] = torch.randn(m, len(PROPERTIES) - 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.save(
        {
            "format_version": PROPERTIES_CACHE_VERSION,
            "names": list(PROPERTIES),
            "index": torch.arange(1, m + 1),
            "values": values,
        },
        cache_dir / PROPERTIES_CACHE_FILENAME,
    )
    return cache_dir


def test_property_cache_reads_the_columns_in_edm_units(tmp_path):
    from molgen.molecules.qm9_properties import load_qm9_properties

    header = ["Index", *(spec.column for spec in PROPERTIES.values())]
    rows = [[3, 13.2, 0.5, -0.3, 0.2, 0.0, 6.5], [1, 80.0, 0.25, -0.25, 0.0, 1.5, 30.0]]
    csv_path = tmp_path / "part.csv"
    csv_path.write_text("\n".join(",".join(map(str, r)) for r in [header, *rows]) + "\n")
    process_qm9_properties(tmp_path, csv_paths=[csv_path])
    values = load_qm9_properties(torch.tensor([1, 3]), ["gap", "alpha", "Cv"], tmp_path)
    torch.testing.assert_close(
        values,
        torch.tensor([[0.25 * 27211.386245988, 80.0, 30.0], [0.5 * 27211.386245988, 13.2, 6.5]], dtype=torch.float64),
    )
    with pytest.raises(ValueError, match="lacks some molecules"):
        load_qm9_properties(torch.tensor([2]), ["gap"], tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text(",".join(header) + "\n1,x,1,1,1,1,1\n")
    with pytest.raises(ValueError, match="malformed property"):
        process_qm9_properties(tmp_path, csv_paths=[bad], force=True)


def test_halves_split_the_training_split_and_serve_normalised_properties(synthetic_qm9):
    first = QM9Dataset("train", half="first", conditions=["gap", "alpha"], cache_dir=synthetic_qm9)
    second = QM9Dataset("train", half="second", conditions=["gap", "alpha"], cache_dir=synthetic_qm9)
    train = edm_split()["train"]
    assert first.qm9_index.tolist() == (train[:50000] + 1).tolist()
    assert second.qm9_index.tolist() == (train[50000:] + 1).tolist()
    item, k = second[7], int(train[50007])
    raw = torch.tensor([5000 + 13 * (k % 97), 40 + k % 61], dtype=torch.float64)
    want = (raw - torch.tensor(second.conditions["mean"])) / torch.tensor(second.conditions["std"])
    torch.testing.assert_close(item.y[0].double(), want, atol=1e-5, rtol=0)
    assert second.conditions["names"] == ["gap", "alpha"] and second.conditions["units"] == ["meV", "Bohr^3"]
    valid = QM9Dataset(
        "valid", subset=10, conditions=["gap", "alpha"], cache_dir=synthetic_qm9, normalization=second.conditions
    )
    assert valid.conditions is second.conditions
    with pytest.raises(ValueError, match="half of the training split"):
        QM9Dataset("valid", half="first", cache_dir=synthetic_qm9)
    with pytest.raises(ValueError, match="unknown QM9 properties"):
        QM9Dataset("train", subset=5, conditions=["polarisability"], cache_dir=synthetic_qm9)


def test_protocol_runs_end_to_end_with_its_baselines(synthetic_qm9, tmp_path, capsys):
    names = ["alpha", "gap"]
    first = QM9Dataset("train", half="first", conditions=names, cache_dir=synthetic_qm9)
    second = QM9Dataset("train", half="second", conditions=names, cache_dir=synthetic_qm9)
    torch.manual_seed(0)
    predictor = PropertyModule(
        model={"name": "property_egnn", "hidden_dim": 8, "num_layers": 1},
        optim={"lr": 1e-3},
        dataset_info=first.info("qm9").to_dict(),
    )
    generator = DiffusionModule(TINY_MODEL, DIFFUSION, {"lr": 1e-3}, second.info("qm9").to_dict())
    paths = {}
    for name, module in (("predictor", predictor), ("generator", generator)):
        paths[name] = tmp_path / f"{name}.ckpt"
        torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, paths[name])
    out = tmp_path / "report.json"
    args = ["--predictor", str(paths["predictor"]), "--ckpt", str(paths["generator"]), "--num-samples", "200"]
    args += ["--guidance", "0", "2", "--sampler", "ddim", "--steps", "2", "--cache-dir", str(synthetic_qm9)]
    assert main(["evaluate-conditioning", *args, "--eta", "0.5", "--json", str(out), "--no-progress"]) == 0
    report = json.loads(out.read_text())
    assert report["sampler"] == "ddim eta=0.5" and report["steps"] == 2  # the sampler options of `molgen sample`
    assert report["properties"] == names and report["units"] == {"alpha": "Bohr^3", "gap": "meV"}
    assert [row["guidance"] for row in report["generated"]["alpha"]] == [0.0, 2.0]
    # every molecule has 2 atoms: the N_atoms baseline is the distance of the drawn values to the first half's median
    rng = np.random.default_rng(0)
    pick = rng.choice(len(second), size=200, replace=False)
    k = edm_split()["train"][50000:][pick]
    alpha = 40 + k % 61
    median = np.median(40 + edm_split()["train"][:50000] % 61)
    assert report["baselines"]["n_atoms"]["alpha"] == pytest.approx(np.abs(median - alpha).mean(), rel=1e-6)
    assert report["baselines"]["random"]["alpha"] > 0 and report["baselines"]["qm9"]["gap"] > 0
    table = capsys.readouterr().out
    assert "EDM (published)" in table and "| model, guidance 2 |" in table
    assert main(["evaluate-conditioning", *args[:4], "--property", "mu", "--cache-dir", str(synthetic_qm9)]) == 1
    assert "both the model and the predictor must know ['mu']" in capsys.readouterr().err
    assert main(["evaluate-conditioning", *args, "--noise-scale", "0.5"]) == 1
    assert "--noise-scale is an option of --sampler ddpm, not ddim" in capsys.readouterr().err
    assert main(["evaluate-conditioning", *args, "--refine-time", "2"]) == 1
    assert "--refine-time must be in (0, 1)" in capsys.readouterr().err


def test_agreement_separates_bias_from_what_the_atom_count_tells():
    """Estimates that follow the target's deviation from its size's median (at half amplitude) have r = 1 and a
    bias towards the median; ones that go the other way have r = -1."""
    sizes = np.array([5, 5, 6, 6, 6])
    medians = {5: np.array([10.0]), 6: np.array([20.0])}
    target = np.array([[9.0], [12.0], [18.0], [21.0], [24.0]])
    data = ProtocolData([], target, sizes, ["alpha"], medians)
    median = np.array([10.0, 10.0, 20.0, 20.0, 20.0])
    half_way = median + 0.5 * (target[:, 0] - median)
    result = agreement(half_way, data, "alpha")
    assert result["mae"] == pytest.approx(np.abs(half_way - target[:, 0]).mean())
    assert result["bias"] == pytest.approx((half_way - target[:, 0]).mean())
    assert result["beyond_size_correlation"] == pytest.approx(1.0)
    anti = agreement(median - (target[:, 0] - median) - 1.0, data, "alpha")  # the wrong way, and biased low
    assert anti["beyond_size_correlation"] == pytest.approx(-1.0) and anti["bias"] < -1.0


def test_the_composition_reading_counts_elements_and_applies_the_fit():
    assert element_counts([np.array([6, 1, 1, 1, 1]), np.array([8, 7, 9])]).tolist() == [
        [4, 1, 0, 0, 0, 1],
        [0, 0, 1, 1, 1, 1],
    ]
    rng = np.random.default_rng(0)
    molecules = [rng.choice([1, 6, 7, 8, 9], size=rng.integers(3, 12)) for _ in range(40)]
    truth = element_counts(molecules) @ np.array([[0.5], [3.0], [2.5], [2.0], [1.0], [4.0]])  # linear in the counts
    coefficients = np.linalg.lstsq(element_counts(molecules), truth, rcond=None)[0]
    data = ProtocolData([], truth, np.array([len(m) for m in molecules]), ["alpha"], {}, coefficients)
    np.testing.assert_allclose(composition_estimate(molecules, data), truth)


def test_energy_guidance_rows_report_their_quality_and_a_guide_with_the_judges_weights_is_refused(
    synthetic_qm9, tmp_path, capsys
):
    from tests.diffusion.test_conditioning import tiny_conditional_module

    names = ["alpha", "gap"]
    paths = {}
    for name, half, seed in (("judge", "first", 0), ("guide", "second", 1)):
        info = QM9Dataset("train", half=half, conditions=names, cache_dir=synthetic_qm9).info("qm9").to_dict()
        torch.manual_seed(seed)
        module = PropertyModule(
            model={"name": "property_egnn", "hidden_dim": 8, "num_layers": 1}, optim={}, dataset_info=info
        )
        paths[name] = tmp_path / f"{name}.ckpt"
        torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, paths[name])
    generator = tiny_conditional_module()
    paths["generator"] = tmp_path / "generator.ckpt"
    torch.save({"hyper_parameters": dict(generator.hparams), "state_dict": generator.state_dict()}, paths["generator"])
    out = tmp_path / "report.json"
    args = ["evaluate-conditioning", "--predictor", str(paths["judge"]), "--ckpt", str(paths["generator"])]
    args += ["--property", "alpha", "--num-samples", "40", "--sampler", "ddim", "--steps", "2"]
    args += ["--cache-dir", str(synthetic_qm9), "--no-progress"]
    guide = ["--energy-predictor", str(paths["guide"]), "--energy-scale", "0", "0.2", "--energy-max-time", "1"]
    assert main([*args, *guide, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = report["generated"]["alpha"]
    assert [(row["energy_scale"], row["energy_class_scale"]) for row in rows] == [(0.0, 0.0), (0.2, 0.0)]
    assert rows[0]["mae"] != rows[1]["mae"]  # the guide moved the molecules the judge scores
    assert all(0 <= row["rdkit_validity"] <= 1 and 0 <= row["edm_mol_stability"] <= 1 for row in rows)
    assert all(np.isfinite(row["composition_mae"]) and np.isfinite(row["composition_bias"]) for row in rows)
    assert report["baselines"]["composition"]["alpha"] > 0
    assert report["energy_predictor"] == str(paths["guide"])
    assert "| model, guidance 0, energy 0.2 (classes 0) |" in capsys.readouterr().out
    assert main([*args, "--energy-predictor", str(paths["judge"])]) == 1
    assert "has the judging predictor's weights" in capsys.readouterr().err
    assert main([*args, "--energy-class-scale", "1"]) == 1
    assert "--energy-class-scale applies only with --energy-predictor" in capsys.readouterr().err
