"""LightningModule wrapping a denoiser and the diffusion core.

Domain-agnostic: a batch is any torch_geometric ``Batch`` that the model's
process turns into its clean state (:meth:`DiffusionProcess.state_from_batch`):
``pos`` [N, 3], ``h`` [N, F] and ``batch`` [N] for a Gaussian process; for a
joint one ``node_classes`` [N, C] long, ``pair_class_index`` [2, Q] (the
listed pairs, e.g. bonds) and ``pair_class`` [Q] long instead of ``h``. What
the sampler later needs to turn noise back into domain objects travels as the
data's :class:`~molgen.dataset_info.DatasetInfo`, saved in the hyperparameters
as a plain dict so checkpoints load with ``torch.load(weights_only=True)``.

With ``distill`` the module trains a consistency-distilled student of a teacher
(:mod:`molgen.diffusion.distillation`): the process becomes the distillation
objective around the teacher's, which holds the frozen teacher and the target
network (both in the checkpoint, so a run resumes exactly); the student keeps the
teacher's configs and samples like any model of them.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch

from molgen.checkpoint import TrainedModel, load_checkpoint
from molgen.checkpoint_files import CheckpointError
from molgen.dataset_info import dataset_info_from_dict
from molgen.diffusion.conditioning import drop_conditions
from molgen.diffusion.distillation import ConsistencyDistillation, ProgressiveDistillation
from molgen.diffusion.inpainting import is_fixed_part_aware, random_known_part
from molgen.diffusion.prediction import VelocityDenoiser
from molgen.diffusion.process import DiffusionProcess
from molgen.models import DENOISERS, build_model
from molgen.pretrained import available_models, load_pretrained

log = logging.getLogger(__name__)


def _flatten(tree: dict, prefix: str = "") -> dict:
    """Nested config dict as ``{"a.b": value}``."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _constructor_defaults(name: str | None) -> dict:
    """Default value of each keyword option of the denoiser registered as ``name`` (empty if unknown)."""
    cls = DENOISERS.get(name)
    if cls is None:
        return {}
    parameters = inspect.signature(cls).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def adamw(parameters, optim: dict) -> torch.optim.AdamW:
    """AdamW over ``parameters`` with the ``optim`` config group (``lr``, ``weight_decay``, ``amsgrad``)."""
    return torch.optim.AdamW(
        parameters,
        lr=float(optim["lr"]),
        weight_decay=float(optim.get("weight_decay", 1e-12)),
        amsgrad=bool(optim.get("amsgrad", True)),
    )


#: The per-node label maps of fold-conditioned denoisers: linear maps without bias, so a hidden label adds nothing.
LABEL_MAPS = ("label_embedding", "label_layer_embedding")
#: The denoiser modules that map conditions into the network (:func:`optimizer_groups`).
CONDITION_MAPS = ("condition_embedding", *LABEL_MAPS)


def optimizer_groups(denoiser: torch.nn.Module, optim: dict) -> list[dict]:
    """The denoiser's parameters as AdamW groups: a conditional model's condition maps (target
    properties, per-node labels) learn at ``optim.condition_lr_scale`` times ``optim.lr`` (they start at
    zero, and when fine-tuned from an unconditional model they are the part that must move far), every
    other weight at ``optim.lr``. The groups do not depend on the scale, so a run resumes with the
    optimiser state it saved."""
    # By name at any depth: a v-predicting model wraps its network (``net.condition_embedding``).
    maps = [m for name, m in denoiser.named_modules() if name.rsplit(".", 1)[-1] in CONDITION_MAPS]
    condition = [p for module in maps for p in module.parameters()]
    own = {id(p) for p in condition}
    groups = [{"params": [p for p in denoiser.parameters() if id(p) not in own]}]
    if own:
        scale = float(optim.get("condition_lr_scale", 1.0))
        groups.append({"params": condition, "lr": scale * float(optim["lr"])})
    return groups


def load_model_source(source: str, option: str) -> TrainedModel:
    """The model a run option (``init_from``, ``teacher``) names: a molgen checkpoint file or a shipped model.

    Raises:
        CheckpointError: ``source`` is neither, or is unreadable (one line naming ``option``).
    """
    if Path(source).is_file():
        return load_checkpoint(source)
    if source in available_models():
        return load_pretrained(source)
    raise CheckpointError(
        f"{option}={source!r} is neither a checkpoint file nor a shipped model ({', '.join(available_models())})"
    )


#: ``distill.method`` -> the objective, and the ``distill`` options it takes.
DISTILLATIONS = {
    "consistency": (ConsistencyDistillation, ("solver_steps", "grid", "target_decay", "snr_floor")),
    "progressive": (
        ProgressiveDistillation,
        ("solver_steps", "grid", "snr_floor", "teacher_steps", "classes", "class_temperature"),
    ),
}


