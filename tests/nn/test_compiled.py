"""Tests for molgen.nn.compiled.CompiledDenoiser."""

import shutil
import warnings

import pytest
import torch

from molgen.nn.compiled import CompiledDenoiser
from tests.models.test_egnn_denoiser import make_inputs, make_model


def test_falls_back_to_eager_with_one_warning(monkeypatch):
    def broken_compile(fn, **kwargs):
        def run(*args, **kw):
            raise RuntimeError("no C++ compiler found\nlong backend trace")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    model = make_model().float().eval()
    wrapped = CompiledDenoiser(model)
    inputs = make_inputs(sizes=[4, 6], dtype=torch.float32)
    with pytest.warns(UserWarning, match=r"torch.compile failed \(no C\+\+ compiler found\); running the denoiser"):
        got = wrapped(*inputs)
    want = model(*inputs)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert wrapped.failed
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wrapped(*inputs)  # no second warning, no second compile attempt


def test_weights_are_registered_once():
    model = make_model()
    wrapped = CompiledDenoiser(model)
    assert list(wrapped.state_dict()) == [f"inner.{key}" for key in model.state_dict()]
    assert sum(p.numel() for p in wrapped.parameters()) == sum(p.numel() for p in model.parameters())


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None, reason="inductor needs a C++ compiler")
def test_compiled_matches_eager_across_batch_shapes():
    model = make_model().float().eval()
    wrapped = CompiledDenoiser(model)
    with torch.inference_mode():
        for sizes in ([4, 6], [3, 5, 7]):  # a second shape must not fail (dynamic=True)
            inputs = make_inputs(sizes=sizes, dtype=torch.float32)
            for a, b in zip(wrapped(*inputs), model(*inputs)):
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert not wrapped.failed
