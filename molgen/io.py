"""Writing output files safely: early writability checks and atomic replacement.

Every file molgen produces (SDF, PDB, processed-data caches) is first written to a
temporary file in the destination directory, flushed to disk and then renamed over
the destination, so readers see either the old file or the complete new one, never
a partial write.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["atomic_output", "atomic_write_text", "check_writable", "default_cache_root", "read_cache"]


def check_writable(path: str | os.PathLike) -> Path:
    """Fail early if ``path`` cannot be (over)written as a file.

    Call this before expensive work (e.g. sampling) whose result goes to ``path``.
    The check creates and deletes a small probe file in the target directory.

    Returns:
        ``path`` as an absolute :class:`Path`.

    Raises:
        FileNotFoundError: if the directory does not exist.
        NotADirectoryError: if the parent path is not a directory.
        IsADirectoryError: if ``path`` itself is a directory.
        PermissionError: if the directory is not writable.
    """
    path = Path(path).expanduser().absolute()
    parent = path.parent
    if path.is_dir():
        raise IsADirectoryError(f"output path is a directory: {path}")
    if not parent.exists():
        raise FileNotFoundError(f"output directory does not exist: {parent}")
    if not parent.is_dir():
        raise NotADirectoryError(f"output path's parent is not a directory: {parent}")
    probe = parent / f".{path.name}.{uuid.uuid4().hex}.probe"
    try:
        with open(probe, "x"):
            pass
    except OSError as e:
        raise PermissionError(f"cannot write to directory {parent}: {e.strerror}") from None
    probe.unlink()
    return path


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write to; on a normal exit it replaces ``path``.

    The temporary file lives in the destination directory (so the final rename
    cannot cross file systems) under a unique name (so concurrent writers, e.g.
    DDP ranks, never clobber each other). It is fsync'ed before the rename. If
    the block raises, the temporary file is removed and ``path`` is untouched.

    Raises:
        FileNotFoundError / NotADirectoryError / IsADirectoryError / PermissionError:
            see :func:`check_writable` (checked before the block runs).
    """
    path = check_writable(path)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())  # data on disk before the rename makes it visible
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically; see :func:`atomic_output`.

    Returns:
        ``path`` as an absolute :class:`Path`.
    """
    with atomic_output(path) as tmp:
        with open(tmp, "x", encoding="utf-8", newline="") as f:
            f.write(text)
    return Path(path).expanduser().absolute()


def default_cache_root() -> Path:
    """Root of molgen's processed-data caches: ``$MOLGEN_CACHE`` if set, else ``~/.cache/molgen``."""
    root = os.environ.get("MOLGEN_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "molgen"


def read_cache(
    path: str | os.PathLike, what: str, format_version: int | None = None, required_keys: tuple[str, ...] = ()
) -> dict[str, Any] | None:
    """A processed-data cache dict (``torch.load(weights_only=True)``), or None when it must be rebuilt:
    missing, unreadable, of another ``format_version`` (None: not checked) or lacking ``required_keys``.
    ``what`` names the cache in the log messages."""
    import torch

    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = torch.load(path, weights_only=True)
    except Exception as e:  # truncated/corrupt file: rebuild instead of failing
        log.warning("ignoring unreadable %s cache %s (%s); it will be rebuilt", what, path, e)
        return None
    if not isinstance(data, dict) or (format_version is not None and data.get("format_version") != format_version):
        log.info("%s cache %s has another format; it will be rebuilt", what, path)
        return None
    if any(key not in data for key in required_keys):
        log.warning("%s cache %s lacks keys; it will be rebuilt", what, path)
        return None
    return data
