"""Reading checkpoint and weight files safely, with one clear line for every problem.

Every file molgen loads weights from goes through :func:`read_checkpoint_file`
(PyTorch checkpoints, read with ``torch.load(weights_only=True)``: tensors and
plain containers only, so a file can never run code) or
:func:`read_safetensors_file` (shipped weights). Each problem raises a
:class:`CheckpointError` whose message names the file, says what is wrong with
it and what to do; nothing here ever suggests loading with ``weights_only=False``.
"""

from __future__ import annotations

import json
import pickle
import struct
import zipfile
from pathlib import Path

import torch

__all__ = ["CheckpointError", "read_checkpoint_file", "read_safetensors_file"]

_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's archive format
_PICKLE_MAGIC = b"\x80"  # torch.save's legacy format: a pickle, protocol >= 2


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, or not a molgen checkpoint."""


def _is_safetensors(path: Path, head: bytes, size: int) -> bool:
    """A safetensors file: an 8-byte little-endian header length, then that many bytes of JSON."""
    if len(head) < 9:
        return False
    (header_length,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and 8 + header_length <= size


def _check_exists(path: Path, what: str, advice: str) -> int:
    """The file's size; CheckpointError when it is missing, a folder or empty."""
    if not path.exists():
        raise CheckpointError(f"{what} not found: {path}")
    if path.is_dir():
        hint = f"; the run's latest is {path / 'checkpoints' / 'last.ckpt'}" if (path / "checkpoints").is_dir() else ""
        raise CheckpointError(f"{path} is a folder, not a {what} file{hint}")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes), left by an interrupted write or copy: {advice}")
    return size


def read_checkpoint_file(path: str | Path, advice: str = "use another checkpoint") -> object:
    """The contents of a PyTorch checkpoint file, loaded on the CPU with ``weights_only=True``.

    ``advice`` ends the messages of damaged files: what the caller's user can do instead.

    Raises:
        CheckpointError: missing, a folder, empty, truncated or corrupt, not a PyTorch file
            (e.g. text or a safetensors file), or holding objects other than tensors and
            plain containers (a pickle that could run code).
    """
    path = Path(path)
    size = _check_exists(path, "checkpoint", advice)
    with path.open("rb") as f:
        head = f.read(16)
    if _is_safetensors(path, head, size):
        raise CheckpointError(
            f"{path} is a safetensors weights file, not a checkpoint of `molgen train`; shipped models are "
            "loaded by name (`molgen sample --model NAME`, `molgen models` lists them)"
        )
    if head.startswith(_ZIP_MAGIC):
        if not zipfile.is_zipfile(path):
            raise CheckpointError(
                f"{path} is truncated or corrupt (an incomplete PyTorch archive, e.g. from an interrupted write or "
                f"copy): {advice}"
            )
    elif not head.startswith(_PICKLE_MAGIC):
        raise CheckpointError(f"{path} is not a PyTorch checkpoint (neither a PyTorch archive nor a pickle)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"refusing to load {path}: it holds Python objects other than tensors and plain containers, and "
            "unpickling those could run code; molgen loads only checkpoints written by `molgen train`"
        ) from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError, IndexError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"{path} is truncated or corrupt ({reason}): {advice}") from err


def read_safetensors_file(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file (on the CPU).

    Raises:
        CheckpointError: missing, a folder, empty, or not a valid safetensors file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    size = _check_exists(path, "weights", "reinstall molgen")
    with path.open("rb") as f:
        head = f.read(16)
    if not _is_safetensors(path, head, size):
        raise CheckpointError(f"{path} is not a safetensors file (its header is not one): reinstall molgen")
    try:
        return load_file(path)
    except (SafetensorError, json.JSONDecodeError, OSError, ValueError) as err:
        raise CheckpointError(
            f"{path} is a corrupt safetensors file ({str(err).splitlines()[0]}): reinstall molgen"
        ) from err
