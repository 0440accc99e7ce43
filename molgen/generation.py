"""The sampling loop every domain shares: batches, seeds, process shards, progress.

Seeding: graph sizes come from ``SeedSequence([seed])`` (see
:func:`seeded_generator`) and batch ``i`` from ``SeedSequence([seed, i])``, so
a seed fixes the output for a given batch size whatever device order or
process split is used: a run sharded over processes (``shard``) and put back
together with :func:`merge_shards` equals a single-process run.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from molgen.checkpoint import TrainedModel
from molgen.diffusion import make_sampler

T = TypeVar("T")


def derived_seed(*entropy: int) -> int:
    """A 63-bit seed mixed from integers (numpy ``SeedSequence``)."""
    return int(np.random.SeedSequence(list(entropy)).generate_state(1, dtype=np.uint64)[0] >> 1)


def seeded_generator(seed: int) -> torch.Generator:
    """CPU generator for the per-run draws (graph sizes) of ``seed``."""
    return torch.Generator().manual_seed(derived_seed(seed))


def sample_from_histogram(histogram: list[int] | Tensor, num_samples: int, seed: int) -> Tensor:
    """Draw sizes ``[num_samples]`` (long) from a histogram indexed by size, seeded by ``seed``."""
    weights = torch.as_tensor(histogram, dtype=torch.float64)
    if weights.sum() <= 0:
        raise ValueError("the checkpoint's size histogram is empty")
    return torch.multinomial(weights, num_samples, replacement=True, generator=seeded_generator(seed))


def check_shard(shard: tuple[int, int]) -> None:
    rank, world_size = shard
    if not 0 <= rank < world_size:
        raise ValueError(f"shard must be (rank, world_size) with 0 <= rank < world_size, got {shard}")


def sample_batches(
    model: TrainedModel,
    num_nodes: Tensor,
    *,
    condition: Callable[[Tensor], Tensor] | None = None,
    steps: int,
    sampler: str,
    sampler_options: Mapping[str, Any] | None = None,
    batch_size: int,
    seed: int,
    device: torch.device | str,
    progress: bool,
    shard: tuple[int, int] = (0, 1),
    unit: str = "graphs",
) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """Sample graphs of the given sizes in batches; yields one tuple per batch.

    Args:
        num_nodes: ``[M]`` long, node count of every graph to generate.
        condition: for models whose features are clean conditioning
            (``diffusion.diffuse_features`` false): maps a batch's node counts
            ``[B]`` to its features ``[N, F]``.
        sampler, sampler_options: name and options of
            :func:`molgen.diffusion.make_sampler` (e.g. ``{"eta": 0.5}`` for ddim).
        shard: ``(rank, world_size)``: only the batches ``i`` with
            ``i % world_size == rank``, in order.
        unit: what the progress bar counts.

    Yields:
        ``(sizes [B], pos [N, 3], h [N, F])`` on the CPU, ``pos`` in model
        units with zero CoM per graph, ``h`` as predicted (or the condition).
    """
    if not model.diffusion.diffuse_features and condition is None:
        raise ValueError("this model generates coordinates for given features: pass `condition`")
    reverse = make_sampler(sampler, model.diffusion, steps, **(sampler_options or {}))
    model.to(device)
    num_features = int(model.dataset_info["num_features"])
    for sizes, generator in seeded_batches(num_nodes, batch_size, seed, device, shard, progress, unit):
        h_condition = condition(sizes) if condition is not None else None
        pos, h, _ = reverse.sample(
            model.denoiser,
            sizes,
            num_features,
            h_condition=h_condition,
            generator=generator,
            device=device,
            progress=progress,
        )
        yield sizes, pos.double().cpu(), h.cpu()


def seeded_batches(
    num_nodes: Tensor,
    batch_size: int,
    seed: int,
    device: torch.device | str,
    shard: tuple[int, int],
    progress: bool,
    unit: str,
) -> Iterator[tuple[Tensor, torch.Generator]]:
    """The batches of ``num_nodes`` this process samples, each with its own generator.

    Yields ``(sizes [B], generator)`` for the batches ``i`` with
    ``i % world_size == rank``; batch ``i`` is seeded from ``SeedSequence([seed, i])``.
    A progress bar counts ``unit`` (advanced after each batch is consumed).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    check_shard(shard)
    rank, world_size = shard
    batches = list(enumerate(num_nodes.split(batch_size)))[rank::world_size]
    with tqdm(total=sum(len(c) for _, c in batches), desc=unit, unit=unit[:4], disable=not progress) as bar:
        for i, sizes in batches:
            yield sizes, torch.Generator(device=device).manual_seed(derived_seed(seed, i))
            bar.update(len(sizes))


def merge_shards(shards: list[list[T]], batch_size: int) -> list[T]:
    """Interleave the outputs of ranks ``0 .. len(shards) - 1`` back into single-process order."""
    remaining = [iter(shard) for shard in shards]
    merged: list[T] = []
    for i in itertools.count():
        batch = list(itertools.islice(remaining[i % len(shards)], batch_size))
        if not batch:
            return merged
        merged += batch
