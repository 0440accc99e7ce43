"""Generate protein backbones with a trained model: chain lengths, sampling, Å coordinates.

Each backbone of ``L`` residues is a graph of ``4 L`` nodes in residue-major
order (N, CA, C, O of residue 0, then residue 1, ...), whose atom types are
fixed conditioning features; only coordinates are generated. Seeding and
sharding follow :mod:`molgen.generation`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from molgen.checkpoint import TrainedModel
from molgen.generation import check_shard, sample_batches, sample_from_histogram, seeded_generator
from molgen.proteins.geometry import BACKBONE_ATOMS

#: Longest chain the PDB writer numbers (4-digit residue numbers).
MAX_LENGTH = 9999


def parse_length(text: str) -> tuple[int, int]:
    """``"100"`` -> ``(100, 100)``; ``"60-120"`` -> ``(60, 120)`` (inclusive range)."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", text)
    if match is None:
        raise ValueError(f"length must be N or MIN-MAX (e.g. 100 or 60-120), got {text!r}")
    low = int(match.group(1))
    high = int(match.group(2) or low)
    if not 2 <= low <= high <= MAX_LENGTH:
        raise ValueError(f"length range must satisfy 2 <= MIN <= MAX <= {MAX_LENGTH}, got {text!r}")
    return low, high


def backbone_features(num_residues: Tensor) -> Tensor:
    """Clean node features of chains with ``num_residues [B]`` residues: one-hot
    atom types in residue-major order, ``[4 * sum(num_residues), 4]`` float32."""
    per_residue = torch.eye(len(BACKBONE_ATOMS))
    return per_residue.repeat(int(num_residues.sum()), 1)


def generate_backbones(
    model: TrainedModel,
    num_samples: int,
    *,
    length: tuple[int, int] | None = None,
    steps: int = 500,
    sampler: str = "ddpm",
    sampler_options: Mapping[str, Any] | None = None,
    batch_size: int = 16,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = True,
    shard: tuple[int, int] = (0, 1),
) -> list[np.ndarray]:
    """Sample ``num_samples`` backbones.

    Args:
        length: inclusive range of residue counts, drawn uniformly per
            backbone; None draws lengths from the training set's histogram
            stored in the checkpoint.
        steps, sampler, sampler_options: reverse-process settings (see
            :func:`molgen.diffusion.make_sampler`).
        batch_size: backbones denoised together.
        shard: ``(rank, world_size)``, as for molecules.

    Returns:
        One ``[L, 4, 3]`` float64 array per backbone, in Å, atoms N, CA, C, O,
        centred on the mean of its atoms.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    check_shard(shard)
    info = model.dataset_info
    if info.get("domain") != "backbone":
        raise ValueError(f"this checkpoint generates {info.get('domain', 'molecules')}, not protein backbones")
    atoms = len(BACKBONE_ATOMS)
    if list(info["atom_types"]) != list(BACKBONE_ATOMS):
        raise ValueError(f"checkpoint atom types {info['atom_types']} differ from {list(BACKBONE_ATOMS)}")
    if length is None:
        residues = sample_from_histogram(info["num_residues_histogram"], num_samples, seed)
    else:
        low, high = length
        residues = torch.randint(low, high + 1, (num_samples,), generator=seeded_generator(seed))

    backbones: list[np.ndarray] = []
    batches = sample_batches(
        model,
        residues * atoms,
        condition=lambda sizes: backbone_features(sizes // atoms),
        steps=steps,
        sampler=sampler,
        sampler_options=sampler_options,
        batch_size=batch_size,
        seed=seed,
        device=device,
        progress=progress,
        shard=shard,
        unit="backbones",
    )
    scale = float(info["length_scale"])
    for sizes, pos, _ in batches:
        coords = (pos * scale).numpy()
        ptr = np.concatenate([[0], np.cumsum(sizes.numpy())])
        backbones += [coords[a:b].reshape(-1, atoms, 3) for a, b in zip(ptr[:-1], ptr[1:])]
    return backbones
