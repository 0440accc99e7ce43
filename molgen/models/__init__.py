"""Denoisers: equivariant layers plus embeddings, built by name from a config, and the model builder."""

from __future__ import annotations

import inspect

import torch

from molgen.dataset_info import DatasetInfo
from molgen.diffusion.build import build_diffusion
from molgen.diffusion.process import DiffusionProcess
from molgen.diffusion.structure_loss import StructureLossFn
from molgen.models.chain_transformer import ChainTransformer
from molgen.models.e3nn_denoiser import E3NNDenoiser
from molgen.models.egnn_bonds import EGNNBondDenoiser
from molgen.models.egnn_denoiser import EGNNDenoiser
from molgen.models.egnn_vectors import EGNNVectorDenoiser
from molgen.proteins.internal_coordinates import ca_distance_loss, nonlocal_ca_distance_loss
from molgen.registry import Registry

DENOISERS: Registry[type[torch.nn.Module]] = Registry("model")
DENOISERS.register("egnn")(EGNNDenoiser)
DENOISERS.register("e3nn")(E3NNDenoiser)
DENOISERS.register("egnn_bonds")(EGNNBondDenoiser)
DENOISERS.register("egnn_vectors")(EGNNVectorDenoiser)
DENOISERS.register("chain_transformer")(ChainTransformer)

#: ``diffusion.structure_loss.name`` -> the loss (:mod:`molgen.diffusion.structure_loss`), for the denoisers
#: whose features describe a structure: the chain transformer's virtual angles.
STRUCTURE_LOSSES: dict[str, StructureLossFn] = {
    "ca_distances": ca_distance_loss,
    "nonlocal_ca_distances": nonlocal_ca_distance_loss,
}


def is_joint_denoiser(name_or_model) -> bool:
    """Whether a denoiser (or its registry name) predicts classes and pair classes for a joint diffusion."""
    cls = DENOISERS.get(name_or_model) if isinstance(name_or_model, str) else type(name_or_model)
    return bool(getattr(cls, "joint", False))


def build_denoiser(
    config: dict,
    in_node_dim: int,
    num_edge_classes: int | None = None,
    num_conditions: int = 0,
    num_node_labels: int = 0,
) -> torch.nn.Module:
    """Instantiate a denoiser from ``{"name": ..., **kwargs}``.

    ``in_node_dim`` (feature width), for joint denoisers ``num_edge_classes``, for
    conditional models ``num_conditions`` (target properties) and ``num_node_labels`` (per-node
    label classes: the last channels of ``h``, or the state's ``node_labels``) come from the data, not the config.
    """
    config = dict(config)
    name = config.pop("name", None)
    cls = DENOISERS[name]
    for key, value, what in (
        ("num_conditions", num_conditions, "conditions"),
        ("num_node_labels", num_node_labels, "node labels (secondary structure)"),
    ):
        if value:
            if key not in inspect.signature(cls).parameters:
                takers = sorted(n for n in DENOISERS if key in inspect.signature(DENOISERS[n]).parameters)
                raise ValueError(f"model {name!r} takes no {what}; models that do are {takers}")
            config[key] = value
    if is_joint_denoiser(name):
        if num_edge_classes is None:
            raise ValueError(
                f"model {name!r} generates bonds: it needs a joint diffusion and data with bonds "
                "(e.g. experiment=qm9_bonds)"
            )
        return cls(in_node_dim=in_node_dim, num_edge_classes=num_edge_classes, **config)
    if num_edge_classes is not None:
        raise ValueError(
            f"model {name!r} predicts coordinates and features only; the joint diffusion needs a bond model "
            f"(choose from {sorted(n for n in DENOISERS if is_joint_denoiser(n))})"
        )
    return cls(in_node_dim=in_node_dim, **config)


def build_model(model: dict, diffusion: dict, info: DatasetInfo) -> tuple[torch.nn.Module, DiffusionProcess]:
    """``(denoiser, process)`` from the ``model`` and ``diffusion`` configs and the data's info.

    The process sizes the network (a process with categorical channels needs a joint
    denoiser) and wraps it (a v-predicting network is converted to return the noise); data
    with target properties (``info.conditions``) make it a conditional network.
    """
    process = build_diffusion(diffusion, getattr(info, "categorical", None), STRUCTURE_LOSSES)
    conditions = getattr(info, "conditions", None)
    num_conditions = len(conditions["names"]) if conditions else 0
    num_node_labels = info.num_node_labels
    if info.labels_in_features and getattr(process, "diffuse_features", False):
        raise ValueError("per-node labels condition the model and are never noised: set diffuse_features=false")
    network = build_denoiser(
        model,
        **process.network_dims(int(info.num_features)),
        num_conditions=num_conditions,
        num_node_labels=num_node_labels,
    )
    return process.wrap_network(network), process


__all__ = [
    "DENOISERS",
    "STRUCTURE_LOSSES",
    "ChainTransformer",
    "EGNNBondDenoiser",
    "EGNNDenoiser",
    "EGNNVectorDenoiser",
    "build_denoiser",
    "build_model",
    "is_joint_denoiser",
]
