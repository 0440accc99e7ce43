"""Small objects built in code for tests: tiny untrained molecule and backbone checkpoints; scripts as modules."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import torch

from molgen.dataset_info import BackboneInfo, MoleculeInfo
from molgen.molecules.featurize import AtomFeaturizer
from molgen.training.module import DiffusionModule

TINY_MODEL = {"name": "egnn", "hidden_dim": 16, "num_layers": 2}
DIFFUSION = {"schedule": {"name": "polynomial", "power": 2.0, "precision": 1e-5}, "diffuse_features": True}


SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` imported as a module (the scripts folder is not a package)."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_molecule_module(seed: int = 0) -> DiffusionModule:
    torch.manual_seed(seed)
    featurizer = AtomFeaturizer()
    info = MoleculeInfo(
        dataset="tiny",
        num_features=featurizer.num_features,
        size_histogram=[0, 0, 0, 2, 5, 3],
        featurizer=featurizer.to_dict(),
    )
    return DiffusionModule(model=TINY_MODEL, diffusion=DIFFUSION, optim={"lr": 1e-3}, dataset_info=info.to_dict())


TINY_BACKBONE_MODEL = {
    "name": "egnn",
    "hidden_dim": 16,
    "num_layers": 2,
    "graph": "knn+chain",
    "knn_k": 8,
    "normalization_factor": 32.0,
}


def tiny_backbone_module(seed: int = 0, prediction: str = "eps", **model_options) -> DiffusionModule:
    """An untrained backbone module; ``model_options`` override :data:`TINY_BACKBONE_MODEL`."""
    torch.manual_seed(seed)
    info = BackboneInfo(
        dataset="tiny",
        num_features=4,
        size_histogram=[0] * 6 + [3, 0, 2],
        atom_types=["N", "CA", "C", "O"],
        # Untrained samples are hundreds of model units wide: a small scale keeps them within PDB columns.
        length_scale=0.1,
    )
    diffusion = {**DIFFUSION, "diffuse_features": False, "prediction": prediction}
    model = {**TINY_BACKBONE_MODEL, **model_options}
    return DiffusionModule(model=model, diffusion=diffusion, optim={"lr": 1e-3}, dataset_info=info.to_dict())


def save_tiny_checkpoint(
    path: Path, seed: int = 0, domain: str = "molecules", prediction: str = "eps", edit=None, **model_options
) -> Path:
    """A checkpoint with the keys molgen reads from Lightning checkpoints
    (``domain``: ``"molecules"`` or ``"backbones"``; ``prediction`` and ``model_options`` of backbone
    models). ``edit``, if given, is applied to the module before saving (e.g. to set weights)."""
    if domain not in ("molecules", "backbones"):
        raise ValueError(f"unknown domain {domain!r}")
    if domain == "molecules":
        module = tiny_molecule_module(seed)
    else:
        module = tiny_backbone_module(seed, prediction, **model_options)
    if edit is not None:
        edit(module)
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    return path


def save_tiny_ca_checkpoint(path: Path, seed: int = 0, secondary_structure: bool = False) -> Path:
    """An untrained residue-level backbone checkpoint: one node per residue at its CA (``atom_types
    ["CA"]``), N, C and O rebuilt from the trace at decoding; fold-conditioned with ``secondary_structure``."""
    torch.manual_seed(seed)
    info = BackboneInfo(
        dataset="tiny",
        num_features=1 + 3 * secondary_structure,
        size_histogram=[0] * 6 + [3, 0, 2],
        atom_types=["CA"],
        length_scale=1.0,
        secondary_structure=secondary_structure,
    )
    module = DiffusionModule(
        {**TINY_BACKBONE_MODEL, "atoms_per_residue": 1, "chirality": True},
        {**DIFFUSION, "diffuse_features": False},
        {"lr": 1e-3},
        info.to_dict(),
    )
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    return path


def save_tiny_internal_checkpoint(path: Path, seed: int = 0, secondary_structure: bool = False) -> Path:
    """An untrained backbone checkpoint in internal coordinates (``internal_coordinates``): one token per residue
    holding its virtual bond angle and torsion features, no coordinates, a tiny chain transformer;
    fold-conditioned with ``secondary_structure`` (its label map random, so that labels change the samples)."""
    torch.manual_seed(seed)
    info = BackboneInfo(
        dataset="tiny",
        num_features=3,
        size_histogram=[0] * 6 + [3, 0, 2],
        atom_types=["CA"],
        length_scale=1.0,
        internal_coordinates=True,
        secondary_structure=secondary_structure,
    )
    model = {"name": "chain_transformer", "hidden_dim": 16, "num_layers": 2, "num_heads": 2, "feedforward_dim": 32}
    module = DiffusionModule(model, DIFFUSION, {"lr": 1e-3}, info.to_dict())
    if secondary_structure:
        with torch.no_grad():
            getattr(module.denoiser, "net", module.denoiser).label_embedding.weight.normal_(0.0, 1.0)
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    return path


def write_synthetic_qm9_cache(cache_dir: Path) -> int:
    """A QM9-shaped coordinate cache in ``cache_dir``: molecule i is C-H with the C at x = i
    and the H at x = i + 1 (so items are identifiable). Returns the number of molecules."""
    from molgen.molecules.qm9 import CACHE_FILENAME, CACHE_FORMAT_VERSION, QM9_NUM_MOLECULES

    m = QM9_NUM_MOLECULES
    pos = torch.zeros(2 * m, 3)
    pos[0::2, 0] = torch.arange(m, dtype=torch.float32)
    pos[1::2, 0] = torch.arange(m, dtype=torch.float32) + 1.0
    torch.save(
        {
            "format_version": CACHE_FORMAT_VERSION,
            "pos": pos,
            "z": torch.tensor([6, 1], dtype=torch.int8).repeat(m),
            "ptr": torch.arange(0, 2 * m + 1, 2),
            "index": torch.arange(1, m + 1),
            "smiles": [f"mol{i + 1}" for i in range(m)],
        },
        cache_dir / CACHE_FILENAME,
    )
    return m
