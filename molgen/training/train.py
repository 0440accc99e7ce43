"""`molgen train`: compose the Hydra config, build objects, run Lightning.

Everything a run writes goes under its run directory (``hydra.run.dir``):

    .hydra/                      Hydra's composed config and overrides
    config_resolved.yaml         the config with interpolations resolved
    logs/metrics.csv             CSV log;  logs/events.*  TensorBoard log
    checkpoints/last.ckpt        latest state (resume point)
    checkpoints/best.ckpt        lowest validation loss
    .molgen.lock                 while the run is going (one run per directory)

Checkpoints are written to a temporary file and renamed when complete
(:class:`AtomicCheckpointIO`), so an interrupted save leaves the previous one.
Starting the same command again on the same run directory resumes from
``checkpoints/last.ckpt``; a changed model or diffusion config is refused
with the differing keys named (:func:`molgen.training.module.check_resumable`);
a changed ``optim.lr`` is taken, and ``logs/metrics.csv`` continues
(:mod:`molgen.training.csv_log`). A new run can instead start from another model's weights (``init_from``, see
:func:`warm_start`) with a fresh optimiser and step count, or distil a teacher into a
few-step student (``teacher``, see :func:`teacher_configs` and docs/distillation.md).

With ``trainer=ddp`` every process runs :func:`train`; Lightning shards the
data, averages gradients, and only rank 0 writes files (docs/distributed.md).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import (
    LearningRateMonitor,
    ModelCheckpoint,
    ThroughputMonitor,
    TQDMProgressBar,
    WeightAveraging,
)
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from molgen.checkpoint_files import CheckpointError, read_checkpoint_file
from molgen.dataset_info import DatasetInfo
from molgen.io import atomic_output
from molgen.locks import exclusive_lock
from molgen.models.property_predictor import PREDICTORS
from molgen.training.csv_log import ResumableCSVLogger
from molgen.training.data import build_datamodule
from molgen.training.module import LABEL_MAPS, DiffusionModule, load_model_source, student_diffusion
from molgen.training.property_module import PropertyModule

log = logging.getLogger(__name__)

# ThroughputMonitor logs samples/s and batches/s; FLOPs would need a per-model count nobody reads.
warnings.filterwarnings("ignore", message="When using the `ThroughputMonitor`, you need to define a `flops_per_batch`")


def _graphs_in_batch(batch) -> int:
    """Molecules or backbones in a training batch (ThroughputMonitor's sample count)."""
    return batch.num_graphs


def _container(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg, resolve=True)


def resume_checkpoint(cfg: DictConfig, run_dir: Path) -> tuple[Path, int] | None:
    """The checkpoint to resume from and its global step: ``ckpt_path`` if set, else the run's last.ckpt if present.

    The file is read first (:func:`~molgen.checkpoint_files.read_checkpoint_file`), so an
    empty, truncated, foreign or unsafe one is reported in one line, with the other
    checkpoints of the run to resume from instead.

    Raises:
        CheckpointError: the checkpoint cannot be resumed from.
    """
    if cfg.ckpt_path:
        path, advice = Path(cfg.ckpt_path), "give another ckpt_path"
    else:
        path = run_dir / "checkpoints" / "last.ckpt"
        if not path.exists():
            return None
        others = sorted(str(p) for p in path.parent.glob("*.ckpt") if p.name != path.name)
        advice = f"resume from another with ckpt_path={others[0]}" if others else "delete it to start the run again"
    try:
        contents = read_checkpoint_file(path, advice)
    except CheckpointError as err:
        raise CheckpointError(f"cannot resume: {err}") from err
    return path, int(contents.get("global_step", 0)) if isinstance(contents, dict) else 0


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, writing to a temporary file renamed over the target when
    complete: an interrupted save (kill -9, full disk) leaves the previous checkpoint intact."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path) as tmp:
            super().save_checkpoint(checkpoint, tmp, storage_options)


@contextmanager
def run_directory_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run directory for this run's first process (other ranks of a DDP run share it)."""
    if rank_zero_only.rank != 0:
        yield
        return
    with exclusive_lock(
        run_dir / ".molgen.lock",
        f"run directory {run_dir}",
        "wait for that run to finish, or use another hydra.run.dir",
    ):
        yield


def warm_start(denoiser: torch.nn.Module, source: str) -> list[str]:
    """Load the denoiser weights of ``source`` into ``denoiser``, to fine-tune them.

    ``source`` is a molgen checkpoint file (its EMA weights) or the name of a
    shipped model (``molgen models``). Every weight of the source must exist
    in ``denoiser`` with the same shape; ``denoiser`` may have more, such as the
    zero-initialised estimate embedding of ``model.self_conditioning``, which keep
    their initialisation. The one exception: a fold-conditioned source's label maps
    (:data:`LABEL_MAPS`, without bias) are left out of a denoiser without labels, since
    the source with every label hidden is exactly the network without them.

    Returns:
        The names of the weights the source did not have.
    Raises:
        CheckpointError: ``source`` is neither a file nor a shipped model, is
            unreadable, or its weights do not fit this model (the keys are named).
    """
    weights = load_model_source(source, "init_from").denoiser.state_dict()
    own = denoiser.state_dict()
    unused = [k for k in weights if k not in own and _is_label_map(k)]
    if unused:
        log.info(
            "init_from=%s: its label maps (%s) are left out: this model takes no labels", source, ", ".join(unused)
        )
        weights = {k: v for k, v in weights.items() if k not in unused}
    unfit = [k for k in weights if k not in own or own[k].shape != weights[k].shape]
    if unfit:
        shown = ", ".join(unfit[:5]) + (f" and {len(unfit) - 5} more" if len(unfit) > 5 else "")
        raise CheckpointError(
            f"init_from={source!r}: its weights do not fit this model ({shown} missing here or shaped "
            "differently); use the model config the source was trained with"
        )
    denoiser.load_state_dict(weights, strict=False)
    return [k for k in own if k not in weights]


def _is_label_map(key: str) -> bool:
    """Whether a state-dict key is the weight of a :data:`~molgen.training.module.LABEL_MAPS` module."""
    module, _, parameter = key.rpartition(".")
    return parameter == "weight" and module.rsplit(".", 1)[-1] in LABEL_MAPS


#: DatasetInfo keys (at any depth) that describe a data set's contents rather than what its nodes and pairs mean.
DATA_STATISTICS = ("dataset", "size_histogram", "num_dropped", "max_length", "marginals")


def _meaning(value):
    """A :meth:`DatasetInfo.to_dict` without its :data:`DATA_STATISTICS`: what a model's inputs mean."""
    if isinstance(value, dict):
        return {key: _meaning(item) for key, item in value.items() if key not in DATA_STATISTICS}
    if isinstance(value, list):
        return [_meaning(item) for item in value]
    return value


def teacher_configs(cfg: DictConfig, data_info: DatasetInfo) -> dict:
    """The ``model``, ``diffusion``, ``dataset_info`` and ``distill`` arguments of a distillation's
    :class:`DiffusionModule`: the teacher's configs and data info (so that the student samples as the
    teacher does), and ``distill`` with the teacher's source. The run's model and diffusion groups are
    replaced by the teacher's in ``cfg``.

    Raises:
        CheckpointError: the teacher cannot be loaded.
        ValueError: with ``init_from`` (a student starts from its teacher), or data whose nodes and pairs
            mean something else than the teacher's (other features, channels or classes).
    """
    if cfg.init_from:
        raise ValueError(
            "teacher and init_from exclude each other: a student starts from its teacher's weights "
            "(continue a distillation by resuming its run)"
        )
    teacher = load_model_source(cfg.teacher, "teacher")
    if _meaning(data_info.to_dict()) != _meaning(teacher.info.to_dict()):
        raise ValueError(
            f"teacher={cfg.teacher} was trained on data whose nodes and pairs mean something else than "
            f"data={cfg.data.name}'s: distil it on its own kind of data (experiment=distill: QM9 with bonds)"
        )
    diffusion = student_diffusion(teacher.config["diffusion"], cfg.distill.get("prediction"))
    cfg.model, cfg.diffusion = teacher.config["model"], diffusion
    return {
        "model": teacher.config["model"],
        "diffusion": diffusion,
        "dataset_info": teacher.info.to_dict(),
        "distill": {"teacher": cfg.teacher, **_container(cfg.distill)},
    }


def ema_with_warmup(decay: float):
    """Exponential moving average whose decay ramps up as ``min(decay, (1 + n) / (10 + n))``
    over the ``n`` updates so far (a ``multi_avg_fn`` for ``torch.optim.swa_utils.AveragedModel``).

    Without the ramp a short run's average is mostly the random initialisation:
    ``0.999 ** 300 = 0.74`` of it after 300 steps.
    """

    def multi_avg_fn(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        n = float(num_averaged)
        torch._foreach_lerp_(averaged, current, 1.0 - min(decay, (1.0 + n) / (10.0 + n)))

    return multi_avg_fn


def _relaunches_command(trainer: L.Trainer) -> bool:
    """Whether Lightning starts this node's other ranks by re-running the command line (local DDP)."""
    launcher = trainer.strategy.launcher
    return (
        isinstance(launcher, _SubprocessScriptLauncher)
        and launcher.num_processes > 1
        and not launcher.cluster_environment.creates_processes_externally
    )


def ddp_strategy(strategy: str, module: DiffusionModule) -> str:
    """``strategy``, or its unused-parameter variant where the model needs it.

    A model whose node features are clean conditioning (backbones) never uses
    its feature readout, and DDP stops at the first step unless told to look
    for parameters without gradients (which costs a graph traversal per step,
    so it is only switched on here).
    """
    if strategy == "ddp" and module.diffusion.conditions_on_features:
        log.info("node features are conditioning only: using DDP with find_unused_parameters")
        return "ddp_find_unused_parameters_true"
    return strategy


def train(cfg: DictConfig, run_dir: Path, sweep: bool = False) -> Path:
    """Train a diffusion model, or a property predictor (a model in ``PREDICTORS``), as configured;
    returns the checkpoint directory.

    ``sweep`` marks a job of a Hydra multirun, which local DDP cannot serve:
    its re-run command line would start the whole sweep again.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    with run_directory_lock(run_dir):
        return _train(cfg, run_dir, sweep)


def fixed_part_classes(names: list[str], dataset_info: dict) -> list[int]:
    """The indices of config ``fixed_part_free``'s class ``names`` in the first node channel of the data."""
    if not names:
        return []
    channels = (dataset_info.get("categorical") or {}).get("node")
    if not channels:
        raise ValueError(f"fixed_part_free={names} needs data with categorical node classes (a bond model's)")
    classes = list(channels[0]["classes"])
    unknown = [name for name in names if name not in classes]
    if unknown:
        raise ValueError(f"fixed_part_free: {unknown} are not {channels[0]['name']} classes of the data: {classes}")
    return [classes.index(name) for name in names]


def _train(cfg: DictConfig, run_dir: Path, sweep: bool) -> Path:
    """:func:`train` once the run directory is held."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    resume = resume_checkpoint(cfg, run_dir)  # before the data: a bad checkpoint stops the run at once
    ckpt, resume_step = resume if resume is not None else (None, None)
    predictor = cfg.model.name in PREDICTORS  # a property predictor (PropertyModule), not a denoiser
    if predictor and (cfg.init_from or cfg.teacher):
        raise ValueError(
            f"init_from and teacher start a diffusion model from another one's weights: model={cfg.model.name} "
            "is a property predictor, which starts from its initialisation"
        )
    datamodule = build_datamodule(_container(cfg.data))
    if predictor:
        configs = {"model": _container(cfg.model), "dataset_info": datamodule.dataset_info.to_dict()}
    elif cfg.teacher:
        configs = teacher_configs(cfg, datamodule.dataset_info)
        log.info("distilling %s: the student takes its model, diffusion and dataset_info", cfg.teacher)
    else:
        configs = {
            "model": _container(cfg.model),
            "diffusion": _container(cfg.diffusion),
            "dataset_info": datamodule.dataset_info.to_dict(),
        }
    if not predictor:
        configs.update(
            condition_dropout=cfg.condition_dropout,
            fixed_part_rate=cfg.fixed_part_rate,
            fixed_part_free=fixed_part_classes(list(cfg.fixed_part_free), configs["dataset_info"]),
        )
    if rank_zero_only.rank == 0:  # the configs the run trains with (a student's model and diffusion: its teacher's)
        OmegaConf.save(cfg, run_dir / "config_resolved.yaml", resolve=True)
    module = (PropertyModule if predictor else DiffusionModule)(optim=_container(cfg.optim), **configs)
    network = module.predictor if predictor else module.denoiser
    kind = "property predictor" if predictor else "denoiser"
    log.info("%s: %s parameters", kind, f"{sum(p.numel() for p in network.parameters()):,}")

    tcfg = cfg.trainer
    ckpt_dir = run_dir / "checkpoints"
    if rank_zero_only.rank == 0:  # a save killed before its rename left its temporary file (the run is ours now)
        for partial in ckpt_dir.glob(".*.tmp"):
            log.warning("removing %s, left by an interrupted checkpoint save", partial)
            partial.unlink()
    callbacks = [
        # best.ckpt on validation loss, and last.ckpt after each validation
        ModelCheckpoint(
            dirpath=ckpt_dir,
            filename="best",
            monitor="val/loss",
            mode="min",
            save_top_k=1,
            save_last=True,
            auto_insert_metric_name=False,
            enable_version_counter=False,
        ),
        # last.ckpt between validations as well, so an interrupted run loses little
        ModelCheckpoint(
            dirpath=ckpt_dir,
            filename="last",
            every_n_train_steps=tcfg.checkpoint_every_n_steps,
            save_top_k=1,
            enable_version_counter=False,
        ),
        WeightAveraging(multi_avg_fn=ema_with_warmup(tcfg.ema_decay)),
        # the lr-AdamW, train/time and train/samples (graphs) columns of logs/metrics.csv (`molgen report`)
        LearningRateMonitor(logging_interval="step"),
        ThroughputMonitor(batch_size_fn=_graphs_in_batch),
    ]
    if tcfg.progress_bar:
        callbacks.append(TQDMProgressBar(refresh_rate=10))
    loggers = [
        ResumableCSVLogger(run_dir, name="logs", version="", resume_step=resume_step),
        TensorBoardLogger(run_dir, name="logs", version="", default_hp_metric=False),
    ]
    trainer = L.Trainer(
        default_root_dir=run_dir,
        plugins=[AtomicCheckpointIO()],
        accelerator=tcfg.accelerator,
        devices=tcfg.devices,
        strategy=tcfg.strategy if predictor else ddp_strategy(tcfg.strategy, module),
        num_nodes=tcfg.num_nodes,
        precision=tcfg.precision,
        max_steps=tcfg.max_steps,
        max_time=tcfg.max_time,
        gradient_clip_val=tcfg.gradient_clip_val,
        val_check_interval=tcfg.val_check_interval,
        check_val_every_n_epoch=None,
        log_every_n_steps=tcfg.log_every_n_steps,
        callbacks=callbacks,
        logger=loggers,
        enable_progress_bar=tcfg.progress_bar,
        enable_model_summary=False,
    )
    if sweep and _relaunches_command(trainer):
        raise ValueError(
            "a multirun sweep cannot start local DDP processes (each would re-run the whole sweep); "
            "run one `molgen train` per configuration, or submit the jobs to SLURM (docs/distributed.md)"
        )
    if ckpt is not None:
        log.info("resuming from %s", ckpt)
    elif cfg.init_from:
        new = warm_start(module.denoiser, cfg.init_from)
        log.info("initialised from %s (%s weights new to this model)", cfg.init_from, ", ".join(new) or "no")
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt, weights_only=True)
    return ckpt_dir
