#!/usr/bin/env python
"""Ship a trained checkpoint as a pretrained model inside the package.

Writes ``molgen/pretrained/<name>.safetensors`` (EMA weights) and
``<name>.json`` (the model card: the descriptive fields of CARD plus the
configs that rebuild the model, taken from the checkpoint), then reloads them.

CARD is a JSON file with at least ``summary``, ``command``, ``data``,
``training``, ``quality`` and ``sampling`` (``{"sampler": ..., "steps": ..., "options": {...}}``, options optional;
the defaults of ``load_pretrained(...).sample``); ``quality`` should hold the
figures ``molgen evaluate --json`` gave on the model's samples.

A property predictor's checkpoint (``experiment=qm9_property``) is shipped the same way, its card without
``sampling`` (:func:`molgen.property_prediction.export_predictor`).

Usage: python scripts/export_pretrained.py CKPT NAME CARD.json
"""

from __future__ import annotations

import argparse
import json

import torch

from molgen.models.property_predictor import PREDICTORS
from molgen.pretrained import export_pretrained
from molgen.property_prediction import export_predictor

REQUIRED = ("summary", "command", "data", "training", "quality", "sampling")
#: A property predictor's card (experiment=qm9_property): no sampler.
REQUIRED_PREDICTOR = ("summary", "command", "data", "training", "quality")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ckpt")
    parser.add_argument("name")
    parser.add_argument("card")
    args = parser.parse_args()
    with open(args.card) as fh:
        card = json.load(fh)
    hparams = torch.load(args.ckpt, map_location="cpu", weights_only=True)["hyper_parameters"]
    predictor = hparams["model"]["name"] in PREDICTORS
    missing = [key for key in (REQUIRED_PREDICTOR if predictor else REQUIRED) if key not in card]
    if missing:
        raise SystemExit(f"export_pretrained: the card lacks {missing}")
    weights, card_path = (export_predictor if predictor else export_pretrained)(args.ckpt, args.name, card)
    print(f"wrote {weights} ({weights.stat().st_size / 2**20:.1f} MiB) and {card_path}")


if __name__ == "__main__":
    main()
