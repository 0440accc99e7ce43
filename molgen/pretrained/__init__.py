"""Pretrained models shipped inside the package.

Each model is two files in this folder: ``<name>.safetensors`` (the EMA
weights of the denoiser, float32) and ``<name>.json``, its model card: the
``model`` / ``diffusion`` / ``dataset_info`` configs needed to rebuild it (plain
JSON, nothing executable), how it was trained (command, data split, time,
hardware) and what ``molgen evaluate`` measured on its samples.

A card may instead name another model's weights (``"weights": "qm9"``): a
*sampler preset*, the same network with its own recommended sampler and its own
measured figures (``qm9-fast``). Its ``config`` is the named model's, so the two
cannot drift apart, and nothing is stored twice.

A card's ``sampling`` entry is read by :meth:`molgen.sampling.SamplingConfig.from_card`
(``sampler``, ``steps``, ``options``, ``precision`` and an optional ``fixed_part_note``).

:func:`load_pretrained` returns a :class:`~molgen.checkpoint.TrainedModel` whose
``.sample`` gives RDKit molecules with 3D conformers (molecule models) or ``[L, 4, 3]``
backbone arrays in Å (backbone models; write them with
:func:`molgen.proteins.pdb.write_backbone_pdb`). Models are added with
``scripts/export_pretrained.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from molgen.checkpoint import TrainedModel, model_from_parts
from molgen.checkpoint_files import CheckpointError, read_safetensors_file

PRETRAINED_DIR = Path(__file__).resolve().parent
#: What `molgen sample` uses without --ckpt or --model.
DEFAULT_MODEL = "qm9"
#: The card entries that describe how weights were made, which a sampler preset shares with its owner.
TRAINING_RECORD = ("command", "data", "training")

__all__ = [
    "DEFAULT_MODEL",
    "PRETRAINED_DIR",
    "TRAINING_RECORD",
    "available_models",
    "export_pretrained",
    "load_pretrained",
    "model_card",
]


def available_models(folder: Path | None = None) -> dict[str, dict]:
    """Model cards of the shipped models, by name (those whose weights are present).

    A sampler preset's card (``"weights": OWNER``) takes its owner's ``config`` and, unless it states them
    itself, its owner's :data:`TRAINING_RECORD`; its summary, sampling and quality are its own. ``folder``
    defaults to :data:`PRETRAINED_DIR` (every function here takes it, for tests and local models).
    """
    folder = folder or PRETRAINED_DIR
    own = {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}
    cards = {}
    for name, card in own.items():
        owner = card.get("weights", name)
        if not (folder / f"{owner}.safetensors").is_file():
            continue
        if owner != name:
            if owner not in own or "weights" in own[owner]:
                raise CheckpointError(
                    f"{name!r} names the weights of {owner!r}, which is not a model with its own card"
                )
            record = {key: own[owner][key] for key in TRAINING_RECORD if key in own[owner]}
            card = {**record, **card, "config": own[owner]["config"]}
        cards[name] = card
    return cards


def model_card(name: str, folder: Path | None = None) -> dict:
    """The card of model ``name``; :class:`CheckpointError` naming the available ones if unknown."""
    cards = available_models(folder)
    if name not in cards:
        listed = ", ".join(cards) or "none installed"
        hint = "; a checkpoint file goes to --ckpt" if "/" in name or name.endswith((".ckpt", ".safetensors")) else ""
        raise CheckpointError(f"no pretrained model named {name!r}; available: {listed}{hint}")
    return cards[name]


def load_pretrained(
    name: str = DEFAULT_MODEL, device: torch.device | str = "cpu", folder: Path | None = None
) -> TrainedModel:
    """The shipped model ``name`` (see :func:`available_models`), with its card: its
    :meth:`~molgen.checkpoint.TrainedModel.sample` uses the card's recommended sampler."""
    card = model_card(name, folder)
    if card.get("kind") == "property_predictor":  # molgen.property_prediction ships these beside the models
        raise CheckpointError(
            f"{name!r} is a property predictor, not a generative model: use it with "
            f"`molgen evaluate-conditioning --predictor {name}`"
        )
    weights_path = (folder or PRETRAINED_DIR) / f"{card.get('weights', name)}.safetensors"
    weights = read_safetensors_file(weights_path)
    return model_from_parts(card["config"], weights, weights_path, device, card={**card, "name": name})


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
    config = {key: hparams[key] for key in ("model", "diffusion")}
    config["dataset_info"] = trained.info.to_dict()
    state = {k: v.detach().float().contiguous() for k, v in trained.denoiser.state_dict().items()}
    folder = folder or PRETRAINED_DIR
    weights_path, card_path = folder / f"{name}.safetensors", folder / f"{name}.json"
    with atomic_output(weights_path) as tmp:
        save_file(state, str(tmp))
    atomic_write_text(card_path, json.dumps({**card, "name": name, "config": config}, indent=2) + "\n")
    load_pretrained(name, folder=folder)  # the written files must rebuild the model
    return weights_path, card_path
