"""Load a trained model for inference from a Lightning checkpoint, safely.

Checkpoints are read with ``torch.load(weights_only=True)``: only tensors and
plain Python containers are accepted, so a checkpoint can never execute code.
Their ``state_dict`` holds the EMA weights (see ``molgen.training.train``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from molgen.checkpoint_files import CheckpointError, read_checkpoint_file
from molgen.dataset_info import DatasetInfo, dataset_info_from_dict
from molgen.diffusion.process import DiffusionProcess
from molgen.domains import Domain, get_domain
from molgen.models import build_model
from molgen.sampling import SamplingConfig, generate

_PREFIX = "denoiser."


@dataclass
class TrainedModel:
    """A denoiser ready for sampling with the diffusion it was trained under.

    Attributes:
        denoiser: the network in eval mode, EMA weights loaded.
        diffusion: the process it was trained under (any
            :class:`~molgen.diffusion.process.DiffusionProcess`).
        info: what it kept of its training data (its domain, size histogram, decoding).
        path: where it was loaded from.
        card: the model card of a shipped model (:mod:`molgen.pretrained`), else None.
        config: the ``model`` and ``diffusion`` configs it was built from (a distillation's student takes
            its teacher's).
    """

    denoiser: torch.nn.Module
    diffusion: DiffusionProcess
    info: DatasetInfo
    path: Path
    card: dict | None = None
    config: dict = field(default_factory=dict)

    @property
    def domain(self) -> Domain:
        """The domain that draws sizes for, decodes and writes this model's samples."""
        return get_domain(self.info.domain)

    @property
    def sampling(self) -> SamplingConfig:
        """The card's recommended sampler for a shipped model, else the defaults."""
        return SamplingConfig.from_card((self.card or {}).get("sampling"))

    @property
    def source(self) -> str:
        """How outputs name this model: ``pretrained:<name>`` or the checkpoint's absolute path."""
        return f"pretrained:{self.card['name']}" if self.card else str(self.path.resolve())

    def to(self, device: torch.device | str) -> "TrainedModel":
        self.denoiser.to(device)
        return self

    def compile(self) -> "TrainedModel":
        """Run the denoiser through ``torch.compile`` from now on (eager if that fails); see
        :class:`~molgen.nn.compiled.CompiledDenoiser`. Pays for many network calls."""
        from molgen.nn.compiled import CompiledDenoiser

        if not isinstance(self.denoiser, CompiledDenoiser):
            self.denoiser = CompiledDenoiser(self.denoiser)
        return self

    def mixed_precision(self) -> "TrainedModel":
        """Run the denoiser under bfloat16 autocast from now on, its outputs in float32; see
        :class:`~molgen.nn.mixed_precision.MixedPrecisionDenoiser`. About 2x faster on CPUs with
        AVX512-BF16; its effect on quality is measured per model in docs/performance.md."""
        from molgen.nn.mixed_precision import MixedPrecisionDenoiser

        if not isinstance(self.denoiser, MixedPrecisionDenoiser):
            self.denoiser = MixedPrecisionDenoiser(self.denoiser)
        return self

    def sample(
        self,
        n: int,
        *,
        seed: int = 0,
        steps: int | None = None,
        sampler: str | None = None,
        sampler_options: dict | None = None,
        precision: str | None = None,
        device: torch.device | str = "cpu",
        progress: bool = False,
        **request,
    ) -> list:
        """Generate ``n`` items with :attr:`sampling` updated by what is given
        (:meth:`SamplingConfig.updated`: naming a sampler drops the card's options; ``precision``,
        ``"fp32"`` or ``"bf16"``, replaces the card's).

        Molecules: RDKit molecules with one 3D conformer each (generated or
        perceived bonds; the int property ``bonds_perceived`` is 0 where
        perception failed). Backbones: ``[L, 4, 3]`` float64 arrays in Å.
        ``request`` is the domain's size request (``num_atoms=``, ``length=(lo, hi)``)
        and ``batch_size``; for a fold-conditioned backbone model, ``labels=`` one secondary-structure
        array per sample instead of a length
        (:func:`~molgen.proteins.secondary_structure.parse_labels`).
        """
        sampling = self.sampling.updated(sampler, steps, sampler_options, precision)
        samples = generate(self, n, sampling, seed=seed, device=device, progress=progress, **request)
        return self.domain.api_objects(samples)


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> TrainedModel:
    """Read a molgen checkpoint; raises :class:`CheckpointError` with a one-line reason."""
    path = Path(path)
    ckpt = read_checkpoint_file(path)
    hparams = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    state = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    if not isinstance(hparams, dict) or not isinstance(state, dict) or "model" not in hparams:
        raise CheckpointError(
            f"{path} is a PyTorch file but not a molgen checkpoint (no model hyperparameters or weights): "
            "use a checkpoint written by `molgen train`"
        )

    if "diffusion" not in hparams and any(k.startswith("predictor.") for k in state):
        raise CheckpointError(
            f"{path} is a property predictor (experiment=qm9_property), not a generative model: "
            "use it with `molgen evaluate-conditioning --predictor`"
        )
    weights = {k[len(_PREFIX) :]: v for k, v in state.items() if k.startswith(_PREFIX)}
    return model_from_parts(hparams, weights, path, device)


def model_from_parts(
    hparams: dict,
    weights: dict[str, torch.Tensor],
    source: Path,
    device: torch.device | str = "cpu",
    card: dict | None = None,
) -> TrainedModel:
    """Build the denoiser and diffusion of ``hparams`` (``model``, ``diffusion``,
    ``dataset_info``) and load the denoiser's ``weights``; errors name ``source``."""
    try:
        info = dataset_info_from_dict(hparams["dataset_info"])
        denoiser, diffusion = build_model(hparams["model"], hparams["diffusion"], info)
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint's model or diffusion config is unusable ({err}): {source}") from err
    try:
        denoiser.load_state_dict(weights)
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint weights do not match its model config: {source}") from err
    denoiser.eval().to(device)
    config = {key: hparams[key] for key in ("model", "diffusion")}
    return TrainedModel(denoiser, diffusion, info, Path(source), card, config)
