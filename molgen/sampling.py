"""Sampling for every domain: one sampling configuration, batches, seeds, process shards.

:class:`SamplingConfig` is the one place the sampler settings and their
defaults live; the CLI, the Python API and the model cards all go through it.
:func:`generate` is the loop every domain shares: the model's domain draws the
graph sizes and the clean conditioning, the process's sampler generates each
batch, and the domain decodes it into its samples.

Seeding: graph sizes come from ``SeedSequence([seed])`` (see
:func:`seeded_generator`) and batch ``i`` from ``SeedSequence([seed, i])``, so
a seed fixes the output for a given batch size whatever device order or
process split is used: a run sharded over processes (``shard``) and put back
together with :func:`merge_shards` equals a single-process run.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from molgen.diffusion import Sampler, make_sampler
from molgen.diffusion.conditioning import GraphCondition
from molgen.diffusion.energy_guidance import EnergyGuidance
from molgen.diffusion.process import DiffusionProcess
from molgen.targets import sample_sizes_given_targets

if TYPE_CHECKING:
    from molgen.checkpoint import TrainedModel

T = TypeVar("T")

#: The network arithmetic a :class:`SamplingConfig` can ask for.
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class SamplingConfig:
    """How to run the reverse process: a registered sampler, its step count and its options.

    Attributes:
        sampler: ``ddpm``, ``ddim``, ``dpm-solver`` or ``consistency`` (:func:`molgen.diffusion.make_sampler`).
        steps: reverse steps (the network is called ``steps + 1`` times, plus refinements; ``consistency``:
            ``steps`` calls in all, see :attr:`~molgen.diffusion.samplers.Sampler.network_calls`).
        options: the sampler's options, e.g. ``{"eta": 1.0, "refine_steps": 1}``; every
            sampler takes ``grid``, ``refine_steps``, ``refine_time``, ``polish_steps``, ``polish_time``,
            ``polish_average``, ``class_temperature`` and ``constrained_decoding``.
        precision: the network's arithmetic, ``fp32`` or ``bf16`` (under bfloat16 autocast, see
            :mod:`molgen.nn.mixed_precision`; the sampler's own updates stay float32). A card recommends
            ``bf16`` only where its figures were measured with it.
        fixed_part_note: what a card says of its sampler with a fixed part (``--fix``, ``--link``,
            ``--motif``), which ``molgen sample`` prints; it belongs to that sampler, so naming another drops it.
    """

    sampler: str = "ddpm"
    steps: int = 1000
    options: Mapping[str, Any] = field(default_factory=dict)
    precision: str = "fp32"
    fixed_part_note: str | None = None

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")

    @classmethod
    def from_card(cls, card: Mapping[str, Any] | None) -> SamplingConfig:
        """The ``sampling`` entry of a model card (``{"sampler", "steps", "options", "precision",
        "fixed_part_note"}``), else the defaults."""
        recommended = dict(card or {})
        return cls(
            recommended.get("sampler", cls.sampler),
            int(recommended.get("steps", cls.steps)),
            dict(recommended.get("options", {})),
            recommended.get("precision", cls.precision),
            recommended.get("fixed_part_note"),
        )

    def updated(
        self,
        sampler: str | None = None,
        steps: int | None = None,
        options: Mapping[str, Any] | None = None,
        precision: str | None = None,
    ) -> SamplingConfig:
        """This config with what was given replaced: naming a sampler drops this config's options and
        fixed-part note (they belong to its sampler); given ``options`` update the rest; the precision stays
        unless given."""
        base = dict(self.options) if sampler is None else {}
        return SamplingConfig(
            sampler or self.sampler,
            steps or self.steps,
            {**base, **dict(options or {})},
            precision or self.precision,
            self.fixed_part_note if sampler is None else None,
        )

    def make(self, process: DiffusionProcess) -> Sampler:
        """The sampler over ``process``; ValueError for an unknown sampler or option."""
        return make_sampler(self.sampler, process, self.steps, **self.options)

    def network(self, denoiser: torch.nn.Module) -> torch.nn.Module:
        """``denoiser`` as this config runs it: wrapped for bfloat16 autocast when ``precision`` is ``bf16``
        (unless it already is), else unchanged."""
        from molgen.nn.mixed_precision import MixedPrecisionDenoiser, runs_in_bf16

        if self.precision == "bf16" and not runs_in_bf16(denoiser):
            return MixedPrecisionDenoiser(denoiser)
        return denoiser

    @property
    def label(self) -> str:
        """``"dpm-solver eta=1.0 grid=time"``: the sampler and its options (and ``precision=bf16`` when not
        float32), as SD tags record them."""
        label = self.sampler + "".join(f" {key}={_option_text(value)}" for key, value in self.options.items())
        return label if self.precision == "fp32" else f"{label} precision={self.precision}"


def _option_text(value: Any) -> str:
    """An option's value as a label writes it: lists comma-separated (``0.3,0.1``), as benchmark cells take them."""
    return ",".join(str(item) for item in value) if isinstance(value, (list, tuple)) else str(value)


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