def student_diffusion(teacher_diffusion: dict, prediction: str | None) -> dict:
    """A distillation student's ``diffusion`` config: its teacher's, with ``distill.prediction`` when given."""
    return {**teacher_diffusion, "prediction": prediction} if prediction else dict(teacher_diffusion)


def _network(denoiser: torch.nn.Module) -> torch.nn.Module:
    """The trained network inside a denoiser: a v-predicting one's wrapped network, else the denoiser."""
    return denoiser.net if isinstance(denoiser, VelocityDenoiser) else denoiser


def distillation(
    student: torch.nn.Module, process: DiffusionProcess, model: dict, diffusion: dict, info: dict, distill: dict
) -> ConsistencyDistillation | ProgressiveDistillation:
    """The distillation objective of ``distill`` (``teacher``, ``method`` and the options of
    :class:`~molgen.diffusion.distillation.ConsistencyDistillation` or
    :class:`~molgen.diffusion.distillation.ProgressiveDistillation`, which ignores ``target_decay``), with
    ``student``'s network set to the teacher's weights. ``distill["prediction"]``, when given, is the student's
    ``diffusion.prediction`` (``v`` for an ``eps`` teacher: the same weights, their output read as the
    velocity, which the distillation then teaches); the teacher always predicts as it was trained.

    Raises:
        CheckpointError: the teacher cannot be loaded.
        ValueError: an unknown method, or the run's ``model``, ``diffusion`` (but for the prediction) or
            ``info`` are not the teacher's.
    """
    options = dict(distill)
    method = options.pop("method", "consistency")
    if method not in DISTILLATIONS:
        raise ValueError(f"distill.method must be one of {sorted(DISTILLATIONS)}, got {method!r}")
    objective, accepted = DISTILLATIONS[method]
    teacher = load_model_source(options.pop("teacher"), "teacher")
    taught = student_diffusion(teacher.config["diffusion"], options.pop("prediction", None))
    eps = {"prediction": "eps"}  # the default of configs written before the option
    if teacher.config["model"] != model or {**eps, **taught} != {**eps, **diffusion} or teacher.info.to_dict() != info:
        raise ValueError(
            "a distillation's student keeps its teacher's model, diffusion (but for distill.prediction) and "
            "dataset_info configs (molgen train takes them from the teacher)"
        )
    _network(student).load_state_dict(_network(teacher.denoiser).state_dict())
    # train mode like the rest of the module (no layer of the denoisers behaves differently in it)
    options = {key: value for key, value in options.items() if key in accepted}
    return objective(process, student, teacher.denoiser.train(), **options)


def check_resumable(
    saved: dict, model: dict, diffusion: dict, source: str = "the checkpoint", distill: dict | None = None
) -> None:
    """Refuse to resume from a checkpoint trained with another model, diffusion or distillation config.

    Lightning would otherwise stop deep in ``load_state_dict`` with a list of
    missing weights, or, for a changed noise schedule, quietly continue
    training another process. A model key only this run's config has (an
    option added after the checkpoint was written) is compared with the
    denoiser's default for it, which is what the checkpoint was built with:
    resuming with ``model.self_conditioning=true`` on a checkpoint from before
    that option is refused. Other keys only this run has are not compared.

    Args:
        saved: the checkpoint's ``hyper_parameters``.
        model, diffusion: this run's config groups.
        source: how the message names the checkpoint (its path).
        distill: this run's distillation (teacher and options), or None.
    Raises:
        ValueError: naming each key that differs, with both values.
    """
    now = _flatten({"model": model, "diffusion": diffusion, "distill": distill or {}})
    was = _flatten({key: saved.get(key) or {} for key in ("model", "diffusion", "distill")})
    changed = [
        f"{key}={was[key]!r} there, {repr(now[key]) if key in now else 'unset'} here"
        for key in was
        if key not in now or now[key] != was[key]
    ]
    defaults = _constructor_defaults(saved.get("model", {}).get("name"))
    for option in model.keys() - saved.get("model", {}).keys():
        if option in defaults and model[option] != defaults[option]:
            changed.append(f"model.{option} unset there (so {defaults[option]!r}), {model[option]!r} here")
    if changed:
        raise ValueError(
            f"cannot resume from {source}: it was trained with another configuration ({'; '.join(changed)}); "
            "restore those settings, or start a new run with another hydra.run.dir"
        )


