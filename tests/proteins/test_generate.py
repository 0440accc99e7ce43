"""Tests for molgen.proteins.generate (backbone sampling) with a tiny untrained model."""

import numpy as np
import pytest
import torch

from molgen.checkpoint import load_checkpoint
from molgen.generation import merge_shards
from molgen.proteins.generate import backbone_features, generate_backbones, parse_length
from tests.helpers import save_tiny_checkpoint


@pytest.fixture
def model(tmp_path):
    return load_checkpoint(save_tiny_checkpoint(tmp_path / "bb.ckpt", domain="backbone"))


def test_parse_length():
    assert parse_length("100") == (100, 100)
    assert parse_length(" 60-120 ") == (60, 120)
    for bad in ["", "abc", "120-60", "1", "5-", "0-10", "10000"]:
        with pytest.raises(ValueError, match="length"):
            parse_length(bad)


def test_backbone_features_are_residue_major_one_hot():
    h = backbone_features(torch.tensor([2, 1]))
    assert h.shape == (12, 4)
    assert torch.equal(h.argmax(dim=1), torch.tensor([0, 1, 2, 3] * 3))


def test_generates_centred_backbones_of_requested_lengths(model):
    backbones = generate_backbones(model, 5, length=(7, 9), steps=4, batch_size=2, progress=False)
    assert len(backbones) == 5
    assert all(b.shape[1:] == (4, 3) and 7 <= len(b) <= 9 for b in backbones)
    assert len({len(b) for b in backbones}) > 1, "lengths are not drawn from the range"
    for b in backbones:
        assert b.dtype == np.float64 and np.isfinite(b).all()
        np.testing.assert_allclose(b.reshape(-1, 3).mean(axis=0), 0.0, atol=1e-5 * np.abs(b).max())


def test_lengths_from_histogram_and_seeding(model):
    a = generate_backbones(model, 4, steps=3, batch_size=3, seed=1, progress=False)
    b = generate_backbones(model, 4, steps=3, batch_size=3, seed=1, progress=False)
    c = generate_backbones(model, 4, steps=3, batch_size=3, seed=2, progress=False)
    assert {len(x) for x in a} <= {6, 8}, "lengths outside the checkpoint's histogram"
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(x.shape == y.shape and np.allclose(x, y) for x, y in zip(a, c))


def test_sharded_generation_matches_single_process(model):
    kwargs = dict(length=(6, 8), steps=3, batch_size=2, seed=4, progress=False)
    whole = generate_backbones(model, 5, **kwargs)
    shards = [generate_backbones(model, 5, shard=(r, 2), **kwargs) for r in range(2)]
    assert all(np.array_equal(x, y) for x, y in zip(whole, merge_shards(shards, batch_size=2)))


def test_rejects_molecule_checkpoints_and_bad_arguments(model, tmp_path):
    molecules = load_checkpoint(save_tiny_checkpoint(tmp_path / "mol.ckpt"))
    with pytest.raises(ValueError, match="not protein backbones"):
        generate_backbones(molecules, 2, length=(5, 5), steps=2, progress=False)
    with pytest.raises(ValueError, match="num_samples"):
        generate_backbones(model, 0, steps=2, progress=False)
