"""Pretrained models shipped inside the package.

Each model is two files in this folder: ``<name>.safetensors`` (the EMA
weights of the denoiser, float32) and ``<name>.json``, its model card: the
``model`` / ``diffusion`` / ``dataset_info`` configs needed to rebuild it (plain
JSON, nothing executable), how it was trained (command, data split, time,
hardware) and what ``molgen evaluate`` measured on its samples.

:func:`load_pretrained` returns a :class:`Pretrained` whose ``.sample`` gives
RDKit molecules with 3D conformers (molecule models) or ``[L, 4, 3]`` backbone
arrays in Å (backbone models; write them with
:func:`molgen.proteins.pdb.write_backbone_pdb`). Models are added with
``scripts/export_pretrained.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from molgen.checkpoint import CheckpointError, TrainedModel, model_from_parts

PRETRAINED_DIR = Path(__file__).resolve().parent
#: What `molgen sample` uses without --ckpt or --model.
DEFAULT_MODEL = "qm9"

__all__ = [
    "DEFAULT_MODEL",
    "PRETRAINED_DIR",
    "Pretrained",
    "available_models",
    "export_pretrained",
    "load_pretrained",
    "load_pretrained_model",
    "model_card",
    "recommended_sampling",
]


def available_models(folder: Path | None = None) -> dict[str, dict]:
    """Model cards of the shipped models, by name (those with both files present).

    ``folder`` defaults to :data:`PRETRAINED_DIR` (every function here takes it, for tests and local models).
    """
    folder = folder or PRETRAINED_DIR
    cards = {}
    for card_path in sorted(folder.glob("*.json")):
        if card_path.with_suffix(".safetensors").is_file():
            cards[card_path.stem] = json.loads(card_path.read_text())
    return cards


def model_card(name: str, folder: Path | None = None) -> dict:
    """The card of model ``name``; :class:`CheckpointError` naming the available ones if unknown."""
    cards = available_models(folder)
    if name not in cards:
        listed = ", ".join(cards) or "none installed"
        raise CheckpointError(f"no pretrained model named {name!r}; available: {listed}")
    return cards[name]


def load_pretrained_model(name: str, device: torch.device | str = "cpu", folder: Path | None = None) -> TrainedModel:
    """The shipped model ``name`` as a :class:`~molgen.checkpoint.TrainedModel` (for the sampling API)."""
    from safetensors.torch import load_file

    card = model_card(name, folder)
    weights_path = (folder or PRETRAINED_DIR) / f"{name}.safetensors"
    try:
        weights = load_file(weights_path)
    except Exception as err:  # safetensors raises its own error types for corrupt headers
        raise CheckpointError(f"cannot read pretrained weights {weights_path}: {err}") from err
    return model_from_parts(card["config"], weights, weights_path, device)


def recommended_sampling(
    card: dict, sampler: str | None, steps: int | None, sampler_options: dict | None
) -> tuple[str, int, dict]:
    """``(sampler, steps, sampler_options)``: what was given, else the card's ``sampling`` recommendation.

    The card's sampler options come only with the card's sampler (an explicitly
    named sampler drops them); given options update them.
    """
    recommended = card.get("sampling", {})
    options = dict(sampler_options or {})
    if sampler is None:
        sampler = recommended.get("sampler", "dpm-solver")
        options = {**recommended.get("options", {}), **options}
    return sampler, steps or recommended.get("steps", 100), options


@dataclass
class Pretrained:
    """A shipped model ready to sample. ``card`` is its model card; ``model`` the network."""

    name: str
    card: dict
    model: TrainedModel

    @property
    def domain(self) -> str:
        return self.model.dataset_info.get("domain", "molecules")

    def sample(
        self,
        n: int,
        *,
        seed: int = 0,
        steps: int | None = None,
        sampler: str | None = None,
        device: torch.device | str = "cpu",
        progress: bool = False,
        **options: Any,
    ) -> list:
        """Generate ``n`` items with the card's recommended sampler and steps unless given.

        Molecules: RDKit molecules with one 3D conformer each (generated or
        perceived bonds; the int property ``bonds_perceived`` is 0 where
        perception failed). Backbones: ``[L, 4, 3]`` float64 arrays in Å
        (``length=(lo, hi)`` option; default: the training histogram).
        Other ``options`` go to the domain's generator; without ``sampler``
        the card's sampler options apply, updated by ``sampler_options``.
        """
        sampler, steps, options["sampler_options"] = recommended_sampling(
            self.card, sampler, steps, options.get("sampler_options")
        )
        kwargs = dict(
            steps=steps,
            sampler=sampler,
            seed=seed,
            device=device,
            progress=progress,
            **options,
        )
        if self.domain == "backbone":
            from molgen.proteins.generate import generate_backbones

            return generate_backbones(self.model, n, **kwargs)
        from molgen.molecules.generate import generate_molecules

        return [molecule.to_rdkit()[0] for molecule in generate_molecules(self.model, n, **kwargs)]


def load_pretrained(
    name: str = DEFAULT_MODEL, device: torch.device | str = "cpu", folder: Path | None = None
) -> Pretrained:
    """Load the shipped model ``name`` (see :func:`available_models`)."""
    return Pretrained(name, model_card(name, folder), load_pretrained_model(name, device, folder))


def export_pretrained(checkpoint: str | Path, name: str, card: dict, folder: Path | None = None) -> tuple[Path, Path]:
    """Write ``<name>.safetensors`` (the checkpoint's EMA denoiser weights) and ``<name>.json``.

    ``card`` holds the descriptive fields (command, data, training, evaluation,
    sampling, summary); the configs that rebuild the model are taken from the
    checkpoint. The model is reloaded from the written files before returning.
    """
    from safetensors.torch import save_file

    from molgen.checkpoint import load_checkpoint
    from molgen.io import atomic_output, atomic_write_text

    trained = load_checkpoint(checkpoint)
    hparams = torch.load(checkpoint, map_location="cpu", weights_only=True)["hyper_parameters"]
    config = {key: hparams[key] for key in ("model", "diffusion", "dataset_info")}
    state = {k: v.detach().float().contiguous() for k, v in trained.denoiser.state_dict().items()}
    folder = folder or PRETRAINED_DIR
    weights_path, card_path = folder / f"{name}.safetensors", folder / f"{name}.json"
    with atomic_output(weights_path) as tmp:
        save_file(state, str(tmp))
    atomic_write_text(card_path, json.dumps({**card, "name": name, "config": config}, indent=2) + "\n")
    load_pretrained_model(name, folder=folder)  # the written files must rebuild the model
    return weights_path, card_path
