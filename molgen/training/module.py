"""LightningModule wrapping a denoiser and the diffusion core.

Domain-agnostic: a batch is any torch_geometric ``Batch`` with ``pos`` [N, 3],
``h`` [N, F] and ``batch`` [N]. What the sampler later needs to turn noise
back into domain objects (feature decoding, node-count histogram) travels as
``dataset_info``, a plain dict saved in the hyperparameters so checkpoints
load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from molgen.diffusion import GaussianDiffusion, make_schedule
from molgen.models import build_denoiser


def build_diffusion(config: dict) -> GaussianDiffusion:
    """``{"schedule": {"name": ..., **kwargs}, "diffuse_features": bool}`` -> diffusion."""
    schedule_config = dict(config["schedule"])
    schedule = make_schedule(schedule_config.pop("name"), **schedule_config)
    return GaussianDiffusion(schedule, diffuse_features=bool(config.get("diffuse_features", True)))


class DiffusionModule(L.LightningModule):
    """Trains ``denoiser`` with the epsilon-prediction loss of ``diffusion``.

    Args:
        model: denoiser config (``name`` plus constructor kwargs).
        diffusion: diffusion config (see :func:`build_diffusion`).
        optim: ``lr``, ``weight_decay``, ``amsgrad`` for AdamW.
        dataset_info: plain dict from the data module; must hold
            ``num_features`` (feature width F); kept for sampling.
    """

    def __init__(self, model: dict, diffusion: dict, optim: dict, dataset_info: dict) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.denoiser = build_denoiser(model, in_node_dim=int(dataset_info["num_features"]))
        self.diffusion = build_diffusion(diffusion)

    def forward(self, pos, h, t, batch):
        return self.denoiser(pos, h, t, batch)

    def on_train_start(self) -> None:
        # All processes of a distributed run share one seed; offset it so that each rank draws its own noise.
        if self.trainer.world_size > 1:
            torch.manual_seed(torch.initial_seed() + self.global_rank)

    def _loss(self, data: Any, generator: torch.Generator | None = None) -> torch.Tensor:
        per_graph = self.diffusion.per_graph_loss(
            self.denoiser, data.pos, data.h, data.batch, data.num_graphs, generator=generator
        )
        return per_graph.mean()

    def training_step(self, data, batch_idx):
        loss = self._loss(data)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite training loss at step {self.global_step}: {loss.item()}")
        self.log("train/loss", loss, prog_bar=True, batch_size=data.num_graphs)
        return loss

    def validation_step(self, data, batch_idx):
        # Fixed noise per validation batch, so that successive evaluations compare the model, not the draw.
        generator = torch.Generator(device=data.pos.device).manual_seed(batch_idx)
        loss = self._loss(data, generator)
        self.log("val/loss", loss, prog_bar=True, batch_size=data.num_graphs, sync_dist=True)

    def configure_optimizers(self):
        optim = self.hparams.optim
        return torch.optim.AdamW(
            self.parameters(),
            lr=float(optim["lr"]),
            weight_decay=float(optim.get("weight_decay", 1e-12)),
            amsgrad=bool(optim.get("amsgrad", True)),
        )
