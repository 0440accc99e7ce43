"""The property predictor of EDM's conditional protocol (issue 26): its symmetries, that it learns, its
Lightning module, `molgen train` with it, and loading its checkpoints for inference."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from torch_geometric.data import Batch

from molgen.checkpoint import load_checkpoint
from molgen.checkpoint_files import CheckpointError
from molgen.dataset_info import MoleculeInfo, dataset_info_from_dict
from molgen.diffusion.conditioning import GraphCondition
from molgen.graph_batch import node_batch
from molgen.models.property_predictor import PropertyPredictor
from molgen.molecules.dataset import MoleculeDataset
from molgen.molecules.featurize import AtomFeaturizer
from molgen.property_prediction import load_property_predictor
from molgen.targets import denormalize
from molgen.training import train as train_module
from molgen.training.config import validate_overrides
from molgen.training.data import GraphDataModule
from molgen.training.property_module import PropertyModule, cosine_decay
from tests.equivariance_utils import permute_graphs, permute_within_graphs, random_rotation, tolerance
from tests.helpers import save_tiny_checkpoint

TINY = {"name": "property_egnn", "hidden_dim": 16, "num_layers": 2}
NAMES, UNITS = ["alpha", "gap"], ["Bohr^3", "meV"]
FEATURIZER = AtomFeaturizer()


def random_molecules(count: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` molecules of 2 to 6 atoms (H, C, N, O) at random positions about 1.5 Å apart."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 7, size=count)
    return [(rng.choice([1, 6, 7, 8], size=n), 1.5 * rng.standard_normal((n, 3))) for n in sizes]


def dataset_with_properties(molecules, values: np.ndarray, names=NAMES, units=UNITS, conditions=None):
    """A :class:`MoleculeDataset` serving ``values`` [M, P] (physical units) as its items' ``y``."""
    dataset = MoleculeDataset.from_lists([pos for _, pos in molecules], [z for z, _ in molecules])
    dataset.set_targets(torch.as_tensor(values), names, units, conditions)
    return dataset


def molecule_info(conditions: dict | None) -> MoleculeInfo:
    return MoleculeInfo(
        dataset="tiny",
        num_features=FEATURIZER.num_features,
        size_histogram=[0, 0, 1, 1, 1, 1, 1],
        featurizer=FEATURIZER.to_dict(),
        conditions=conditions,
    )


def tiny_module(seed: int = 0) -> tuple[PropertyModule, Batch]:
    """An untrained module on two properties, and a batch of 6 molecules with their targets."""
    molecules = random_molecules(6, seed)
    values = np.random.default_rng(seed).normal([70.0, 6800.0], [8.0, 1300.0], size=(6, 2))
    dataset = dataset_with_properties(molecules, values)
    torch.manual_seed(seed)
    module = PropertyModule(model=TINY, optim={"lr": 1e-3}, dataset_info=molecule_info(dataset.conditions).to_dict())
    return module, Batch.from_data_list([dataset[i] for i in range(len(dataset))])


# ----- the network ------------------------------------------------------------------------------------------
def test_predictor_is_e3_invariant_and_permutation_invariant_in_float64():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = PropertyPredictor(in_node_dim=6, num_properties=3, hidden_dim=16, num_layers=3).double().eval()
    batch = torch.tensor([0] * 3 + [1] * 5 + [2] * 4)
    pos = 1.5 * torch.randn(12, 3, dtype=torch.float64)
    h = torch.randn(12, 6, dtype=torch.float64)
    tol = tolerance(torch.float64)
    with torch.no_grad():
        out = model(pos, h, batch, 3)
        assert out.shape == (3, 3) and out.abs().min() > 1e-6
        for reflect in (False, True):
            rot = random_rotation(torch.float64, reflect=reflect, generator=gen)
            torch.testing.assert_close(model(pos @ rot.T, h, batch, 3), out, **tol)
        shift = 3.0 * torch.randn(3, 3, dtype=torch.float64, generator=gen)
        torch.testing.assert_close(model(pos + shift[batch], h, batch, 3), out, **tol)
        perm = permute_within_graphs(batch, generator=gen)
        torch.testing.assert_close(model(pos[perm], h[perm], batch[perm], 3), out, **tol)
        node_perm, graph_perm, new_batch = permute_graphs(batch, generator=gen)
        torch.testing.assert_close(model(pos[node_perm], h[node_perm], new_batch, 3), out[graph_perm], **tol)
        # and it does see the geometry: stretching one molecule changes its prediction only
        stretched = model(torch.where((batch == 1)[:, None], 1.3 * pos, pos), h, batch, 3)
    assert not torch.allclose(stretched[1], out[1]) and torch.equal(stretched[[0, 2]], out[[0, 2]])