class DiffusionModule(L.LightningModule):
    """Trains ``denoiser`` with the epsilon-prediction loss of ``diffusion``.

    Args:
        model: denoiser config (``name`` plus constructor kwargs).
        diffusion: diffusion config (see :func:`molgen.diffusion.build.build_diffusion`).
        optim: ``lr``, ``weight_decay``, ``amsgrad`` for AdamW.
        dataset_info: the data's :meth:`DatasetInfo.to_dict`; kept for sampling.
        distill: distil ``distill["teacher"]`` (see :func:`distillation`), whose ``model``, ``diffusion`` and
            ``dataset_info`` these must be; None: train on the data.
        condition_dropout: for data with target properties (a conditional model), the probability that
            each property of each training graph is hidden from the network
            (:func:`~molgen.diffusion.conditioning.drop_conditions`), so that it also learns to sample
            with fewer or none (classifier-free guidance).
        fixed_part_rate: for a denoiser built with ``fixed_part_input``, the fraction of training graphs given
            a random fixed part (:func:`~molgen.diffusion.inpainting.random_known_part`).
        fixed_part_free: node classes (of the first class channel) that half the random fixed parts leave
            to the model wherever they are (the hydrogen class: users fix heavy atoms).
    """

    def __init__(
        self,
        model: dict,
        diffusion: dict,
        optim: dict,
        dataset_info: dict,
        distill: dict | None = None,
        condition_dropout: float = 0.0,
        fixed_part_rate: float = 0.0,
        fixed_part_free: Sequence[int] = (),
    ) -> None:
        super().__init__()
        if not 0.0 <= condition_dropout < 1.0:
            raise ValueError(f"condition_dropout must be in [0, 1), got {condition_dropout}")
        if not 0.0 <= fixed_part_rate <= 1.0:
            raise ValueError(f"fixed_part_rate must be in [0, 1], got {fixed_part_rate}")
        self.save_hyperparameters()
        self.denoiser, self.diffusion = build_model(model, diffusion, dataset_info_from_dict(dataset_info))
        if distill:
            self.diffusion = distillation(self.denoiser, self.diffusion, model, diffusion, dataset_info, distill)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Lightning calls this with the loaded checkpoint before it loads the weights.
        source = self.trainer.ckpt_path if self._trainer is not None else "the checkpoint"
        saved, hparams = checkpoint.get("hyper_parameters") or {}, self.hparams
        check_resumable(saved, hparams["model"], hparams["diffusion"], source, hparams.get("distill"))

    def forward(self, pos, h, t, batch):
        return self.denoiser(pos, h, t, batch)

    def on_train_start(self) -> None:
        # All processes of a distributed run share one seed; offset it so that each rank draws its own noise.
        if self.trainer.world_size > 1:
            torch.manual_seed(torch.initial_seed() + self.global_rank)
        self._take_configured_learning_rates()

    def _loss(self, data: Any, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        """Mean loss over the batch's graphs, and the mean of each named component (may be empty)."""
        clean = self.diffusion.state_from_batch(data)
        if clean.condition is not None:  # drawn before the noise, from the same generator
            dropout = self.hparams.get("condition_dropout", 0.0)
            clean = clean.replace(condition=drop_conditions(clean.condition, dropout, generator))
        rate = self.hparams.get("fixed_part_rate", 0.0)
        if rate and is_fixed_part_aware(self.denoiser):
            free = self.hparams.get("fixed_part_free", ())
            clean = clean.replace(known=random_known_part(clean, rate, generator, free))
        per_graph, parts = self.diffusion.loss(self.denoiser, clean, generator=generator)
        return per_graph.mean(), {name: value.mean() for name, value in parts.items()}

    def training_step(self, data, batch_idx):
        loss, parts = self._loss(data)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite training loss at step {self.global_step}: {loss.item()}")
        self.log("train/loss", loss, prog_bar=True, batch_size=data.num_graphs)
        for name, value in parts.items():
            self.log(f"train/loss_{name}", value, batch_size=data.num_graphs)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.diffusion.after_optimizer_step(self.denoiser)

    def validation_step(self, data, batch_idx):
        # Fixed noise per validation batch, so that successive evaluations compare the model, not the draw.
        generator = torch.Generator(device=data.pos.device).manual_seed(batch_idx)
        loss, parts = self._loss(data, generator)
        self.log("val/loss", loss, prog_bar=True, batch_size=data.num_graphs, sync_dist=True)
        for name, value in parts.items():
            self.log(f"val/loss_{name}", value, batch_size=data.num_graphs, sync_dist=True)

    def configure_optimizers(self):
        # the denoiser only: a distillation's teacher and target network are not trained
        return adamw(optimizer_groups(self.denoiser, self.hparams.optim), self.hparams.optim)

    def _take_configured_learning_rates(self) -> None:
        # A resumed run restores its optimiser state, learning rates included. The configured rates win, so
        # that a run can go on at a lower rate with the moments it has (README, "A run writes everything").
        optimizer = self.optimizers(use_pl_optimizer=False)
        configured = [
            float(group.get("lr", self.hparams.optim["lr"]))
            for group in optimizer_groups(self.denoiser, self.hparams.optim)
        ]
        for group, lr in zip(optimizer.param_groups, configured):
            if group["lr"] != lr:
                log.info("learning rate %g (the resumed optimiser had %g)", lr, group["lr"])
                group["lr"] = lr
