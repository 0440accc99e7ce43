"""Resuming a killed ``molgen dock``: the results of finished molecules, kept beside the output.

``<out>.progress`` is a JSON-lines file: a header with the run's fingerprint (hashes of
the input files and every option that changes a result), then one line per finished
molecule, appended and flushed to disk as each finishes. A rerun of the same command
reads it back and docks only the molecules not in it; a run with other inputs or
options starts over. A line cut short by a kill is dropped (that molecule is docked
again). The file is deleted once the output SDF is written, which is itself atomic
(:func:`molgen.io.atomic_output`), so a reader never sees a partial output.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from molgen.docking.results import MoleculeResult
from molgen.io import atomic_write_text

log = logging.getLogger(__name__)

__all__ = ["FORMAT_VERSION", "ProgressFile", "file_digest", "run_fingerprint"]

FORMAT_VERSION = 1


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def run_fingerprint(**parts: Any) -> str:
    """SHA-256 of the JSON of ``parts`` (file digests and options): equal for runs that give equal results."""
    text = json.dumps({"format_version": FORMAT_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class ProgressFile:
    """The finished molecules of one run, on disk.

    Args:
        path: the progress file (``<out>.progress``).
        fingerprint: :func:`run_fingerprint` of the run.
    """

    def __init__(self, path: str | os.PathLike, fingerprint: str):
        self.path = Path(path)
        self.fingerprint = fingerprint

    def _header(self) -> str:
        return json.dumps({"fingerprint": self.fingerprint}) + "\n"

    def start(self) -> dict[int, MoleculeResult]:
        """The results a previous run of the same fingerprint finished, by index ({} when none);
        rewrites the file to hold exactly those, so that new lines can be appended."""
        done: dict[int, MoleculeResult] = {}
        if self.path.is_file():
            lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
            try:
                same_run = json.loads(lines[0]).get("fingerprint") == self.fingerprint if lines else False
            except (ValueError, AttributeError):
                same_run = False
            if not same_run:
                log.warning("ignoring %s: it is the progress of a run with other inputs or options", self.path)
            for line in lines[1:] if same_run else ():
                try:
                    result = MoleculeResult.from_json(json.loads(line))
                except (ValueError, TypeError, KeyError):
                    continue  # the line being written when the run was killed
                done[result.index] = result
        atomic_write_text(self.path, self._header() + "".join(json.dumps(r.to_json()) + "\n" for r in done.values()))
        return done

    def append(self, result: MoleculeResult) -> None:
        """Record one finished molecule durably (flushed and synced before returning)."""
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(result.to_json()) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
