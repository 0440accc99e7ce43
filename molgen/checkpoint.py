"""Load a trained model for inference from a Lightning checkpoint, safely.

Checkpoints are read with ``torch.load(weights_only=True)``: only tensors and
plain Python containers are accepted, so a checkpoint can never execute code.
Their ``state_dict`` holds the EMA weights (see ``molgen.training.train``).
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from molgen.diffusion import GaussianDiffusion
from molgen.diffusion.joint import JointDiffusion
from molgen.training.module import build_model

_PREFIX = "denoiser."


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, or not a molgen checkpoint."""


@dataclass
class TrainedModel:
    """A denoiser ready for sampling with the diffusion it was trained under.

    Attributes:
        denoiser: the network in eval mode, EMA weights loaded.
        diffusion: forward process (schedule, which channels are diffused);
            a :class:`~molgen.diffusion.joint.JointDiffusion` for models that
            also generate categorical channels (bonds, charges).
        dataset_info: plain dict from training data (feature decoding,
            node-count histogram, feature width).
        path: where it was loaded from.
    """

    denoiser: torch.nn.Module
    diffusion: GaussianDiffusion | JointDiffusion
    dataset_info: dict
    path: Path

    def to(self, device: torch.device | str) -> "TrainedModel":
        self.denoiser.to(device)
        return self

    def compile(self) -> "TrainedModel":
        """Run the denoiser through ``torch.compile`` from now on (eager if that fails); see
        :class:`~molgen.nn.compiled.CompiledDenoiser`. Pays for many network calls."""
        from molgen.nn.compiled import CompiledDenoiser

        if not isinstance(self.denoiser, CompiledDenoiser):
            self.denoiser = CompiledDenoiser(self.denoiser)
        return self


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> TrainedModel:
    """Read a molgen checkpoint; raises :class:`CheckpointError` with a one-line reason."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"refusing to load {path}: not a PyTorch checkpoint, or it holds objects other than "
            "tensors and plain containers (unpickling those could run code)"
        ) from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {str(err).splitlines()[0]}") from err

    hparams = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    state = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    if not isinstance(hparams, dict) or not isinstance(state, dict) or "model" not in hparams:
        raise CheckpointError(f"not a molgen checkpoint (no model hyperparameters or weights): {path}")

    weights = {k[len(_PREFIX) :]: v for k, v in state.items() if k.startswith(_PREFIX)}
    return model_from_parts(hparams, weights, path, device)


def model_from_parts(
    hparams: dict, weights: dict[str, torch.Tensor], source: Path, device: torch.device | str = "cpu"
) -> TrainedModel:
    """Build the denoiser and diffusion of ``hparams`` (``model``, ``diffusion``,
    ``dataset_info``) and load the denoiser's ``weights``; errors name ``source``."""
    info = hparams["dataset_info"]
    try:
        denoiser, diffusion = build_model(hparams["model"], hparams["diffusion"], info)
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint's model or diffusion config is unusable ({err}): {source}") from err
    try:
        denoiser.load_state_dict(weights)
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint weights do not match its model config: {source}") from err
    denoiser.eval().to(device)
    return TrainedModel(denoiser, diffusion, info, Path(source))
