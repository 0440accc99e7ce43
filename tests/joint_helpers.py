"""Small joint (bond-generating) models built in code for tests (not a test module)."""

from __future__ import annotations

from pathlib import Path

import torch

from molgen.dataset_info import MoleculeInfo
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


def tiny_joint_module(seed: int = 0) -> DiffusionModule:
    torch.manual_seed(seed)
    return DiffusionModule(
        model=TINY_JOINT_MODEL,
        diffusion=JOINT_DIFFUSION,
        optim={"lr": 1e-3},
        dataset_info=joint_dataset_info().to_dict(),
    )


def save_tiny_joint_checkpoint(path: Path, seed: int = 0) -> Path:
    module = tiny_joint_module(seed)
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    return path
