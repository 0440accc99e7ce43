"""What the domains' command implementations share: one-line errors, JSON reports, sharded generation."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["fail", "generate_on_ranks", "write_json"]


def fail(command: str, message: str, status: int = 1) -> int:
    """Print ``molgen <command>: error: <message>`` to stderr and return ``status``."""
    print(f"molgen {command}: error: {message}", file=sys.stderr)
    return status


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
    postprocess: Callable[[list], list] | None = None,
    **request: Any,
) -> list | None:
    """:func:`molgen.sampling.generate` on this process's shard with the command's options.

    ``postprocess`` maps this process's samples before they are gathered (work each
    process does for its own share, e.g. relaxation). Returns every sample, in
    single-process order, on rank 0 and None on the other ranks.
    """
    from molgen.distributed import gather_to_first
    from molgen.sampling import generate, merge_shards

    samples = generate(
        model,
        opts.num_samples,
        sampling,
        batch_size=opts.batch_size,
        seed=opts.seed,
        device=device,
        progress=not opts.no_progress and rank.rank == 0,
        shard=(rank.rank, rank.world_size),
        **request,
    )
    if postprocess is not None:
        samples = postprocess(samples)
    shards = gather_to_first(samples, rank)
    return None if shards is None else merge_shards(shards, opts.batch_size or model.domain.default_batch_size)
