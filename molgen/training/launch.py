"""`molgen train` from a command line: validate the overrides, then run :func:`train` under Hydra.

Hydra parses the overrides from ``sys.argv``; Lightning's local DDP launcher
starts the other ranks by re-running the command line, so the original one is
put back before training starts.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from molgen.checkpoint_files import CheckpointError
from molgen.commands import fail
from molgen.locks import LockedError
from molgen.training.config import register_schemas, validate_overrides

HELP = (
    "usage: molgen train [key=value ...]\n\n"
    "Hydra overrides of conf/config.yaml; groups: data, model, diffusion, trainer, experiment.\n"
    "Example: molgen train experiment=qm9 trainer.max_steps=200 model.hidden_dim=64 "
    "data.subset=2000 hydra.run.dir=runs/try1\n"
    "Use --cfg job to print the composed config."
)


def run_directory_error(overrides: list[str]) -> str | None:
    """An error line if the ``hydra.run.dir=`` given cannot be the run directory (a file, or a
    folder that cannot be created), else None. Creates the folder: Hydra would, a moment later."""
    given = [o.split("=", 1)[1] for o in overrides if o.startswith("hydra.run.dir=")]
    if not given:
        return None  # Hydra's default: a new time-stamped folder under outputs/
    run_dir = Path(given[-1]).expanduser()
    if run_dir.exists() and not run_dir.is_dir():
        return f"hydra.run.dir={given[-1]} is a file, not a folder: choose another run directory"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return f"hydra.run.dir={given[-1]} cannot be created ({err.strerror}): choose another run directory"
    return None


def launch(args: list[str]) -> int:
    """Run ``molgen train ARGS``; returns the exit status (a failed run exits with 1 from inside Hydra)."""
    if any(a in ("-h", "--help") for a in args):
        print(HELP)
        return 0
    multirun = any(a in ("-m", "--multirun") for a in args)
    if not multirun and not any(a.startswith("-") for a in args):
        error = validate_overrides(args) or run_directory_error(args)
        if error:
            return fail("train", error)

    import hydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    command = [sys.argv[0], "train", *args]

    @hydra.main(config_path="pkg://molgen.conf", config_name="config", version_base="1.3")
    def run(cfg) -> None:
        from lightning.fabric.utilities.exceptions import MisconfigurationException

        from molgen.training.train import train

        # Hydra's handlers already print and file Lightning's records; drop Lightning's own duplicate.
        for name in ("lightning", "lightning.pytorch"):
            logging.getLogger(name).handlers.clear()
            logging.getLogger(name).propagate = True
        sys.argv = command  # for Lightning's DDP launcher
        try:
            hydra_cfg = HydraConfig.get()
            train(cfg, Path(hydra_cfg.runtime.output_dir), sweep=hydra_cfg.mode == RunMode.MULTIRUN)
        except (CheckpointError, LockedError) as err:  # molgen's own: the message says it all
            sys.exit(fail("train", str(err)))
        except (ValueError, TypeError, OSError, FloatingPointError, MisconfigurationException) as err:
            # TypeError: a config value of the wrong type reached a constructor
            sys.exit(fail("train", f"{type(err).__name__}: {err}"))

    sys.argv = ["molgen-train", *args]  # Hydra parses the overrides from sys.argv
    register_schemas()  # the configs' defaults lists name the schemas
    run()
    return 0