def test_every_trainable_weight_gets_a_gradient():
    """Data-parallel training needs a gradient for each trainable weight: the last layer's unread
    coordinate update is frozen, everything else is used."""
    model = PropertyPredictor(in_node_dim=6, num_properties=2, hidden_dim=8, num_layers=2)
    batch = torch.tensor([0, 0, 0, 1, 1])
    model(torch.randn(5, 3), torch.randn(5, 6), batch, 2).sum().backward()
    trainable = dict((name, p) for name, p in model.named_parameters() if p.requires_grad)
    assert [name for name, p in model.named_parameters() if not p.requires_grad] == [
        "layers.1.phi_x.0.weight",
        "layers.1.phi_x.0.bias",
        "layers.1.phi_x.2.weight",
    ]
    assert [name for name, p in trainable.items() if p.grad is None or not p.grad.abs().sum() > 0] == []


def test_input_noise_acts_in_training_only():
    torch.manual_seed(0)
    noisy = PropertyPredictor(in_node_dim=6, num_properties=2, hidden_dim=8, num_layers=2, input_noise=0.1)
    clean = PropertyPredictor(in_node_dim=6, num_properties=2, hidden_dim=8, num_layers=2)
    clean.load_state_dict(noisy.state_dict())
    inputs = (torch.randn(5, 3), torch.randn(5, 6), torch.tensor([0, 0, 0, 1, 1]), 2)
    torch.testing.assert_close(noisy.eval()(*inputs), clean.eval()(*inputs), rtol=0, atol=0)
    assert not torch.allclose(noisy.train()(*inputs), clean.train()(*inputs))
    with pytest.raises(ValueError, match="input_noise is a standard deviation"):
        PropertyPredictor(in_node_dim=6, num_properties=2, input_noise=-0.1)


def test_predictor_learns_to_count_atoms_and_carbons():
    """A sum-pooled readout can count: 300 full-batch Adam steps bring the MAE on 100 molecules from
    about the counts themselves (0.7 and 1.1 for the best constant) to a small fraction of one atom."""
    molecules = random_molecules(100, seed=1)
    z = torch.as_tensor(np.concatenate([m[0] for m in molecules]))
    pos = torch.as_tensor(np.concatenate([m[1] for m in molecules]), dtype=torch.float32)
    batch = node_batch(torch.tensor([len(m[0]) for m in molecules]))
    h = FEATURIZER.encode(z)
    target = torch.tensor([[len(m[0]), (m[0] == 6).sum()] for m in molecules], dtype=torch.float32)

    torch.manual_seed(0)
    model = PropertyPredictor(in_node_dim=h.shape[1], num_properties=2, hidden_dim=32, num_layers=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_decay(300))
    with torch.no_grad():
        initial = (model(pos, h, batch, 100) - target).abs().mean(dim=0)
    for _ in range(300):
        optimizer.zero_grad()
        (model(pos, h, batch, 100) - target).square().mean().backward()
        optimizer.step()
        schedule.step()
    with torch.no_grad():
        final = (model(pos, h, batch, 100) - target).abs().mean(dim=0)
    constant = (target - target.median(dim=0).values).abs().mean(dim=0)
    assert (initial > 1.0).all() and (constant > 0.6).all()
    assert (final < 0.2).all(), final


