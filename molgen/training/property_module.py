"""LightningModule training a property predictor (EDM's QM9 property classifier) on data with property values.

A batch is a torch_geometric ``Batch`` of molecules with ``pos`` [N, 3] Å, ``h`` [N, F], ``batch`` [N] and
``y`` [B, P]: the properties ``dataset_info["conditions"]["names"]`` normalised as ``(value - mean) / std``
with the training data's statistics (``conditions["mean"]``, ``conditions["std"]``, physical units). The
loss is the mean absolute error in those normalised units, averaged over the properties, as EDM's. As in
:class:`~molgen.training.module.DiffusionModule`, the configs are saved as plain dicts in the
hyperparameters, so checkpoints load with ``torch.load(weights_only=True)``
(:func:`molgen.property_prediction.load_property_predictor`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import lightning as L
import torch

from molgen.models.property_predictor import build_predictor
from molgen.training.module import adamw, check_resumable

log = logging.getLogger(__name__)


def cosine_decay(total_steps: int) -> Callable[[int], float]:
    """Learning-rate factor of optimiser step ``n``: ``(1 + cos(pi n / total_steps)) / 2``, 0 after
    ``total_steps`` (EDM's classifier schedule, per step); 1 throughout if ``total_steps < 1`` (no step limit)."""

    def factor(step: int) -> float:
        if total_steps < 1:
            return 1.0
        return 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))

    return factor


class PropertyModule(L.LightningModule):
    """Trains ``predictor`` to regress the data's conditioning properties.

    Logs ``train/loss`` and ``val/loss`` (normalised L1, mean over properties) and ``val/mae_<name>`` per
    property in its physical unit (``std`` times the normalised MAE).

    Args:
        model: predictor config (``name`` in :data:`~molgen.models.property_predictor.PREDICTORS` plus
            constructor options).
        optim: ``lr``, ``weight_decay``, ``amsgrad`` of AdamW; the rate decays along a cosine to 0 over
            ``trainer.max_steps`` (:func:`cosine_decay`).
        dataset_info: the data's :meth:`DatasetInfo.to_dict`, with ``conditions``.

    Raises:
        ValueError: the data has no conditions (one line).
    """

    def __init__(self, model: dict, optim: dict, dataset_info: dict) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.predictor = build_predictor(model, dataset_info)
        conditions = dataset_info["conditions"]
        self.names = list(conditions["names"])
        self.register_buffer("std", torch.tensor(conditions["std"], dtype=torch.float32), persistent=False)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Lightning calls this with the loaded checkpoint before it loads the weights.
        source = self.trainer.ckpt_path if self._trainer is not None else "the checkpoint"
        saved = checkpoint.get("hyper_parameters") or {}
        check_resumable(saved, self.hparams["model"], {}, source)
        was = ((saved.get("dataset_info") or {}).get("conditions") or {}).get("names")
        if was != self.names:
            raise ValueError(
                f"cannot resume from {source}: it predicts {was}, this run's data.conditions are {self.names}; "
                "restore them, or start a new run with another hydra.run.dir"
            )

    def on_train_start(self) -> None:
        # A resumed run restores its scheduler's base rate; the configured optim.lr wins, as for diffusion runs
        # (README, "A run writes everything"), and the cosine factor of the current step applies to it.
        scheduler = self.lr_schedulers()
        lr = float(self.hparams.optim["lr"])
        if scheduler.base_lrs[0] != lr:
            log.info("learning rate %g (the resumed scheduler had %g)", lr, scheduler.base_lrs[0])
        scheduler.base_lrs = [lr] * len(scheduler.base_lrs)
        for group, factor in zip(scheduler.optimizer.param_groups, scheduler.lr_lambdas):
            group["initial_lr"] = lr
            group["lr"] = lr * factor(scheduler.last_epoch)

    def forward(self, data) -> torch.Tensor:
        """Normalised properties ``[B, P]`` of the molecules of ``data``."""
        return self.predictor(data.pos, data.h, data.batch, data.num_graphs)

    def training_step(self, data, batch_idx):
        loss = (self(data) - data.y).abs().mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite training loss at step {self.global_step}: {loss.item()}")
        self.log("train/loss", loss, prog_bar=True, batch_size=data.num_graphs)
        return loss

    def validation_step(self, data, batch_idx):
        error = (self(data) - data.y).abs()  # [B, P] normalised
        self.log("val/loss", error.mean(), prog_bar=True, batch_size=data.num_graphs, sync_dist=True)
        for name, mae in zip(self.names, error.mean(dim=0) * self.std):
            self.log(f"val/mae_{name}", mae, batch_size=data.num_graphs, sync_dist=True)

    def configure_optimizers(self):
        optimizer = adamw(self.predictor.parameters(), self.hparams.optim)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_decay(self.trainer.max_steps))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