def generate(
    model: TrainedModel,
    num_samples: int,
    sampling: SamplingConfig | None = None,
    *,
    batch_size: int | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = True,
    shard: tuple[int, int] = (0, 1),
    fixed: Any = None,
    targets: GraphCondition | None = None,
    sizes: Tensor | None = None,
    labels: list | None = None,
    energy_guidance: EnergyGuidance | None = None,
    **request: Any,
) -> list:
    """Sample ``num_samples`` items of the model's domain.

    Args:
        sampling: the sampler (default: the model card's recommendation for a shipped
            model, else :class:`SamplingConfig`'s defaults).
        batch_size: samples denoised together (default: the domain's).
        shard: ``(rank, world_size)``: generate only the batches ``i`` with
            ``i % world_size == rank``, in order (see :func:`merge_shards`).
        fixed: a part every sample keeps (inpainting), in the domain's terms: a
            :class:`~molgen.molecules.fragments.Fragment` for molecules; a
            :class:`~molgen.proteins.motif.Motif` for backbones, placed in each chain from ``seed``
            (or a :class:`~molgen.proteins.motif.MotifPlacement` made for these chains).
        targets: a conditional model's target properties, one row per sample (``[num_samples, P]``,
            normalised, :func:`molgen.targets.target_tensors`); None: unconditional.
        sizes: the nodes of each sample, ``[num_samples]`` long, instead of a size request.
        labels: per-unit labels the model is conditioned on, one array per sample (backbones: the
            secondary structure of each residue, :mod:`molgen.proteins.secondary_structure`); they
            fix the sizes unless ``sizes`` is given.
        energy_guidance: steer the samples towards ``targets`` with a property regressor as well
            (:mod:`molgen.diffusion.energy_guidance`; for molecules built by
            :meth:`molgen.property_prediction.TrainedPredictor.energy_guidance`).
        request: the domain's size request, e.g. ``num_atoms=9`` for molecules or
            ``length=(60, 120)`` for backbones (default: the training histogram, or with
            ``targets`` the training frequencies given the targets,
            :func:`molgen.targets.sample_sizes_given_targets`).
    Returns:
        The domain's samples (:meth:`molgen.domains.Domain.decode`).
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    check_shard(shard)
    sampling = sampling or model.sampling
    domain, info = model.domain, model.info
    unknown = sorted(set(request) - set(domain.size_options))
    if unknown:
        sized_by = ", ".join(domain.size_options)
        raise ValueError(f"this model generates {domain.name}, sized by {sized_by}; not by {', '.join(unknown)}")
    if targets is not None and targets.values.shape[0] != num_samples:
        raise ValueError(f"got targets for {targets.values.shape[0]} samples, not {num_samples}")
    asked = {key: value for key, value in request.items() if value is not None}
    if labels is not None:
        if len(labels) != num_samples or asked:
            raise ValueError(f"labels must be given for each of the {num_samples} samples and exclude a size request")
        if sizes is None:
            sizes = torch.tensor([len(item) for item in labels]) * domain.nodes_per_unit(info)
    if sizes is not None:
        if asked or sizes.shape != (num_samples,):
            raise ValueError(f"sizes must be [{num_samples}] and exclude a size request, got {tuple(sizes.shape)}")
        num_nodes = sizes.long()
    elif targets is not None and not asked:
        num_nodes = sample_sizes_given_targets(
            info.conditions, info.size_histogram, targets.values, targets.mask, seeded_generator(seed)
        )
    else:
        num_nodes = domain.sample_sizes(info, num_samples, seed, **request)
    if fixed is not None:
        fixed = domain.place_fixed(info, fixed, num_nodes, seed)
    reverse = sampling.make(model.diffusion)
    constraint = domain.class_constraint(info) if reverse.constrained_decoding else None
    model.to(device)
    network = sampling.network(model.denoiser)
    samples: list = []
    batch_size = batch_size or domain.default_batch_size
    for first, sizes, generator in seeded_batches(num_nodes, batch_size, seed, device, shard, progress, domain.unit):
        chunk = None if labels is None else labels[first : first + len(sizes)]
        state = reverse.sample(
            network,
            sizes,
            info.num_features,
            condition=domain.condition(info, sizes, chunk),
            node_labels=domain.node_labels(info, sizes, chunk),
            known=None if fixed is None else domain.known_part(info, fixed, sizes, first),
            graph_condition=None if targets is None else targets.select(slice(first, first + len(sizes))),
            class_constraint=constraint,
            energy_guidance=energy_guidance,
            generator=generator,
            device=device,
            progress=progress,
            position_dims=info.position_dims,
        )
        samples += domain.decode(info, state, fixed, first)
    return samples


#: How many sample sizes :func:`estimate_cost` draws to find the largest (not all of a huge request).
ESTIMATE_DRAWS = 10_000


@dataclass(frozen=True)
class CostEstimate:
    """What a sampling request will take, from timed one-step runs on graphs of its largest size.

    Attributes:
        seconds: every graph costed as the largest one, one call at a time: an upper
            bound, as batching shares the per-call overhead.
        peak_bytes: memory one batch adds (the calibration graph's, times the batch size).
    """

    seconds: float
    peak_bytes: int

    def describe(self) -> str:
        minutes = self.seconds / 60
        if minutes < 2:
            duration = f"{self.seconds:.0f} s"
        else:
            duration = f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:,.1f} h"
        return f"at most about {duration} and {self.peak_bytes / 2**30:.1f} GiB of memory per batch"


def estimate_cost(
    model: TrainedModel,
    num_samples: int,
    sampling: SamplingConfig,
    *,
    batch_size: int | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    largest: int | None = None,
    **request: Any,
) -> CostEstimate:
    """Time a one-step run of the same sampler (two network calls; one for ``consistency``) on one, then on a
    few graphs of the largest size the request draws (or of ``largest`` nodes, for a request whose sizes are
    given), and scale it to the whole request (see :class:`CostEstimate`).

    Memory is what the few graphs add to the process's peak over the single one (on CUDA: the
    allocator's peak), which leaves out one-time costs such as library start-up.
    """
    import resource

    domain, info = model.domain, model.info
    if largest is None:
        largest = int(domain.sample_sizes(info, min(num_samples, ESTIMATE_DRAWS), seed, **request).max())
    # counted below (network_calls); resampling needs a fixed part, guidance a condition
    loop_only = ("refine_steps", "polish_steps", "polish_average", "resample", "guidance")
    one_step = SamplingConfig(
        sampling.sampler, 1, {k: v for k, v in sampling.options.items() if k not in loop_only}, sampling.precision
    )
    reverse = one_step.make(model.diffusion)
    model.to(device)
    network = sampling.network(model.denoiser)
    cuda = torch.device(device).type == "cuda"

    def run(graphs: int) -> tuple[float, int]:
        """Seconds per network call and the peak memory (bytes) of a run on ``graphs`` graphs."""
        sizes = torch.full((graphs,), largest, dtype=torch.long)
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        reverse.sample(
            network,
            sizes,
            info.num_features,
            condition=domain.condition(info, sizes),
            class_constraint=domain.class_constraint(info) if reverse.constrained_decoding else None,
            generator=torch.Generator(device=device).manual_seed(seed),
            device=device,
            position_dims=info.position_dims,
        )
        seconds = (time.perf_counter() - start) / reverse.network_calls
        peak = (
            torch.cuda.max_memory_allocated(device)
            if cuda
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        )
        return seconds, peak

    batch = min(batch_size or domain.default_batch_size, num_samples)
    few = min(batch, 4)
    per_call, single_peak = run(1)
    per_graph_bytes = single_peak if cuda else 0
    if few > 1:
        seconds, few_peak = run(few)
        per_call = min(per_call, seconds / few)
        per_graph_bytes = max(few_peak - single_peak, 0) / (few - 1)
    return CostEstimate(
        seconds=per_call * sampling.make(model.diffusion).network_calls * num_samples,
        peak_bytes=int(per_graph_bytes * batch),
    )


def seeded_batches(
    num_nodes: Tensor,
    batch_size: int,
    seed: int,
    device: torch.device | str,
    shard: tuple[int, int],
    progress: bool,
    unit: str,
) -> Iterator[tuple[int, Tensor, torch.Generator]]:
    """The batches of ``num_nodes`` this process samples, each with its own generator.

    Yields ``(first, sizes [B], generator)`` for the batches ``i`` with ``i % world_size == rank``:
    ``first`` is the batch's first sample (``i * batch_size``); batch ``i`` is seeded from
    ``SeedSequence([seed, i])``.
    A progress bar counts ``unit`` (advanced after each batch is consumed).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    chunks = num_nodes.split(batch_size)
    batches = [(i, chunks[i]) for i in shard_batches(len(num_nodes), batch_size, shard)]
    with tqdm(total=sum(len(c) for _, c in batches), desc=unit, unit=unit[:4], disable=not progress) as bar:
        for i, sizes in batches:
            yield i * batch_size, sizes, torch.Generator(device=device).manual_seed(derived_seed(seed, i))
            bar.update(len(sizes))


def shard_batches(num_samples: int, batch_size: int, shard: tuple[int, int]) -> range:
    """The batches ``i`` (samples ``i * batch_size`` on) a process of ``shard`` generates: ``i % world_size == rank``
    (:func:`seeded_batches`)."""
    check_shard(shard)
    rank, world_size = shard
    return range(rank, -(-num_samples // batch_size), world_size)


def shard_indices(num_samples: int, batch_size: int, shard: tuple[int, int]) -> list[int]:
    """The request's sample indices a process of ``shard`` generates, in its order (:func:`shard_batches`)."""
    return [
        index
        for i in shard_batches(num_samples, batch_size, shard)
        for index in range(i * batch_size, min((i + 1) * batch_size, num_samples))
    ]


def merge_shards(shards: list[list[T]], batch_size: int) -> list[T]:
    """Interleave the outputs of ranks ``0 .. len(shards) - 1`` back into single-process order."""
    remaining = [iter(shard) for shard in shards]
    merged: list[T] = []
    for i in itertools.count():
        batch = list(itertools.islice(remaining[i % len(shards)], batch_size))
        if not batch:
            return merged
        merged += batch