# ----- the Lightning module -----------------------------------------------------------------------------------
def test_module_logs_the_loss_and_each_property_mae_in_physical_units(monkeypatch):
    module, data = tiny_module()
    logged = {}
    monkeypatch.setattr(module, "log", lambda name, value, **kwargs: logged.__setitem__(name, value.item()))
    module.validation_step(data, 0)
    with torch.no_grad():
        error = (module(data) - data.y).abs()
    std = torch.tensor(module.hparams.dataset_info["conditions"]["std"])
    assert logged.keys() == {"val/loss", "val/mae_alpha", "val/mae_gap"}
    assert logged["val/loss"] == pytest.approx(error.mean().item(), rel=1e-6)
    assert logged["val/mae_gap"] == pytest.approx((error[:, 1].mean() * std[1]).item(), rel=1e-6)
    assert logged["val/mae_gap"] > 100 * logged["val/mae_alpha"]  # meV against Bohr^3: std 1300 against 8

    loss = module.training_step(data, 0)
    assert logged["train/loss"] == pytest.approx(loss.item()) and loss.requires_grad


def test_module_refuses_data_without_conditions():
    with pytest.raises(ValueError, match="data.conditions") as err:
        PropertyModule(model=TINY, optim={"lr": 1e-3}, dataset_info=molecule_info(None).to_dict())
    assert "\n" not in str(err.value)


def test_module_refuses_to_resume_another_model_or_other_properties():
    module, _ = tiny_module()
    saved = {"hyper_parameters": dict(module.hparams)}
    module.on_load_checkpoint(saved)  # its own checkpoint
    wider = PropertyModule({**TINY, "hidden_dim": 32}, {"lr": 1e-3}, module.hparams.dataset_info)
    with pytest.raises(ValueError, match="model.hidden_dim=16 there, 32 here"):
        wider.on_load_checkpoint(saved)
    conditions = {**module.hparams.dataset_info["conditions"], "names": ["gap", "alpha"]}
    swapped = PropertyModule(TINY, {"lr": 1e-3}, {**module.hparams.dataset_info, "conditions": conditions})
    with pytest.raises(ValueError, match=r"it predicts \['alpha', 'gap'\]"):
        swapped.on_load_checkpoint(saved)


def test_cosine_decay():
    factor = cosine_decay(100)
    assert [factor(step) for step in (0, 50, 100, 150)] == pytest.approx([1.0, 0.5, 0.0, 0.0])
    assert cosine_decay(-1)(1000) == 1.0


