"""Denoisers: equivariant layers plus embeddings, built by name from a config."""

from __future__ import annotations

import torch

from molgen.models.e3nn_denoiser import E3NNDenoiser
from molgen.models.egnn_bonds import EGNNBondDenoiser
from molgen.models.egnn_denoiser import EGNNDenoiser

DENOISERS: dict[str, type[torch.nn.Module]] = {
    "egnn": EGNNDenoiser,
    "e3nn": E3NNDenoiser,
    "egnn_bonds": EGNNBondDenoiser,
}


def is_joint_denoiser(name_or_model) -> bool:
    """Whether a denoiser (or its registry name) predicts classes and pair classes for a joint diffusion."""
    cls = DENOISERS.get(name_or_model) if isinstance(name_or_model, str) else type(name_or_model)
    return bool(getattr(cls, "joint", False))


def build_denoiser(config: dict, in_node_dim: int, num_edge_classes: int | None = None) -> torch.nn.Module:
    """Instantiate a denoiser from ``{"name": ..., **kwargs}``.

    ``in_node_dim`` (feature width) and, for joint denoisers,
    ``num_edge_classes`` come from the data, not the config.
    """
    config = dict(config)
    name = config.pop("name", None)
    if name not in DENOISERS:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(DENOISERS)}")
    if is_joint_denoiser(name):
        if num_edge_classes is None:
            raise ValueError(
                f"model {name!r} generates bonds: it needs a joint diffusion and data with bonds "
                "(e.g. experiment=qm9_bonds)"
            )
        return DENOISERS[name](in_node_dim=in_node_dim, num_edge_classes=num_edge_classes, **config)
    if num_edge_classes is not None:
        raise ValueError(
            f"model {name!r} predicts coordinates and features only; the joint diffusion needs a bond model "
            f"(choose from {sorted(n for n in DENOISERS if is_joint_denoiser(n))})"
        )
    return DENOISERS[name](in_node_dim=in_node_dim, **config)


__all__ = ["DENOISERS", "EGNNBondDenoiser", "EGNNDenoiser", "build_denoiser", "is_joint_denoiser"]
