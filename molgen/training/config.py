"""Typed schemas of the training config (Hydra structured configs), and the check of overrides.

Every option of a config group (a yaml file under ``conf/<group>/``) starts its defaults
list with its schema, registered in Hydra's ConfigStore under the same group as
``_<option>_schema`` (see :data:`GROUP_SCHEMAS`); ``conf/config.yaml`` starts with
``_config_schema`` (:class:`TrainConfig`). :func:`register_schemas` stores them; importing
``molgen.conf`` calls it, so whatever composes that config module finds them. When Hydra
composes the config, OmegaConf then rejects an unknown key, a value of the wrong type and
a null for a key that does not take one, whether it comes from a yaml file, an experiment
or the command line (OmegaConf converts what it can: ``1`` or ``yes`` to a bool, ``5`` to
``5.0`` where a float is expected, anything scalar to a str). A key added on purpose with
Hydra's ``+key=value`` is not refused; the constructor it reaches is.

The schemas declare the keys and their types only; the values stay in the yaml files
(``MISSING`` here). Keys several options share are declared once, in a base class (which
puts them first in the composed config).
Keys that take several types are ``Any``: ``trainer.devices`` (``1``, ``auto`` or
``[0, 1]``), ``trainer.precision`` (``32`` or ``bf16-mixed``), ``trainer.max_time``
(null or ``DD:HH:MM:SS``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from omegaconf import MISSING

# OmegaConf reads these annotations at run time; it understands Optional[...], not `X | None`.


# ----- data ----------------------------------------------------------------
@dataclass
class DataConfig:
    """Keys every data option has: the dataset ``name``, the training subset, the loader and the cache."""

    name: str = MISSING
    subset: Optional[int] = MISSING
    batch_size: int = MISSING
    num_workers: int = MISSING
    cache_dir: Optional[str] = MISSING


@dataclass
class QM9PropertiesConfig(DataConfig):
    """QM9 keys of property conditioning (issue 26): the properties served as targets and the half of
    the training split (EDM's protocol, :mod:`molgen.molecules.qm9_properties`)."""

    val_subset: Optional[int] = MISSING
    conditions: List[str] = MISSING
    half: Optional[str] = MISSING


@dataclass
class QM9DataConfig(QM9PropertiesConfig):
    """``data=qm9``: :func:`molgen.molecules.qm9.qm9_train_val` plus the loader options."""

    remove_h: bool = MISSING


@dataclass
class QM9BondsDataConfig(QM9PropertiesConfig):
    """``data=qm9_bonds``: :func:`molgen.molecules.qm9_bonds.qm9_bonds_train_val` plus the loader options."""

    perception_workers: Optional[int] = MISSING


@dataclass
class DrugsDataConfig(DataConfig):
    """``data=drugs``: :func:`molgen.molecules.drugs.drugs_train_val` plus the loader options."""

    num_molecules: int = MISSING
    val_molecules: int = MISSING
    workers: Optional[int] = MISSING


@dataclass
class BackboneDataConfig(DataConfig):
    """``data=backbone``: :func:`molgen.proteins.dataset.backbone_train_val` plus the loader options.

    ``root`` is required at run time, but null in the yaml: the data module names it when unset. It is one
    folder or a list of folders (``data.root=[A,B]``), hence ``Any``.
    """

    root: Any = MISSING
    val_fraction: float = MISSING
    min_length: int = MISSING
    max_length: int = MISSING
    length_scale: float = MISSING
    split_seed: int = MISSING
    atoms: List[str] = MISSING
    node_vectors: List[str] = MISSING
    vector_scale: float = MISSING
    secondary_structure: bool = MISSING
    label_dropout: float = MISSING
    internal_coordinates: bool = MISSING


# ----- model -----------------------------------------------------------------
@dataclass
class GraphOptions:
    """How :class:`molgen.nn.graphs.GraphBuilder` connects the nodes (EGNN and e3nn denoisers)."""

    graph: str = MISSING
    knn_k: int = MISSING
    atoms_per_residue: int = MISSING
    chain_window: int = MISSING
    max_residue_offset: int = MISSING


@dataclass
class EGNNLayerOptions:
    """What every EGNN network shares: its name, size and :class:`molgen.nn.egnn.EGNNLayer` options."""

    name: str = MISSING
    hidden_dim: int = MISSING
    num_layers: int = MISSING
    attention: bool = MISSING
    aggregation: str = MISSING
    normalization_factor: float = MISSING
    tanh: bool = MISSING
    coords_range: float = MISSING
    norm_constant: float = MISSING


@dataclass
class EGNNOptions(EGNNLayerOptions):
    """What the EGNN denoisers share: the layers, the time embedding and self-conditioning
    (:mod:`molgen.diffusion.self_conditioning`)."""

    time_embedding: str = MISSING
    self_conditioning: bool = MISSING
    condition_layers: bool = MISSING


@dataclass
class EGNNModelConfig(EGNNOptions, GraphOptions):
    """``model=egnn``: :class:`molgen.models.egnn_denoiser.EGNNDenoiser`."""

    distance_rbf: int = MISSING
    rbf_cutoff: float = MISSING
    chirality: bool = MISSING


@dataclass
class EGNNVectorsModelConfig(EGNNLayerOptions, GraphOptions):
    """``model=egnn_vectors``: :class:`molgen.models.egnn_vectors.EGNNVectorDenoiser`."""

    time_embedding: str = MISSING
    distance_rbf: int = MISSING
    rbf_cutoff: float = MISSING


@dataclass
class EGNNBondsModelConfig(EGNNOptions):
    """``model=egnn_bonds``: :class:`molgen.models.egnn_bonds.EGNNBondDenoiser`."""

    edge_dim: int = MISSING
    update_edges: bool = MISSING
    fixed_part_input: bool = MISSING


@dataclass
class E3NNModelConfig(GraphOptions):
    """``model=e3nn``: :class:`molgen.models.e3nn_denoiser.E3NNDenoiser`."""

    name: str = MISSING
    hidden_scalars: int = MISSING
    hidden_vectors: int = MISSING
    hidden_l2: int = MISSING
    num_layers: int = MISSING
    lmax: int = MISSING
    num_radial: int = MISSING
    cutoff: Optional[float] = MISSING
    time_embedding: str = MISSING
    parity: bool = MISSING
    normalization_factor: float = MISSING


@dataclass
class ChainTransformerModelConfig:
    """``model=chain_transformer``: :class:`molgen.models.chain_transformer.ChainTransformer`."""

    name: str = MISSING
    hidden_dim: int = MISSING
    num_layers: int = MISSING
    num_heads: int = MISSING
    feedforward_dim: int = MISSING
    self_conditioning: bool = MISSING
    distance_rbf: int = MISSING
    rbf_cutoff: float = MISSING


@dataclass
class PropertyEGNNModelConfig(EGNNLayerOptions):
    """``model=property_egnn``: :class:`molgen.models.property_predictor.PropertyPredictor` (no diffusion)."""

    input_noise: float = MISSING


# ----- diffusion -------------------------------------------------------------
# Noise schedules (molgen.diffusion.schedules): `name` plus the constructor's arguments.
@dataclass
class ScheduleConfig:
    name: str = MISSING
    precision: float = MISSING


@dataclass
class PolynomialScheduleConfig(ScheduleConfig):
    power: float = MISSING


@dataclass
class CosineScheduleConfig(ScheduleConfig):
    offset: float = MISSING


@dataclass
class LogLinearScheduleConfig(ScheduleConfig):
    log_snr_max: float = MISSING
    log_snr_min: float = MISSING


# Gaussian diffusions (molgen.diffusion.build, kind gaussian), one per schedule.
@dataclass
class GaussianDiffusionConfig:
    diffuse_features: bool = MISSING
    prediction: str = MISSING
    # An auxiliary loss on the clean estimate (molgen.diffusion.structure_loss): a name among
    # molgen.models.STRUCTURE_LOSSES, or null; its weight and the highest time it applies at.
    structure_loss: Optional[str] = None
    structure_loss_weight: float = 0.1
    structure_loss_max_time: float = 0.25


@dataclass
class PolynomialDiffusionConfig(GaussianDiffusionConfig):
    """``diffusion=polynomial``."""

    schedule: PolynomialScheduleConfig = field(default_factory=PolynomialScheduleConfig)


@dataclass
class CosineDiffusionConfig(GaussianDiffusionConfig):
    """``diffusion=cosine``."""

    schedule: CosineScheduleConfig = field(default_factory=CosineScheduleConfig)


@dataclass
class LogLinearDiffusionConfig(GaussianDiffusionConfig):
    """``diffusion=loglinear``."""

    schedule: LogLinearScheduleConfig = field(default_factory=LogLinearScheduleConfig)


@dataclass
class CategoricalPowerConfig:
    """Exponent of the categorical schedule per channel of ``data=qm9_bonds``."""

    atom_type: float = MISSING
    charge: float = MISSING
    bond: float = MISSING


@dataclass
class JointLossWeightsConfig(CategoricalPowerConfig):
    """Loss weight of each categorical channel and of the positions."""

    positions: float = MISSING


@dataclass
class JointDiffusionConfig:
    """``diffusion=joint``: :func:`molgen.diffusion.joint.build_joint_diffusion`."""

    kind: str = MISSING
    schedule: PolynomialScheduleConfig = field(default_factory=PolynomialScheduleConfig)
    categorical_schedule: CosineScheduleConfig = field(default_factory=CosineScheduleConfig)
    categorical_power: CategoricalPowerConfig = field(default_factory=CategoricalPowerConfig)
    loss_weights: JointLossWeightsConfig = field(default_factory=JointLossWeightsConfig)


# ----- trainer ---------------------------------------------------------------
@dataclass
class TrainerConfig:
    """``trainer=default`` and ``trainer=ddp``: the Lightning Trainer and callbacks of :func:`molgen.training.train`.

    ``gradient_clip_val`` takes null too (no clipping), as Lightning does.
    """

    accelerator: str = MISSING
    devices: Any = MISSING
    strategy: str = MISSING
    num_nodes: int = MISSING
    precision: Any = MISSING
    max_steps: int = MISSING
    max_time: Any = MISSING
    gradient_clip_val: Optional[float] = MISSING
    val_check_interval: int = MISSING
    checkpoint_every_n_steps: int = MISSING
    log_every_n_steps: int = MISSING
    ema_decay: float = MISSING
    progress_bar: bool = MISSING


# ----- the whole config ------------------------------------------------------
@dataclass
class DistillConfig:
    """Distillation from ``teacher`` (:mod:`molgen.diffusion.distillation`): consistency or progressive."""

    method: str = MISSING
    solver_steps: int = MISSING
    grid: str = MISSING
    target_decay: float = MISSING
    snr_floor: float = MISSING
    prediction: Optional[str] = MISSING
    teacher_steps: int = MISSING
    classes: str = MISSING
    class_temperature: float = MISSING


@dataclass
class OptimConfig:
    """AdamW (:meth:`molgen.training.module.DiffusionModule.configure_optimizers`)."""

    lr: float = MISSING
    weight_decay: float = MISSING
    amsgrad: bool = MISSING
    condition_lr_scale: float = MISSING


@dataclass
class TrainConfig:
    """``conf/config.yaml``: the groups (typed by their options' schemas) and the top-level keys."""

    data: Any = MISSING
    model: Any = MISSING
    diffusion: Any = MISSING
    trainer: Any = MISSING
    seed: int = MISSING
    ckpt_path: Optional[str] = MISSING
    init_from: Optional[str] = MISSING
    teacher: Optional[str] = MISSING
    condition_dropout: float = MISSING
    fixed_part_rate: float = MISSING
    fixed_part_free: List[str] = MISSING
    distill: DistillConfig = field(default_factory=DistillConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)


#: Schema of each option of each config group: ``conf/<group>/<option>.yaml`` lists
#: ``_<option>_schema`` first in its defaults (``trainer=ddp`` extends ``trainer=default``).
GROUP_SCHEMAS: dict[str, dict[str, type]] = {
    "data": {
        "qm9": QM9DataConfig,
        "qm9_bonds": QM9BondsDataConfig,
        "drugs": DrugsDataConfig,
        "backbone": BackboneDataConfig,
    },
    "model": {
        "egnn": EGNNModelConfig,
        "egnn_bonds": EGNNBondsModelConfig,
        "egnn_vectors": EGNNVectorsModelConfig,
        "e3nn": E3NNModelConfig,
        "chain_transformer": ChainTransformerModelConfig,
        "property_egnn": PropertyEGNNModelConfig,
    },
    "diffusion": {
        "polynomial": PolynomialDiffusionConfig,
        "cosine": CosineDiffusionConfig,
        "loglinear": LogLinearDiffusionConfig,
        "joint": JointDiffusionConfig,
    },
    "trainer": {"default": TrainerConfig},
}
#: Name of the top-level schema, first in the defaults of ``conf/config.yaml``.
CONFIG_SCHEMA = "_config_schema"


def schema_name(option: str) -> str:
    """ConfigStore name of the schema of a group's option (``egnn`` -> ``_egnn_schema``)."""
    return f"_{option}_schema"


def register_schemas() -> None:
    """Register the schemas in Hydra's ConfigStore; needed before composing the config (idempotent)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name=CONFIG_SCHEMA, node=TrainConfig)
    for group, options in GROUP_SCHEMAS.items():
        for option, schema in options.items():
            store.store(group=group, name=schema_name(option), node=schema)


def _error_line(err: Exception) -> str:
    """One line for a composition error of Hydra or OmegaConf."""
    from hydra.errors import MissingConfigException
    from omegaconf import BooleanNode, FloatNode, IntegerNode, StringNode
    from omegaconf.errors import ValidationError

    cause = err.__cause__ if err.__cause__ is not None else err
    node = getattr(cause, "child_node", None)
    names = {IntegerNode: "int", FloatNode: "float", BooleanNode: "bool", StringNode: "str"}
    expected = names.get(type(node))
    if isinstance(cause, ValidationError) and getattr(cause, "full_key", None) and expected is not None:
        # a value the schema rejects: "model.hidden_dim must be int, got 'abc'"
        if node._is_optional():
            expected += " or null"
        return f"{cause.full_key} must be {expected}, got {'null' if cause.value is None else repr(cause.value)}"
    lines = str(err).splitlines()
    # "In 'experiment/backbone': ConfigKeyError raised while composing config:" names the error on the next line
    message = " ".join(lines[:2]) if len(lines) > 1 and lines[0].endswith(":") else lines[0]
    if err.__cause__ is not None:  # e.g. "Key 'foo' not in 'TrainerConfig'"
        message += f" ({str(err.__cause__).splitlines()[0]})"
    if isinstance(err, MissingConfigException) and err.options:
        options = [o for o in err.options if not (o.startswith("_") and o.endswith("_schema"))]
        message += f"; available: {', '.join(options)}"
    return message


def validate_overrides(overrides: list[str]) -> str | None:
    """Compose the training config with Hydra's compose API; return an error line or None.

    Catches unknown groups, options and keys, malformed overrides, and values the
    schemas reject (wrong type, null where a value is required).
    """
    from hydra import compose, initialize_config_module
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    register_schemas()
    try:
        with initialize_config_module(config_module="molgen.conf", version_base="1.3"):
            compose(config_name="config", overrides=overrides, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as err:
        return _error_line(err)
    return None
