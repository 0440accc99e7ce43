"""Domains: the kinds of data molgen generates, registered by name.

A domain turns its source data into graphs for the diffusion core and the
core's samples back into its own objects and files:

    build_data     source files -> training / validation datasets + DatasetInfo
    sample_sizes   how many nodes each generated graph has
    fixed_from_options  the fixed part `molgen sample`'s options ask for (read before a model loads)
    place_fixed    where the fixed part goes in each graph of a request
    known_part     the nodes a fixed part keeps (inpainting)
    condition      clean node features a model conditions on (or None)
    class_constraint  the rule on a sample's final classes for constrained decoding (ValueError where none)
    decode         a sampled GraphState -> the domain's samples
    api_objects    the samples as the Python API returns them
    sample_command `molgen sample`'s work after generation: write, evaluate, report
    evaluate_command  `molgen evaluate` on the domain's files

Registered: ``molecules`` (:mod:`molgen.domains.molecules`) and ``backbones``
(:mod:`molgen.domains.backbones`). A new kind of data is one new module here.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor

from molgen.dataset_info import DatasetInfo
from molgen.diffusion.inpainting import KnownPart
from molgen.diffusion.process import ClassConstraint, GraphState
from molgen.registry import Registry

__all__ = ["DOMAINS", "Domain", "dataset_domain", "get_domain"]


class Domain:
    """Base class of the domains (see the module docstring)."""

    #: Registry name, equal to the ``domain`` of its :class:`~molgen.dataset_info.DatasetInfo`.
    name: ClassVar[str]
    #: What progress bars count.
    unit: ClassVar[str]
    #: Samples denoised together by default.
    default_batch_size: ClassVar[int]
    #: Data config names (``data=...``) this domain builds.
    datasets: ClassVar[tuple[str, ...]]
    #: The keyword arguments of :meth:`sample_sizes`: how a user asks for sample sizes.
    size_options: ClassVar[tuple[str, ...]]
    #: Where `molgen sample` writes without ``--out`` (a file or a folder).
    default_output: ClassVar[str]

    def build_data(self, dataset: str, **options: Any) -> tuple[Any, Any, DatasetInfo]:
        """``(train, val, info)`` of the data config ``dataset`` with its ``options``."""
        raise NotImplementedError

    def nodes_per_unit(self, info: DatasetInfo) -> int:
        """Graph nodes per unit of sample size (the unit of ``DatasetInfo.size_histogram``) of a model."""
        return 1

    def sample_sizes(self, info: DatasetInfo, num_samples: int, seed: int, **request: Any) -> Tensor:
        """Nodes of each graph to generate, ``[num_samples]`` long, seeded by ``seed``."""
        raise NotImplementedError

    def condition(self, info: DatasetInfo, num_nodes: Tensor, labels: list | None = None) -> Tensor | None:
        """Clean node features ``[N, F]`` for graphs of ``num_nodes`` [B] nodes, or None when generated;
        ``labels``: per-unit labels of each graph the model is conditioned on (backbones' secondary
        structure), which a domain without them refuses (ValueError)."""
        if labels is not None:
            raise ValueError(f"models of {self.name} take no per-residue labels")
        return None

    def node_labels(self, info: DatasetInfo, num_nodes: Tensor, labels: list | None = None) -> Tensor | None:
        """The ``[N]`` long labels a model whose features are diffused is conditioned on
        (:attr:`~molgen.diffusion.process.GraphState.node_labels`), or None; :meth:`condition` checks ``labels``."""
        return None

    def class_constraint(self, info: DatasetInfo) -> ClassConstraint:
        """The rule a model's final pair classes obey under the sampler's ``constrained_decoding``;
        ValueError (saying why) where the domain has none for this model."""
        raise ValueError(f"constrained decoding is not available for {self.name}")

    def fixed_from_options(self, opts: Any) -> Any:
        """The fixed part `molgen sample`'s options ask of this domain (None if they ask none), read and
        checked before a model loads; ValueError for inconsistent options or an unusable file."""
        return None

    def place_fixed(self, info: DatasetInfo, fixed: Any, num_nodes: Tensor, seed: int) -> Any:
        """The fixed part as placed in each graph of a request of ``num_nodes`` [num_samples] nodes, any
        random choice drawn from ``seed`` (default: unchanged, the same place in every graph)."""
        return fixed

    def known_part(self, info: DatasetInfo, fixed: Any, num_nodes: Tensor, first: int) -> KnownPart:
        """The nodes the placed fixed part (:meth:`place_fixed`) keeps in graphs ``first, first + 1, ...``
        of the request, of ``num_nodes`` [B] nodes, for inpainting (:mod:`molgen.diffusion.inpainting`)."""
        raise ValueError(f"sampling with a fixed part is not available for {self.name} yet")

    def decode(self, info: DatasetInfo, state: GraphState, fixed: Any = None, first: int = 0) -> list:
        """The samples of one generated batch, requests ``first, first + 1, ...``; ``fixed`` is the
        placed fixed part of an inpainting request (:meth:`place_fixed`), which they keep exactly."""
        raise NotImplementedError

    def api_objects(self, samples: list) -> list:
        """What the Python API (:meth:`molgen.checkpoint.TrainedModel.sample`) returns for samples."""
        return samples

    def sample_command(self, model: Any, opts: Any, sampling: Any, device: str, rank: Any) -> int:
        """``molgen sample`` for this domain: generate on this process's shard, then (rank 0) write,
        evaluate and report. Returns the exit status."""
        raise NotImplementedError

    def evaluate_command(self, opts: Any) -> int:
        """``molgen evaluate`` for this domain's files. Returns the exit status."""
        raise NotImplementedError


DOMAINS: Registry[Domain] = Registry("domain")


def get_domain(name: str) -> Domain:
    """The registered domain ``name``; ValueError naming the known ones."""
    return DOMAINS[name]


def dataset_domain(dataset: str) -> Domain:
    """The domain that builds the data config ``dataset`` (``qm9``, ``qm9_bonds``, ``backbone``)."""
    for name in DOMAINS:
        if dataset in DOMAINS[name].datasets:
            return DOMAINS[name]
    known = sorted(d for name in DOMAINS for d in DOMAINS[name].datasets)
    raise ValueError(f"unknown dataset {dataset!r}; available: {', '.join(known)}")


# The registered domains (each module registers its own; imported last, as they subclass Domain).
from molgen.domains import backbones, molecules  # noqa: E402,F401
