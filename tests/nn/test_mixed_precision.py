"""Tests for molgen.nn.mixed_precision.MixedPrecisionDenoiser and `molgen sample --precision bf16`."""

import subprocess
import sys

import pytest
import torch
from rdkit import Chem

from molgen.nn.compiled import CompiledDenoiser
from molgen.nn.mixed_precision import MixedPrecisionDenoiser, runs_in_bf16
from molgen.sampling import SamplingConfig
from tests.models.test_egnn_denoiser import amplify_coordinate_updates, make_inputs, make_model


def test_runs_in_bfloat16_and_returns_float32():
    model = amplify_coordinate_updates(make_model().float().eval())
    inputs = make_inputs(sizes=[7, 9], dtype=torch.float32)
    want = model(*inputs)
    got = MixedPrecisionDenoiser(model)(*inputs)
    assert isinstance(got, tuple) and len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == torch.float32 and g.shape == w.shape
        # bfloat16 keeps 8 bits of mantissa: close to float32, but not equal (else autocast did nothing)
        assert not torch.equal(g, w)
        assert (g - w).norm() <= 0.02 * w.norm()


def test_forwards_flags_and_nests():
    model = make_model(self_conditioning=True)
    wrapped = CompiledDenoiser(MixedPrecisionDenoiser(model))
    assert wrapped.self_conditioning and not wrapped.fixed_part_input
    assert sum(p.numel() for p in wrapped.parameters()) == sum(p.numel() for p in model.parameters())


def test_sampling_config_wraps_the_network_once_for_bf16():
    model = make_model()
    assert SamplingConfig("ddpm", 5).network(model) is model
    bf16 = SamplingConfig("ddpm", 5, precision="bf16")
    wrapped = bf16.network(model)
    assert isinstance(wrapped, MixedPrecisionDenoiser) and wrapped.inner is model
    compiled = CompiledDenoiser(MixedPrecisionDenoiser(model))
    assert runs_in_bf16(compiled) and bf16.network(compiled) is compiled and not runs_in_bf16(model)
    assert bf16.updated(steps=7).precision == "bf16" and bf16.updated(precision="fp32").precision == "fp32"
    assert SamplingConfig.from_card({"sampler": "ddim", "steps": 4, "precision": "bf16"}).precision == "bf16"
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16"):
        SamplingConfig("ddpm", 5, precision="fp16")


def test_cli_samples_with_bf16(tmp_path):
    out = tmp_path / "bf16.sdf"
    args = ["sample", "--model", "qm9", "--num-samples", "4", "--steps", "6", "--out", str(out), "--no-progress"]
    done = subprocess.run(
        [sys.executable, "-m", "molgen.cli", *args, "--precision", "bf16"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    mols = [m for m in Chem.SDMolSupplier(str(out), removeHs=False, sanitize=False)]
    assert len(mols) == 4 and all(m is not None for m in mols)
    assert all(torch.isfinite(torch.tensor(m.GetConformer().GetPositions())).all() for m in mols)
    bad = subprocess.run(
        [sys.executable, "-m", "molgen.cli", *args, "--precision", "fp16"], capture_output=True, text=True
    )
    assert bad.returncode != 0 and "--precision" in bad.stderr
