"""Denoisers: equivariant layers plus embeddings, built by name from a config."""

from __future__ import annotations

import torch

from molgen.models.e3nn_denoiser import E3NNDenoiser
from molgen.models.egnn_denoiser import EGNNDenoiser

DENOISERS: dict[str, type[torch.nn.Module]] = {"egnn": EGNNDenoiser, "e3nn": E3NNDenoiser}


def build_denoiser(config: dict, in_node_dim: int) -> torch.nn.Module:
    """Instantiate a denoiser from ``{"name": ..., **kwargs}``.

    ``in_node_dim`` comes from the data (feature width), not the config.
    """
    config = dict(config)
    name = config.pop("name", None)
    if name not in DENOISERS:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(DENOISERS)}")
    return DENOISERS[name](in_node_dim=in_node_dim, **config)


__all__ = ["DENOISERS", "EGNNDenoiser", "build_denoiser"]
