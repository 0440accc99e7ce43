"""Small joint (bond-generating) models built in code for tests (not a test module)."""

from __future__ import annotations

from pathlib import Path

import torch

from molgen.dataset_info import MoleculeInfo
from molgen.diffusion.joint import edge_classes_from_list
from molgen.diffusion.process import GraphState
from molgen.graph_batch import pair_index, remove_mean
from molgen.molecules.featurize import AtomFeaturizer
from molgen.training.module import DiffusionModule

TINY_JOINT_MODEL = {"name": "egnn_bonds", "hidden_dim": 16, "num_layers": 2, "edge_dim": 8}
JOINT_DIFFUSION = {
    "kind": "joint",
    "schedule": {"name": "polynomial", "power": 2.0, "precision": 1e-5},
    "categorical_schedule": {"name": "cosine", "offset": 0.008, "precision": 1e-5},
    "categorical_power": {"atom_type": 1.0, "charge": 1.0, "bond": 1.5},
    "loss_weights": {"positions": 3.0, "atom_type": 0.4, "charge": 1.0, "bond": 2.0},
}


def joint_dataset_info() -> MoleculeInfo:
    featurizer = AtomFeaturizer()
    return MoleculeInfo(
        dataset="qm9_bonds",
        num_features=featurizer.num_features,
        size_histogram=[0, 0, 0, 2, 5, 3],
        featurizer=featurizer.to_dict(),
        categorical={
            "node": [
                {
                    "name": "atom_type",
                    "classes": list(featurizer.atom_types),
                    "marginals": [0.5, 0.35, 0.06, 0.08, 0.01],
                },
                {"name": "charge", "classes": [-1, 0, 1], "marginals": [0.05, 0.9, 0.05]},
            ],
            "edge": {"name": "bond", "classes": [0, 1, 2, 3], "marginals": [0.85, 0.11, 0.03, 0.01]},
        },
    )


def tiny_joint_module(seed: int = 0, remove_h: bool = False, **model_options) -> DiffusionModule:
    """The tiny joint model, with ``model_options`` (e.g. ``self_conditioning=True``) added to its config;
    ``remove_h``: its hydrogens are placed at export, as a drug-like model's."""
    torch.manual_seed(seed)
    return DiffusionModule(
        model={**TINY_JOINT_MODEL, **model_options},
        diffusion=JOINT_DIFFUSION,
        optim={"lr": 1e-3},
        dataset_info={**joint_dataset_info().to_dict(), "remove_h": remove_h},
    )


def save_tiny_joint_checkpoint(path: Path, seed: int = 0, **model_options) -> Path:
    module = tiny_joint_module(seed, **model_options)
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    return path


def tiny_molecules() -> GraphState:
    """Methane, HCN and water with their bonds, all atoms neutral: a clean joint state (Å, zero CoM)."""
    pos = torch.tensor(
        [[0, 0, 0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63], [-0.63, 0.63, -0.63], [0.63, -0.63, -0.63],
         [0, 0, -1.07], [0, 0, 0], [0, 0, 1.16],
         [0, 0, 0], [0.76, 0.59, 0], [-0.76, 0.59, 0]],
    )  # fmt: skip
    batch = torch.tensor([0] * 5 + [1] * 3 + [2] * 3)
    pos = remove_mean(pos, batch)
    atom = torch.tensor([1, 0, 0, 0, 0, 0, 1, 2, 3, 0, 0])  # classes of H C N O F
    nodes = torch.stack([atom, torch.ones_like(atom)], 1)  # all neutral
    bond_list = torch.tensor([[0, 0, 0, 0, 5, 6, 8, 8], [1, 2, 3, 4, 6, 7, 9, 10]])
    pairs = pair_index(batch)
    edges = edge_classes_from_list(pairs, bond_list, torch.tensor([1, 1, 1, 1, 1, 3, 1, 1]), 11)
    return GraphState(pos, pos.new_zeros(11, 0), batch, 3, nodes, pairs, edges)
