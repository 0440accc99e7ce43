"""What the commands share: one-line errors, integer option types, JSON reports, sharded generation."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "LIMITS",
    "RequestLimits",
    "check_request",
    "fail",
    "generate_on_ranks",
    "non_negative_int",
    "output_lock",
    "positive_int",
    "write_json",
]


@dataclass(frozen=True)
class RequestLimits:
    """Beyond these, `molgen sample` refuses a request unless ``--yes`` is given (docs/reliability.md).

    Attributes:
        size_factor: largest sample size asked for, over the largest in the training data.
        max_minutes: the estimate's upper bound of the sampling time.
        memory_fraction: the estimated memory of one batch, over the machine's memory.
    """

    size_factor: float = 2.0
    max_minutes: float = 60.0
    memory_fraction: float = 0.5


LIMITS = RequestLimits()


def fail(command: str, message: str, status: int = 1) -> int:
    """Print ``molgen <command>: error: <message>`` to stderr and return ``status``."""
    print(f"molgen {command}: error: {message}", file=sys.stderr)
    return status


def _int_at_least(minimum: int, bound: str, name: str) -> Callable[[str], int]:
    """An ``argparse`` type: an integer >= ``minimum``, refused as ``must be <bound>, got <value>``."""

    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    parse.__name__ = name  # argparse names the type in "invalid <name> value"
    return parse


positive_int = _int_at_least(1, "a positive integer", "positive_int")
non_negative_int = _int_at_least(0, ">= 0", "non_negative_int")


def write_json(path: str, report: dict) -> None:
    """Write ``report`` as indented JSON, atomically."""
    from molgen.io import atomic_write_text

    atomic_write_text(path, json.dumps(report, indent=2))


def generate_on_ranks(
    model: Any,
    opts: Any,
    sampling: Any,
    device: str,
    rank: Any,
    postprocess: Callable[[list, list[int]], list] | None = None,
    **request: Any,
) -> list | None:
    """:func:`molgen.sampling.generate` on this process's shard with the command's options (the target
    properties and sizes of ``opts.targets`` and ``opts.sizes`` included, unless ``request`` gives
    ``sizes``).

    ``postprocess(samples, indices)`` maps this process's samples (``indices``: their places in
    the request) before they are gathered: work each process does for its own share, e.g.
    relaxation. Returns every sample, in single-process order, on rank 0 and None on the other
    ranks.
    """
    from molgen.distributed import gather_to_first
    from molgen.sampling import generate, merge_shards, shard_indices

    samples = generate(
        model,
        opts.num_samples,
        sampling,
        batch_size=opts.batch_size,
        seed=opts.seed,
        device=device,
        progress=not opts.no_progress and rank.rank == 0,
        shard=(rank.rank, rank.world_size),
        targets=getattr(opts, "targets", None),
        energy_guidance=getattr(opts, "energy_guidance", None),
        **{"sizes": getattr(opts, "sizes", None)} | request,
    )
    batch_size = opts.batch_size or model.domain.default_batch_size
    if postprocess is not None:
        samples = postprocess(samples, shard_indices(opts.num_samples, batch_size, (rank.rank, rank.world_size)))
    shards = gather_to_first(samples, rank)
    return None if shards is None else merge_shards(shards, batch_size)


def _memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_request(model: Any, opts: Any, sampling: Any, device: str, limits: RequestLimits = LIMITS) -> str | None:
    """Why a sampling request needs ``--yes`` (one line, with the estimate), or None.

    The sizes are checked first (no network call); then one-step runs on graphs of the
    largest size time the request (:func:`molgen.sampling.estimate_cost`). An estimate above
    a minute is printed even when the request goes ahead.
    """
    from molgen.sampling import ESTIMATE_DRAWS, estimate_cost

    domain = model.domain
    request = {key: getattr(opts, key) for key in domain.size_options if getattr(opts, key, None) is not None}
    sizes = getattr(opts, "sizes", None)
    if sizes is None:
        sizes = domain.sample_sizes(model.info, min(opts.num_samples, ESTIMATE_DRAWS), opts.seed, **request)
    largest = int(sizes.max()) // domain.nodes_per_unit(model.info)
    trained = len(model.info.size_histogram) - 1
    if largest > limits.size_factor * trained and not opts.yes:
        return (
            f"a sample of size {largest} is far beyond the largest the model was trained on ({trained}); "
            "its output is unlikely to be meaningful: pass --yes to run it anyway"
        )
    if getattr(opts, "sizes", None) is not None:  # the largest size stands for all in the estimate
        request = {"largest": int(sizes.max())}
    cost = estimate_cost(
        model, opts.num_samples, sampling, batch_size=opts.batch_size, seed=opts.seed, device=device, **request
    )
    too_long = cost.seconds > 60 * limits.max_minutes
    too_big = cost.peak_bytes > limits.memory_fraction * _memory_bytes()
    if (too_long or too_big) and not opts.yes:
        what = " and ".join(w for w, hit in (("long", too_long), ("much memory", too_big)) if hit)
        return f"this request would take too {what}: {cost.describe()}; pass --yes to run it anyway"
    if cost.seconds > 60 and not opts.no_progress:
        print(f"molgen sample: estimate: {cost.describe()}", file=sys.stderr)
    return None


@contextmanager
def output_lock(out: str, rank: Any) -> Iterator[None]:
    """Hold ``<out>.lock`` while this command writes ``out`` (rank 0 only; where the folder exists:
    a missing one is reported by the output check itself)."""
    from molgen.locks import exclusive_lock

    lock = Path(f"{str(out).rstrip('/')}.lock")
    if rank.rank != 0 or not lock.parent.is_dir():
        yield
        return
    with exclusive_lock(lock, f"output {out}", "wait for that command to finish, or choose another --out"):
        yield


def fixed_part(opts: Any) -> Any:
    """The fixed part the options ask for (a fragment, a motif; None without one), read and checked
    by the domain that owns those options (:meth:`molgen.domains.Domain.fixed_from_options`), before
    a model loads.

    Raises:
        ValueError: inconsistent options, an unreadable or unusable file.
    """
    from molgen.domains import DOMAINS

    parts = [part for name in DOMAINS if (part := DOMAINS[name].fixed_from_options(opts)) is not None]
    if opts.resample is not None and not parts:
        raise ValueError("--resample applies only with --fix, --link or --motif")
    return parts[0] if parts else None
