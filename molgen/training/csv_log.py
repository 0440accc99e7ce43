"""The run's CSV log, ``logs/metrics.csv``, kept across resumes.

Lightning's CSV logger deletes an existing ``metrics.csv`` when it starts, so each resumed run would
erase the history that ``molgen report`` plots and that model cards quote. :class:`ResumableCSVLogger`
keeps the rows logged before the step the run resumes from and appends after them; rows from after that
checkpoint (logged before an interruption) are dropped, since the resumed run logs those steps again.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment


def rows_before(path: Path, step: int) -> tuple[list[str], list[dict[str, str]]]:
    """The header and the rows of the CSV log ``path`` whose ``step`` is below ``step``."""
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        rows = [row for row in reader if row.get("step", "") != "" and int(float(row["step"])) < step]
        return list(reader.fieldnames or []), rows


class ResumableCSVLogger(CSVLogger):
    """``CSVLogger(save_dir, name, version)`` that continues an existing log instead of deleting it.

    Args:
        resume_step: the global step of the checkpoint the run resumes from; None for a new run,
            whose log starts empty as Lightning's does.
    """

    def __init__(self, save_dir: str | Path, name: str, version: str, resume_step: int | None) -> None:
        super().__init__(save_dir, name=name, version=version)
        self._resume_step = resume_step

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            path = Path(self.log_dir) / ExperimentWriter.NAME_METRICS_FILE
            kept = None
            if self._resume_step is not None and path.is_file():
                kept = rows_before(path, self._resume_step)
            with warnings.catch_warnings():
                if kept is not None:  # its warning that the old log will be deleted is not true here
                    warnings.filterwarnings("ignore", message="Experiment logs directory")
                writer = super().experiment  # Lightning's writer deletes the file here
            if kept is not None and kept[1]:
                header, rows = kept
                with path.open("w", newline="") as fh:
                    out = csv.DictWriter(fh, fieldnames=header)
                    out.writeheader()
                    out.writerows(rows)
                writer.metrics_keys = header  # new columns rewrite the header, as in Lightning's writer
        return self._experiment
