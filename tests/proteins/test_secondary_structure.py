"""Fold conditioning: secondary-structure labels, how `molgen sample` takes them and how samples follow them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from molgen.checkpoint import load_checkpoint
from molgen.cli import main
from molgen.models import build_model
from molgen.proteins.geometry import ideal_helix, ideal_strand
from molgen.proteins.pdb import read_backbones
from molgen.proteins.secondary_structure import (
    UNKNOWN,
    dssp_labels,
    format_labels,
    is_label_string,
    label_agreement,
    label_features,
    label_remarks,
    parse_labels,
    requested_labels,
)
from molgen.sampling import SamplingConfig, generate
from tests.helpers import DIFFUSION, save_tiny_ca_checkpoint, save_tiny_checkpoint, save_tiny_internal_checkpoint


def test_parse_and_format_labels():
    labels = parse_labels(" hhE-lc?. \n")
    assert labels.tolist() == [0, 0, 1, 2, 2, 2, UNKNOWN, UNKNOWN]
    assert format_labels(labels) == "HHE---??"
    assert parse_labels(format_labels(labels)).tolist() == labels.tolist()
    with pytest.raises(ValueError, match="character 'X' at position 3"):
        parse_labels("HHX")
    with pytest.raises(ValueError, match="must not be empty"):
        parse_labels("  ")


def test_label_features_are_one_hot_with_zero_rows_for_free_residues():
    features = label_features(np.array([0, 1, 2, UNKNOWN]))
    torch.testing.assert_close(features, torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]]))


def test_dssp_labels_of_an_ideal_helix():
    labels = dssp_labels(ideal_helix(20))
    assert len(labels) == 20 and np.mean(labels == 0) > 0.8
    assert not np.any(dssp_labels(ideal_strand(20)) == 1), "a lone strand has no partner: DSSP reads no sheet"


def test_requested_labels_from_a_string_or_a_file(tmp_path):
    labels, count = requested_labels("HH--", None, 3)
    assert count == 3 and [format_labels(x) for x in labels] == ["HH--"] * 3
    assert requested_labels("HH", None, None)[1] == 100
    assert requested_labels(None, None, 7) == (None, 7)
    path = tmp_path / "ss.txt"
    path.write_text("# two chains\nHHHH\n\nEE--EE\n")
    labels, count = requested_labels(None, path, None)
    assert count == 2 and [format_labels(x) for x in labels] == ["HHHH", "EE--EE"]
    with pytest.raises(ValueError, match="--num-samples 3 but .* has 2 secondary-structure strings"):
        requested_labels(None, path, 3)
    with pytest.raises(ValueError, match="not both"):
        requested_labels("HH", path, None)
    path.write_text("HHHH\nHHZ\n")
    with pytest.raises(ValueError, match="line 2: .*character 'Z'"):
        requested_labels(None, path, None)
    path.write_text("# nothing\n")
    with pytest.raises(ValueError, match="holds no secondary-structure string"):
        requested_labels(None, path, None)
    with pytest.raises(ValueError, match="cannot read"):
        requested_labels(None, tmp_path / "missing.txt", None)


def test_label_agreement_scores_each_state():
    helix = ideal_helix(20)
    got = dssp_labels(helix)
    report = label_agreement([helix], [np.zeros(20, dtype=np.int64)])
    assert report["helix_match"] == pytest.approx(np.mean(got == 0)) and report["helix_match"] > 0.8
    assert math.isnan(report["strand_match"]) and math.isnan(report["coil_match"])
    asked = np.full(20, UNKNOWN)
    asked[:10] = 1  # strand asked where there is helix
    report = label_agreement([helix, np.full((5, 4, 3), np.nan)], [asked, np.zeros(5, dtype=np.int64)])
    assert report["match"] == 0.0 and report["strand_match"] == 0.0 and math.isnan(report["helix_match"])


def test_label_remarks_fit_pdb_lines():
    labels = parse_labels("H" * 70 + "-" * 5 + "E" * 20)
    remarks = label_remarks(labels)
    assert all(len(line) <= 69 for line in remarks) and len(remarks) == 4
    assert remarks[0] == "secondary structure 1-30 " + "H" * 30
    assert "".join(line.split()[-1] for line in remarks) == format_labels(labels)


def _assert_hidden_labels_are_none_and_given_ones_steer(model, sampling, label: int) -> list[np.ndarray]:
    """Two chains of 8 sampled without labels, with every label hidden (the same samples) and all asked to be
    ``label`` (other samples); returns the asked labels."""
    free, asked = [np.full(8, UNKNOWN)] * 2, [np.full(8, label, dtype=np.int64)] * 2
    plain = generate(model, 2, sampling, seed=0, progress=False, length=(8, 8))
    hidden = generate(model, 2, sampling, seed=0, progress=False, labels=free)
    steered = generate(model, 2, sampling, seed=0, progress=False, labels=asked)
    for a, b in zip(plain, hidden):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert not np.allclose(steered[0], hidden[0], atol=1e-3)
    return asked


def test_a_fold_conditioned_model_sees_its_labels(tmp_path):
    """A labelled checkpoint builds a network with a label map; labels change its samples, hidden labels
    give the samples of no labels; a model without labels, or a diffusing one, refuses them."""
    model = load_checkpoint(save_tiny_ca_checkpoint(tmp_path / "ss.ckpt", secondary_structure=True))
    network = model.denoiser.net if hasattr(model.denoiser, "net") else model.denoiser
    with torch.no_grad():
        network.label_embedding.weight.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(0))
    sampling = SamplingConfig("ddpm", 4)
    helix = _assert_hidden_labels_are_none_and_given_ones_steer(model, sampling, label=0)
    with pytest.raises(ValueError, match="exclude a size request"):
        generate(model, 2, sampling, progress=False, labels=helix, length=(8, 8))
    unlabelled = load_checkpoint(save_tiny_ca_checkpoint(tmp_path / "plain.ckpt"))
    with pytest.raises(ValueError, match="trained without secondary-structure labels"):
        generate(unlabelled, 2, sampling, progress=False, labels=helix)
    with pytest.raises(ValueError, match="set diffuse_features=false"):
        build_model({"name": "egnn", "num_layers": 1}, {**DIFFUSION, "diffuse_features": True}, model.info)
    with pytest.raises(ValueError, match="takes no node labels"):
        build_model({"name": "e3nn"}, {**DIFFUSION, "diffuse_features": False}, model.info)


def _sample(ckpt, out, *extra):
    return main(["sample", "--ckpt", str(ckpt), "--out", str(out), "--steps", "3", "--no-progress", *extra])


@pytest.mark.parametrize("saver", [save_tiny_ca_checkpoint, save_tiny_internal_checkpoint], ids=["ca", "angles"])
def test_sample_cli_with_secondary_structure(tmp_path, capsys, saver):
    ckpt = saver(tmp_path / "ss.ckpt", secondary_structure=True)
    out = tmp_path / "designs"
    assert _sample(ckpt, out, "--secondary-structure", "HHHHHH--EEE", "--num-samples", "2") == 0
    printed = capsys.readouterr().out
    assert "secondary structure as requested:" in printed and "wrote 2 backbones of 11-11 residues" in printed
    for path in sorted(out.glob("*.pdb")):
        assert "REMARK  99 secondary structure 1-11 HHHHHH--EEE" in path.read_text()
        (chain,) = read_backbones(path)[0]
        assert len(chain.coords) == 11
    strings = tmp_path / "ss.txt"
    strings.write_text("HHHHHHHH\n????????????\nEEEE--EEEE\n")
    assert _sample(ckpt, tmp_path / "three", "--secondary-structure-file", str(strings)) == 0
    lengths = sorted(len(read_backbones(p)[0][0].coords) for p in (tmp_path / "three").glob("*.pdb"))
    assert lengths == [8, 10, 12]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--secondary-structure", "HHQ"], "character 'Q' at position 3"),
        (["--secondary-structure", "HHHH", "--length", "10"], "excludes --length"),
        (["--secondary-structure", "HHHH", "--secondary-structure-file", "x.txt"], "not allowed with argument"),
    ],
)
def test_sample_cli_secondary_structure_errors(tmp_path, capsys, args, message):
    ckpt = save_tiny_ca_checkpoint(tmp_path / "ss.ckpt", secondary_structure=True)
    with pytest.raises(SystemExit) if "not allowed" in message else _no_exit():
        assert _sample(ckpt, tmp_path / "designs", *args) != 0
    assert message in capsys.readouterr().err
    assert not (tmp_path / "designs").exists()


def test_models_without_labels_refuse_secondary_structure(tmp_path, capsys):
    for ckpt in (
        save_tiny_ca_checkpoint(tmp_path / "plain.ckpt"),
        save_tiny_internal_checkpoint(tmp_path / "angles.ckpt"),
        save_tiny_checkpoint(tmp_path / "mol.ckpt"),
    ):
        assert _sample(ckpt, tmp_path / "designs", "--secondary-structure", "HHHH") == 1
        assert "needs a fold-conditioned backbone model" in capsys.readouterr().err
        assert not (tmp_path / "designs").exists()


class _no_exit:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_the_label_maps_learn_at_the_condition_rate(tmp_path):
    """A v-predicting model wraps its network: the label maps are found at any depth."""
    from molgen.models.egnn_denoiser import EGNNDenoiser
    from molgen.training.module import optimizer_groups

    network = EGNNDenoiser(4, hidden_dim=8, num_layers=2, num_node_labels=3, condition_layers=True)
    wrapped = torch.nn.Module()
    wrapped.net = network
    groups = optimizer_groups(wrapped, {"lr": 1e-3, "condition_lr_scale": 5.0})
    assert groups[1]["lr"] == 5e-3
    assert groups[1]["params"] == [network.label_embedding.weight, network.label_layer_embedding.weight]
    assert sum(len(g["params"]) for g in groups) == len(list(network.parameters()))


def test_sample_cli_takes_a_string_that_starts_with_coil(tmp_path, capsys):
    """argparse would read ``----HHHH`` as an option; the CLI attaches it to ``--secondary-structure``."""
    ckpt = save_tiny_ca_checkpoint(tmp_path / "ss.ckpt", secondary_structure=True)
    out = tmp_path / "designs"
    assert _sample(ckpt, out, "--secondary-structure", "----HHHH--", "--num-samples", "1") == 0
    assert "REMARK  99 secondary structure 1-10 ----HHHH--" in (out / "backbone_0000.pdb").read_text()
    printed = capsys.readouterr().out
    assert "(helix " in printed and "strand" not in printed, "a state not asked for is left out"
    assert is_label_string("--HhE?.") and not is_label_string("--length") and not is_label_string("")


def test_a_fold_conditioned_angle_model_takes_its_labels_beside_the_diffused_angles(tmp_path):
    """An internal-coordinate model diffuses its features, so its labels travel as the state's ``node_labels``:
    labels change its samples, all-hidden labels give the samples of no labels, and the clash repair
    regenerates a chain with its own labels."""
    from molgen.domains.backbones import repair_clashes

    model = load_checkpoint(save_tiny_internal_checkpoint(tmp_path / "ss.ckpt", secondary_structure=True))
    assert model.info.num_node_labels == 3 and not model.info.labels_in_features
    assert model.info.num_features == 3, "the labels are not channels of the angle features"
    sampling = SamplingConfig("ddpm", 4)
    _assert_hidden_labels_are_none_and_given_ones_steer(model, sampling, label=1)
    # a chain folded onto itself clashes; its repair with and without labels differs
    clashing = ideal_helix(8)
    clashing[6:] = clashing[1:3]
    n = len(clashing)
    repaired = [
        repair_clashes(model, [clashing], sampling, 1, seed=0, labels=[np.full(n, label)])[0][0]
        for label in (UNKNOWN, 1)
    ]
    assert repaired[0].shape == clashing.shape, "a chain shorter than the repair window keeps its length"
    assert not np.allclose(repaired[0], repaired[1], atol=1e-3)
    with pytest.raises(ValueError, match="one entry per residue"):
        generate(model, 1, sampling, progress=False, labels=[np.ones(8, dtype=np.int64)], sizes=torch.tensor([9]))
    # training: the process hands a batch's labels to the network with the noisy angles
    from molgen.diffusion.process import GraphState

    angles = torch.randn(8, 3, generator=torch.Generator().manual_seed(1))
    clean = GraphState(torch.zeros(8, 0), angles, torch.zeros(8, dtype=torch.long), 1)
    losses = [
        model.diffusion.loss(
            model.denoiser, clean.replace(node_labels=chain), generator=torch.Generator().manual_seed(2)
        )
        for chain in (None, torch.full((8,), UNKNOWN), torch.ones(8, dtype=torch.long))
    ]
    torch.testing.assert_close(losses[0][0], losses[1][0])
    assert not torch.allclose(losses[0][0], losses[2][0])
