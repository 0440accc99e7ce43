"""Load a trained property predictor and score molecules with it (EDM's conditional-generation protocol).

A checkpoint of ``molgen train experiment=qm9_property`` is read with ``torch.load(weights_only=True)``
(:func:`~molgen.checkpoint_files.read_checkpoint_file`); its ``state_dict`` holds the EMA weights and its
``dataset_info`` the atom featurizer and the property statistics the predictor was trained with. A
predictor can also be shipped in ``molgen/pretrained`` like a generative model (:func:`export_predictor`:
safetensors weights and a card with ``"kind": "property_predictor"``) and loaded by its name.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike

from molgen.checkpoint_files import CheckpointError, read_checkpoint_file, read_safetensors_file
from molgen.diffusion.energy_guidance import PropertyEnergy
from molgen.graph_batch import node_batch, remove_mean
from molgen.models.property_predictor import PREDICTORS, build_predictor
from molgen.molecules.featurize import AtomFeaturizer, atomic_number
from molgen.targets import denormalize

__all__ = ["PREDICTOR_KIND", "TrainedPredictor", "export_predictor", "load_property_predictor"]

_PREFIX = "predictor."
#: The ``kind`` of a shipped predictor's card.
PREDICTOR_KIND = "property_predictor"


@dataclass
class TrainedPredictor:
    """A property predictor ready to score molecules.

    Attributes:
        predictor: the network (:class:`~molgen.models.property_predictor.PropertyPredictor`) in eval
            mode, EMA weights loaded.
        featurizer: the atom features it was trained on.
        conditions: the training data's statistics of the properties (``names``, ``units``, ``mean``,
            ``std``, ...; physical units).
        path: where it was loaded from.
    """

    predictor: torch.nn.Module
    featurizer: AtomFeaturizer
    conditions: dict
    path: Path

    @property
    def names(self) -> list[str]:
        """The predicted properties, in column order."""
        return list(self.conditions["names"])

    @property
    def units(self) -> list[str]:
        """The unit of each property (``Bohr^3``, ``meV``, ...)."""
        return list(self.conditions["units"])

    @torch.no_grad()
    def predict(self, molecules: Sequence[tuple[ArrayLike, ArrayLike]], batch_size: int = 256) -> np.ndarray:
        """The predicted properties of each molecule, in physical units.

        Args:
            molecules: ``M`` pairs ``(atomic_numbers [n] ints, positions [n, 3] Å)``.
            batch_size: molecules per network call.

        Returns:
            float64 ``[M, P]``, columns in :attr:`names` order, units :attr:`units`.

        Raises:
            ValueError: a molecule without atoms or with mismatched shapes, or an element the
                featurizer lacks (named).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        device = next(self.predictor.parameters()).device
        chunks = [np.zeros((0, len(self.names)))]
        for start in range(0, len(molecules), batch_size):
            chunk = enumerate(molecules[start : start + batch_size], start)
            numbers, positions = zip(*(_atoms(index, *molecule) for index, molecule in chunk))
            sizes = torch.tensor([len(z) for z in numbers])
            batch = node_batch(sizes).to(device)
            h = self.featurizer.encode(torch.cat(numbers)).to(device)
            pos = remove_mean(torch.cat(positions).to(device), batch, len(sizes))
            normalised = self.predictor(pos, h, batch, len(sizes)).double().cpu()
            chunks.append(denormalize(normalised, self.conditions).numpy())
        return np.concatenate(chunks)

    def guidance_energy(self, info: Any) -> PropertyEnergy:
        """The energy that steers a conditional bond model's samples towards its targets with this predictor
        (:mod:`molgen.diffusion.energy_guidance`): per molecule ``1/2 sum_k m_k (g_k - c_k)^2`` over the
        properties both know, in this predictor's normalised units.

        The predictor reads the clean-position estimate and the expected atom features under the predicted
        atom-type probabilities (its features are linear in the one-hot, so this is their expectation).

        Args:
            info: the generator's :class:`~molgen.dataset_info.DatasetInfo`, with ``conditions`` (the targets'
                names and training statistics) and an ``atom_type`` node channel whose classes are elements.

        Raises:
            ValueError: the generator takes no targets, none of them is predicted here, or it has no
                ``atom_type`` channel of elements this predictor's featurizer knows (one line).
        """
        conditions = getattr(info, "conditions", None) or {}
        wanted = list(conditions.get("names") or [])
        shared = [name for name in wanted if name in self.names]
        if not shared:
            raise ValueError(
                f"energy guidance: the predictor estimates {', '.join(self.names)}; "
                f"the model's targets are {', '.join(wanted) or 'none'}"
            )
        channels = ((getattr(info, "categorical", None) or {}).get("node")) or []
        names = [channel["name"] for channel in channels]
        if "atom_type" not in names:
            raise ValueError("energy guidance needs a model with an atom_type node channel (a bond model)")
        first = sum(len(channel["classes"]) for channel in channels[: names.index("atom_type")])
        elements = channels[names.index("atom_type")]["classes"]
        features = self.featurizer.encode(torch.tensor([atomic_number(symbol) for symbol in elements]))  # [K, F]
        columns = slice(first, first + len(elements))
        model_rows = torch.tensor([wanted.index(name) for name in shared])
        predictor_rows = torch.tensor([self.names.index(name) for name in shared])
        stats = {key: torch.tensor(conditions[key], dtype=torch.float64)[model_rows] for key in ("mean", "std")}
        own = {key: torch.tensor(self.conditions[key], dtype=torch.float64)[predictor_rows] for key in ("mean", "std")}
        # a model-normalised target c becomes (c * std + mean - own_mean) / own_std in the predictor's units
        target_scale, target_shift = stats["std"] / own["std"], (stats["mean"] - own["mean"]) / own["std"]

        def energy(pos: torch.Tensor, node_probabilities: torch.Tensor, batch, num_graphs, condition) -> torch.Tensor:
            weights = next(self.predictor.parameters())  # the predictor runs in its own dtype; E in the caller's
            h = node_probabilities[:, columns].to(weights) @ features.to(weights)
            estimate = self.predictor(pos.to(weights), h, batch, num_graphs)[:, predictor_rows.to(pos.device)]
            rows = model_rows.to(pos.device)
            target = condition.values[:, rows] * target_scale.to(pos) + target_shift.to(pos)
            given = condition.mask[:, rows].to(pos.dtype)
            return 0.5 * (given * (estimate.to(pos.dtype) - target).square()).sum(dim=-1)

        return energy


