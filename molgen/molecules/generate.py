"""Generate molecules with a trained model: atom counts, sampling, decoding.

Seeding and sharding follow :mod:`molgen.generation`: a seed and batch size
fix the molecules whatever the device or process split. Joint models
(:class:`~molgen.diffusion.joint.JointDiffusion`, docs/bonds.md) also
generate bonds and formal charges, with the same seeding per batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from rdkit import Chem

from molgen.checkpoint import TrainedModel
from molgen.diffusion.joint import JointDiffusion, JointSampler
from molgen.generation import check_shard, sample_batches, sample_from_histogram, seeded_batches
from molgen.molecules.featurize import AtomFeaturizer
from molgen.molecules.sdf import molecule_from_coordinates, molecule_from_graph


@dataclass
class GeneratedMolecule:
    """One sample: atomic numbers [n] and coordinates [n, 3] in Å (zero CoM).

    Joint models also give ``bonds`` [b, 3] int (rows ``(i, j, order)``,
    ``i < j``, order 1-3, Kekulé) and formal ``charges`` [n] int; both are
    None for coordinate-only models (bonds are then perceived from the geometry).
    """

    atomic_numbers: np.ndarray
    positions: np.ndarray
    bonds: np.ndarray | None = None
    charges: np.ndarray | None = None

    @property
    def finite(self) -> bool:
        return bool(np.isfinite(self.positions).all())

    @property
    def finite_positions(self) -> np.ndarray:
        """``positions`` with non-finite values set to 0 (a diverged sample stays writable)."""
        return np.nan_to_num(self.positions, nan=0.0, posinf=0.0, neginf=0.0)

    def to_rdkit(self) -> tuple[Chem.Mol, bool]:
        """RDKit molecule with a 3D conformer (``finite_positions``) and whether it has a bond graph.

        Joint models: the generated bonds and charges, never perceived (True).
        Coordinate-only models: bonds perceived from the geometry
        (:func:`~molgen.molecules.sdf.molecule_from_coordinates`); False when
        that failed and the molecule has atoms only.
        """
        if self.bonds is not None:
            return molecule_from_graph(self.atomic_numbers, self.finite_positions, self.bonds, self.charges), True
        return molecule_from_coordinates(self.atomic_numbers, self.finite_positions)


def generate_molecules(
    model: TrainedModel,
    num_samples: int,
    *,
    num_atoms: int | None = None,
    steps: int = 1000,
    sampler: str = "ddpm",
    sampler_options: Mapping[str, Any] | None = None,
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
        sampler, sampler_options: name and options of
            :func:`molgen.diffusion.make_sampler` (e.g. ``{"eta": 0.5}`` for ddim);
            models that generate bonds also take ``class_temperature`` (see
            :class:`~molgen.diffusion.joint.JointSampler`).
        batch_size: molecules denoised together.
        shard: ``(rank, world_size)``: generate only the batches ``i`` with
            ``i % world_size == rank``, in order (see :func:`molgen.generation.merge_shards`).
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if num_atoms is not None and num_atoms < 1:
        raise ValueError(f"num_atoms must be >= 1, got {num_atoms}")
    check_shard(shard)
    info = model.dataset_info
    if info.get("domain", "molecules") != "molecules":
        raise ValueError(f"this checkpoint generates {info['domain']}, not molecules")
    featurizer = AtomFeaturizer.from_dict(info["featurizer"])
    if num_atoms is None:
        sizes = sample_from_histogram(info["num_atoms_histogram"], num_samples, seed)
    else:
        sizes = torch.full((num_samples,), num_atoms, dtype=torch.long)

    if isinstance(model.diffusion, JointDiffusion):
        return _generate_joint(model, sizes, steps, sampler, sampler_options, batch_size, seed, device, progress, shard)
    if "class_temperature" in (sampler_options or {}):
        raise ValueError(
            "class_temperature applies to models that generate bonds; this one generates coordinates and types only"
        )

    molecules: list[GeneratedMolecule] = []
    batches = sample_batches(
        model,
        sizes,
        steps=steps,
        sampler=sampler,
        sampler_options=sampler_options,
        batch_size=batch_size,
        seed=seed,
        device=device,
        progress=progress,
        shard=shard,
        unit="molecules",
    )
    for chunk, pos, h in batches:
        z = featurizer.decode(h).numpy()
        pos = pos.numpy()
        ptr = np.concatenate([[0], np.cumsum(chunk.numpy())])
        molecules += [GeneratedMolecule(z[a:b], pos[a:b]) for a, b in zip(ptr[:-1], ptr[1:])]
    return molecules


def _channel_classes(info: dict, kind: str, name: str) -> list:
    channels = info["categorical"]["node"] if kind == "node" else [info["categorical"]["edge"]]
    for channel in channels:
        if channel["name"] == name:
            return list(channel["classes"])
    raise ValueError(f"this joint checkpoint has no {kind} channel {name!r}")


def _generate_joint(
    model: TrainedModel,
    sizes: torch.Tensor,
    steps: int,
    sampler: str,
    sampler_options: Mapping[str, Any] | None,
    batch_size: int,
    seed: int,
    device: torch.device | str,
    progress: bool,
    shard: tuple[int, int],
) -> list[GeneratedMolecule]:
    """Molecules with generated atom types, charges and bonds.

    Batches are seeded and sharded by :func:`molgen.generation.seeded_batches`, as for every model.
    """
    info, diffusion = model.dataset_info, model.diffusion
    node_names = list(diffusion.node_channels)
    elements = np.array(
        [AtomFeaturizer(atom_types=tuple(_channel_classes(info, "node", "atom_type"))).atomic_numbers], dtype=np.int64
    ).reshape(-1)
    charge_values = np.array(_channel_classes(info, "node", "charge"), dtype=np.int64)
    bond_orders = np.array(_channel_classes(info, "edge", diffusion.edge_name), dtype=np.int64)
    atom_col, charge_col = node_names.index("atom_type"), node_names.index("charge")

    reverse = JointSampler.make(sampler, diffusion, steps, **(sampler_options or {}))
    model.to(device)
    molecules: list[GeneratedMolecule] = []
    for chunk, generator in seeded_batches(sizes, batch_size, seed, device, shard, progress, "molecules"):
        out = reverse.sample(model.denoiser, chunk, generator=generator, device=device, progress=progress)
        pos = out.pos.double().cpu().numpy()
        z = elements[out.node_classes[:, atom_col].cpu().numpy()]
        charges = charge_values[out.node_classes[:, charge_col].cpu().numpy()]
        orders = bond_orders[out.edge_classes.cpu().numpy()]
        pairs = out.pair_index.cpu().numpy()
        pair_graph = out.batch.cpu().numpy()[pairs[0]]
        ptr = np.concatenate([[0], np.cumsum(chunk.numpy())])
        for g, (a, b) in enumerate(zip(ptr[:-1], ptr[1:])):
            keep = (pair_graph == g) & (orders > 0)
            bonds = np.stack([pairs[0][keep] - a, pairs[1][keep] - a, orders[keep]], axis=1)
            molecules.append(GeneratedMolecule(z[a:b], pos[a:b], bonds.astype(np.int64), charges[a:b]))
    return molecules
