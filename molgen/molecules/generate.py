"""Generate molecules with a trained model: node counts, sampling, decoding.

Seeding: node counts come from ``SeedSequence([seed])`` and batch ``i`` from
``SeedSequence([seed, i])``, so a seed fixes the output for a given batch
size whatever device order or process split is used later: a run sharded
over processes (``shard``) and put back together with :func:`merge_shards`
gives the molecules of a single-process run.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from molgen.checkpoint import TrainedModel
from molgen.diffusion import make_sampler
from molgen.molecules.featurize import AtomFeaturizer


@dataclass
class GeneratedMolecule:
    """One sample: atomic numbers [n] and coordinates [n, 3] in Å (zero CoM)."""

    atomic_numbers: np.ndarray
    positions: np.ndarray

    @property
    def finite(self) -> bool:
        return bool(np.isfinite(self.positions).all())


def _seed(*entropy: int) -> int:
    return int(np.random.SeedSequence(list(entropy)).generate_state(1, dtype=np.uint64)[0] >> 1)


def sample_num_atoms(histogram: list[int] | torch.Tensor, num_samples: int, seed: int) -> torch.Tensor:
    """Draw node counts [num_samples] from a histogram indexed by node count."""
    weights = torch.as_tensor(histogram, dtype=torch.float64)
    if weights.sum() <= 0:
        raise ValueError("the checkpoint's node-count histogram is empty")
    generator = torch.Generator().manual_seed(_seed(seed))
    return torch.multinomial(weights, num_samples, replacement=True, generator=generator)


def generate_molecules(
    model: TrainedModel,
    num_samples: int,
    *,
    num_atoms: int | None = None,
    steps: int = 1000,
    sampler: str = "ddpm",
    batch_size: int = 100,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = True,
    shard: tuple[int, int] = (0, 1),
) -> list[GeneratedMolecule]:
    """Sample ``num_samples`` molecules.

    Args:
        num_atoms: fixed size of every molecule; None draws sizes from the
            training set's histogram stored in the checkpoint.
        steps: reverse-diffusion steps.
        batch_size: molecules denoised together.
        shard: ``(rank, world_size)``: generate only the batches ``i`` with
            ``i % world_size == rank``, in order.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if num_atoms is not None and num_atoms < 1:
        raise ValueError(f"num_atoms must be >= 1, got {num_atoms}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    rank, world_size = shard
    if not 0 <= rank < world_size:
        raise ValueError(f"shard must be (rank, world_size) with 0 <= rank < world_size, got {shard}")
    info = model.dataset_info
    featurizer = AtomFeaturizer.from_dict(info["featurizer"])
    if num_atoms is None:
        sizes = sample_num_atoms(info["num_atoms_histogram"], num_samples, seed)
    else:
        sizes = torch.full((num_samples,), num_atoms, dtype=torch.long)

    reverse = make_sampler(sampler, model.diffusion, steps)
    model.to(device)
    batches = list(enumerate(sizes.split(batch_size)))[rank::world_size]
    molecules: list[GeneratedMolecule] = []
    with tqdm(total=sum(len(c) for _, c in batches), desc="molecules", unit="mol", disable=not progress) as bar:
        for i, chunk in batches:
            generator = torch.Generator(device=device).manual_seed(_seed(seed, i))
            pos, h, batch = reverse.sample(
                model.denoiser, chunk, int(info["num_features"]), generator=generator, device=device, progress=progress
            )
            z = featurizer.decode(h).cpu().numpy()
            pos = pos.double().cpu().numpy()
            ptr = np.concatenate([[0], np.cumsum(chunk.numpy())])
            molecules += [GeneratedMolecule(z[a:b], pos[a:b]) for a, b in zip(ptr[:-1], ptr[1:])]
            bar.update(len(chunk))
    return molecules


def merge_shards(shards: list[list[GeneratedMolecule]], batch_size: int) -> list[GeneratedMolecule]:
    """Interleave the outputs of ranks ``0 .. len(shards) - 1`` back into single-process order."""
    remaining = [iter(shard) for shard in shards]
    molecules: list[GeneratedMolecule] = []
    for i in itertools.count():
        batch = list(itertools.islice(remaining[i % len(shards)], batch_size))
        if not batch:
            return molecules
        molecules += batch