def _atoms(index: int, atomic_numbers: ArrayLike, positions: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Molecule ``index`` as ``(z [n] integer, pos [n, 3] float32 Å)``; ValueError naming it if empty or misshaped."""
    z = torch.as_tensor(np.asarray(atomic_numbers))
    pos = torch.as_tensor(np.asarray(positions, dtype=np.float32))
    if z.dim() != 1 or z.numel() == 0 or pos.shape != (z.numel(), 3):
        raise ValueError(
            f"molecule {index}: expected atomic numbers [n] and positions [n, 3] with n >= 1, "
            f"got {tuple(z.shape)} and {tuple(pos.shape)}"
        )
    return z, pos


def load_property_predictor(
    source: str | Path, device: torch.device | str = "cpu", folder: Path | None = None
) -> TrainedPredictor:
    """Read a property predictor: a checkpoint written by ``molgen train experiment=qm9_property``, or the
    name of one shipped with molgen (:func:`export_predictor`; ``folder`` as in :mod:`molgen.pretrained`).

    Raises:
        CheckpointError: unreadable, not a property predictor's (e.g. a diffusion model's), or its
            config and weights do not fit (one line naming the file).
    """
    from molgen.pretrained import PRETRAINED_DIR, available_models

    path = Path(source)
    shipped = available_models(folder)
    if not path.is_file() and str(source) in shipped:
        card = shipped[str(source)]
        if card.get("kind") != PREDICTOR_KIND:
            raise CheckpointError(f"{source!r} is a generative model, not a property predictor")
        weights_path = (folder or PRETRAINED_DIR) / f"{source}.safetensors"
        return _predictor_from_parts(card["config"], read_safetensors_file(weights_path), weights_path, device)
    ckpt = read_checkpoint_file(path)
    hparams = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    state = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    model = hparams.get("model") if isinstance(hparams, dict) else None
    name = model.get("name") if isinstance(model, dict) else None
    if name not in PREDICTORS or not isinstance(state, dict):
        what = f"its model is {name!r}" if name else "no model hyperparameters or weights"
        raise CheckpointError(
            f"{path} is not a property predictor checkpoint ({what}): "
            "use one written by `molgen train experiment=qm9_property`"
        )
    weights = {k[len(_PREFIX) :]: v for k, v in state.items() if k.startswith(_PREFIX)}
    return _predictor_from_parts(hparams, weights, path, device)


def _predictor_from_parts(
    config: dict, weights: dict[str, torch.Tensor], source: Path, device: torch.device | str
) -> TrainedPredictor:
    """The predictor of ``config`` (``model`` and ``dataset_info``) with ``weights``; errors name ``source``."""
    try:
        info = config["dataset_info"]
        predictor = build_predictor(config["model"], info)
        featurizer = AtomFeaturizer.from_dict(info["featurizer"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{source}: the predictor's model or dataset_info config is unusable ({err})") from err
    try:
        predictor.load_state_dict(weights)
    except RuntimeError as err:
        raise CheckpointError(f"{source}: the predictor's weights do not match its model config") from err
    return TrainedPredictor(predictor.eval().to(device), featurizer, info["conditions"], source)


def export_predictor(checkpoint: str | Path, name: str, card: dict, folder: Path | None = None) -> tuple[Path, Path]:
    """Ship a predictor checkpoint as ``<name>.safetensors`` (its EMA weights) and ``<name>.json`` (``card``
    with ``"kind": "property_predictor"`` and the configs that rebuild it), then reload it from them."""
    from safetensors.torch import save_file

    from molgen.io import atomic_output, atomic_write_text
    from molgen.pretrained import PRETRAINED_DIR

    trained = load_property_predictor(checkpoint)
    hparams = torch.load(checkpoint, map_location="cpu", weights_only=True)["hyper_parameters"]
    info = hparams["dataset_info"]
    # p(N | c) (size_bins) serves a generator's sampling; a predictor's card leaves it out
    conditions = {key: value for key, value in info["conditions"].items() if key != "size_bins"}
    config = {"model": hparams["model"], "dataset_info": {**info, "conditions": conditions}}
    state = {k: v.detach().float().contiguous() for k, v in trained.predictor.state_dict().items()}
    folder = folder or PRETRAINED_DIR
    weights_path, card_path = folder / f"{name}.safetensors", folder / f"{name}.json"
    with atomic_output(weights_path) as tmp:
        save_file(state, str(tmp))
    atomic_write_text(
        card_path, json.dumps({**card, "name": name, "kind": PREDICTOR_KIND, "config": config}, indent=2) + "\n"
    )
    load_property_predictor(name, folder=folder)  # the written files must rebuild the predictor
    return weights_path, card_path