# ----- loading for inference ----------------------------------------------------------------------------------
def test_a_saved_predictor_loads_and_predicts_what_the_module_does(tmp_path):
    module, data = tiny_module()
    path = tmp_path / "predictor.ckpt"
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    loaded = load_property_predictor(path)
    assert loaded.names == NAMES and loaded.units == UNITS and not loaded.predictor.training
    with pytest.raises(CheckpointError, match="is a property predictor .*evaluate-conditioning --predictor"):
        load_checkpoint(path)  # what `molgen sample --ckpt` reads

    molecules = random_molecules(6)
    predicted = loaded.predict(molecules)
    with torch.no_grad():
        expected = denormalize(module(data).double(), module.hparams.dataset_info["conditions"]).numpy()
    assert predicted.shape == (6, 2) and predicted.dtype == np.float64
    np.testing.assert_allclose(predicted, expected, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(loaded.predict(molecules, batch_size=4), predicted, rtol=1e-5)
    moved = [(z, pos + np.array([10.0, -3.0, 2.0])) for z, pos in molecules]
    np.testing.assert_allclose(loaded.predict(moved), predicted, rtol=1e-4, atol=1e-3)
    assert loaded.predict([]).shape == (0, 2)

    with pytest.raises(ValueError, match="'Cl'"):
        loaded.predict([(np.array([6, 17]), np.zeros((2, 3)))])
    with pytest.raises(ValueError, match="molecule 1: "):
        loaded.predict([molecules[0], (np.array([6, 1]), np.zeros((3, 3)))])


def test_the_guidance_energy_is_half_the_squared_error_in_the_predictors_units(tmp_path):
    """Energy guidance reads the predictor on clean estimates and atom-type probabilities: on one-hot
    probabilities it is the predictor's own estimate; targets move from the generator's normalisation to the
    predictor's; properties not given (or unknown to the predictor) add nothing."""
    from tests.diffusion.test_conditioning import conditional_info
    from tests.joint_helpers import joint_dataset_info

    module, _ = tiny_module()
    path = tmp_path / "predictor.ckpt"
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    loaded = load_property_predictor(path)
    own = loaded.conditions
    generator = dataset_info_from_dict(conditional_info())  # alpha and gap, other statistics than the predictor's
    energy = loaded.guidance_energy(generator)

    z, pos = np.array([6, 8, 1, 1]), np.array([[0.0, 0, 0], [1.2, 0, 0], [-0.5, 0.9, 0], [-0.5, -0.9, 0]])
    classes = ["H", "C", "N", "O", "F"]  # the generator's atom_type channel, then 3 charge classes
    probabilities = torch.zeros(4, 8)
    probabilities[torch.arange(4), [classes.index(s) for s in ("C", "O", "H", "H")]] = 1
    probabilities[:, 6] = 1
    targets = np.array([80.0, 5000.0])  # physical
    gen = generator.conditions
    values = torch.tensor((targets - np.array(gen["mean"])) / np.array(gen["std"]), dtype=torch.float32)[None]
    batch = torch.zeros(4, dtype=torch.long)
    pos_t = torch.tensor(pos, dtype=torch.float32)
    estimate = (loaded.predict([(z, pos)])[0] - np.array(own["mean"])) / np.array(own["std"])
    wanted = (targets - np.array(own["mean"])) / np.array(own["std"])
    given_both = torch.tensor([[True, True]])
    both = energy(pos_t, probabilities, batch, 1, GraphCondition(values, given_both))
    gap_only = energy(pos_t, probabilities, batch, 1, GraphCondition(values, torch.tensor([[False, True]])))
    torch.testing.assert_close(both.double(), torch.tensor([0.5 * ((estimate - wanted) ** 2).sum()]).double())
    torch.testing.assert_close(gap_only.double(), torch.tensor([0.5 * (estimate[1] - wanted[1]) ** 2]).double())
    in_double = energy(pos_t.double(), probabilities.double(), batch, 1, GraphCondition(values.double(), given_both))
    assert in_double.dtype == torch.float64  # a float64 sampler gets its dtype back from the float32 predictor
    torch.testing.assert_close(in_double, both.double(), rtol=1e-5, atol=1e-6)

    with pytest.raises(ValueError, match="the predictor estimates alpha, gap; the model's targets are mu"):
        loaded.guidance_energy(dataset_info_from_dict({**conditional_info(), "conditions": {**gen, "names": ["mu"]}}))
    without_types = joint_dataset_info().to_dict()
    without_types["categorical"]["node"][0]["name"] = "element"
    with pytest.raises(ValueError, match="atom_type node channel"):
        loaded.guidance_energy(dataset_info_from_dict({**without_types, "conditions": gen}))


def test_a_predictor_ships_beside_the_models_and_loads_by_name(tmp_path):
    from molgen.pretrained import available_models, load_pretrained
    from molgen.property_prediction import export_predictor

    module, _ = tiny_module()
    path = tmp_path / "predictor.ckpt"
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    folder = tmp_path / "shipped"
    folder.mkdir()
    card = {"summary": "tiny", "command": "-", "data": "-", "training": "-", "quality": {}}
    export_predictor(path, "tiny-property", card, folder)
    assert available_models(folder)["tiny-property"]["kind"] == "property_predictor"
    shipped, checkpoint = load_property_predictor("tiny-property", folder=folder), load_property_predictor(path)
    molecules = random_molecules(4)
    np.testing.assert_allclose(shipped.predict(molecules), checkpoint.predict(molecules), rtol=1e-6)
    with pytest.raises(CheckpointError, match="is a property predictor, not a generative model"):
        load_pretrained("tiny-property", folder=folder)


def test_a_diffusion_checkpoint_or_a_junk_file_is_refused_in_one_line(tmp_path):
    diffusion = save_tiny_checkpoint(tmp_path / "diffusion.ckpt")
    with pytest.raises(CheckpointError, match="is not a property predictor checkpoint \\(its model is 'egnn'\\)"):
        load_property_predictor(diffusion)
    junk = tmp_path / "junk.ckpt"
    junk.write_text("not a checkpoint\n")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint") as err:
        load_property_predictor(junk)
    assert "\n" not in str(err.value)
    torch.save({"weights": torch.zeros(2)}, junk)
    with pytest.raises(CheckpointError, match="no model hyperparameters or weights"):
        load_property_predictor(junk)


# ----- configs and `molgen train` -----------------------------------------------------------------------------
def compose_training(*overrides: str):
    with initialize_config_module(config_module="molgen.conf", version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def test_the_experiment_composes_edm_predictor_setup():
    assert validate_overrides(["experiment=qm9_property"]) is None
    cfg = compose_training("experiment=qm9_property")
    assert cfg.model.name == "property_egnn" and (cfg.model.hidden_dim, cfg.model.num_layers) == (128, 7)
    assert list(cfg.data.conditions) == ["alpha", "gap", "homo", "lumo", "mu", "Cv"] and cfg.data.half == "first"
    assert cfg.optim.lr == 1e-3
    assert validate_overrides(["experiment=qm9_property", "model.time_embedding=scalar"]) is not None


def test_train_refuses_init_from_or_a_teacher_for_a_predictor_before_reading_data(tmp_path, monkeypatch):
    monkeypatch.setattr(train_module, "build_datamodule", lambda config: pytest.fail("the data was read"))
    for option in ("init_from", "teacher"):
        cfg = compose_training("model=property_egnn", f"{option}=qm9")
        with pytest.raises(ValueError, match="is a property predictor"):
            train_module.train(cfg, tmp_path / option)


def test_molgen_train_fits_checkpoints_and_resumes_a_predictor(tmp_path, monkeypatch):
    """`molgen train experiment=qm9_property` on synthetic data: the shared trainer (EMA weights in the
    checkpoints, CSV log with per-property MAE, cosine learning rate) and a changed model refused on resume."""
    names = ["alpha", "gap", "homo", "lumo", "mu", "Cv"]
    units = ["Bohr^3", "meV", "meV", "meV", "D", "cal/(mol K)"]
    rng = np.random.default_rng(0)
    train_set = dataset_with_properties(random_molecules(48, 0), rng.normal(size=(48, 6)), names, units)
    val_set = dataset_with_properties(
        random_molecules(16, 1), rng.normal(size=(16, 6)), names, units, train_set.conditions
    )
    info = molecule_info(train_set.conditions)
    monkeypatch.setattr(
        train_module, "build_datamodule", lambda config: GraphDataModule(train_set, val_set, info, batch_size=8)
    )
    common = [
        "experiment=qm9_property",
        "model.hidden_dim=16",
        "model.num_layers=2",
        "trainer.accelerator=cpu",
        "trainer.val_check_interval=3",
        "trainer.checkpoint_every_n_steps=3",
        "trainer.log_every_n_steps=1",
        "trainer.progress_bar=false",
    ]
    run_dir = tmp_path / "run"
    train_module.train(compose_training(*common, "trainer.max_steps=6"), run_dir)

    last = run_dir / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["global_step"] == 6 and (run_dir / "checkpoints" / "best.ckpt").is_file()
    assert ckpt["state_dict"].keys() == ckpt["current_model_state"].keys()  # EMA weights and the trained ones
    predictor = load_property_predictor(last)
    torch.testing.assert_close(
        predictor.predictor.state_dict()["embedding.weight"], ckpt["state_dict"]["predictor.embedding.weight"]
    )
    assert predictor.predict(random_molecules(3, 2)).shape == (3, 6)

    with open(run_dir / "logs" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert {f"val/mae_{name}" for name in names} | {"val/loss", "train/loss"} <= rows[0].keys()
    rates = [float(row["lr-AdamW"]) for row in rows if row.get("lr-AdamW")]
    assert rates[0] == pytest.approx(1e-3) and rates[-1] < rates[0]

    # Resumed at another rate and a longer schedule: the configured rate, on the new schedule's cosine.
    train_module.train(compose_training(*common, "trainer.max_steps=9", "optim.lr=5e-4"), run_dir)
    with open(run_dir / "logs" / "metrics.csv") as f:
        rates = {int(row["step"]): float(row["lr-AdamW"]) for row in csv.DictReader(f) if row.get("lr-AdamW")}
    assert set(rates) == set(range(9))
    factor = cosine_decay(9)
    for step in range(6, 9):
        assert rates[step] == pytest.approx(5e-4 * factor(step))

    with pytest.raises(ValueError, match="model.hidden_dim=16 there, 32 here"):
        train_module.train(compose_training(*common, "trainer.max_steps=9", "model.hidden_dim=32"), run_dir)
