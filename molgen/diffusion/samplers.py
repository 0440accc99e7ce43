"""Reverse-process samplers.

A sampler owns a time grid from 1 (noise) to 0 (data) and a ``step`` that
moves the Gaussian channels (positions, continuous features) from one grid
time ``t`` to the next ``s < t`` given the denoiser's noise prediction.
:meth:`Sampler.sample` is the one sampling loop of molgen, for every
:class:`~molgen.diffusion.process.DiffusionProcess`: draw the process's prior,
and at each step call the network, the sampler's ``step`` and the process's
``discrete_step`` (its categorical channels, if any); finish with the clean
prediction at the grid's last time (:meth:`Sampler.finish`) and the optional
refinement. A new algorithm subclasses :class:`Sampler` and overrides
:meth:`step` (and :meth:`reset` if it carries state between steps, like a
multistep solver; :meth:`timesteps` and :meth:`finish` if its grid stops short
of 0, like the consistency sampler).

Registered samplers (:func:`make_sampler`):

===============  ==================  ======================  ============
name             class               options                 default grid
===============  ==================  ======================  ============
``ddpm``         AncestralSampler    ``noise_scale, grid``   ``time``
``ddim``         DDIMSampler         ``eta, grid``           ``time``
``dpm-solver``   DPMSolverSampler    ``eta, grid``           ``logsnr``
``consistency``  ConsistencySampler  ``grid``                ``time``
===============  ==================  ======================  ============

Every sampler also takes ``refine_steps`` and ``refine_time`` (numbers, or lists for a ladder of
stages), ``polish_steps``, ``polish_time`` and ``polish_average`` (see :meth:`Sampler.refine`):
denoiser calls after the loop that re-noise the sample slightly and replace it by its clean
prediction (or the mean of several);
``class_temperature`` and ``constrained_decoding`` for processes with categorical channels (see
:meth:`~molgen.diffusion.joint.JointDiffusion.discrete_step`); ``resample``
with a fixed part; and ``guidance`` for conditional models
(:mod:`molgen.diffusion.conditioning`).

(``ancestral`` is an alias of ``ddpm``.) Grids: ``time`` is uniform in
``t``; ``logsnr`` is uniform in the log-SNR ``log(alpha**2 / sigma**2)``
(equivalently in the half log-SNR ``lambda = log(alpha / sigma)``), which
spreads few steps evenly over the signal-to-noise range.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from molgen.diffusion.conditioning import GraphCondition, GuidedDenoiser
from molgen.diffusion.energy_guidance import EnergyGuidance
from molgen.diffusion.gaussian import zero_com_noise
from molgen.diffusion.inpainting import KnownPart, is_fixed_part_aware
from molgen.diffusion.process import ClassConstraint, DiffusionProcess, GraphState, Prediction, Predictor
from molgen.diffusion.schedules import NoiseSchedule
from molgen.graph_batch import node_batch, remove_mean
from molgen.registry import Registry

GRIDS = ("time", "logsnr")
#: How a sampler puts a fixed part back into a state at a time (None: exactly), see :meth:`Sampler.sample`.
Keep = Callable[[GraphState, Tensor | None], GraphState]
SAMPLERS: Registry[type[Sampler]] = Registry("sampler")


def invert_log_snr(schedule: NoiseSchedule, log_snr: Tensor, iterations: int = 60) -> Tensor:
    """Times ``t`` in [0, 1] with ``schedule.log_snr(t) == log_snr`` (same shape), by bisection.

    Works for any schedule because the log-SNR is strictly decreasing in ``t``;
    60 halvings of [0, 1] reach float64 resolution.
    """
    lo, hi = torch.zeros_like(log_snr), torch.ones_like(log_snr)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        too_early = schedule.log_snr(mid) > log_snr  # still too clean: the target lies later
        lo, hi = torch.where(too_early, mid, lo), torch.where(too_early, hi, mid)
    return 0.5 * (lo + hi)


def half_log_snr(schedule: NoiseSchedule, t: Tensor) -> Tensor:
    """``lambda_t = log(alpha_t / sigma_t)``, DPM-Solver's time variable."""
    return 0.5 * schedule.log_snr(t)


def _unit_interval(name: str, value: float) -> float:
    """``value`` of option ``name`` checked to lie in [0, 1] (the samplers' noise scales)."""
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return float(value)


def _grid(value: str) -> str:
    if value not in GRIDS:
        raise ValueError(f"unknown time grid {value!r}; choose from {list(GRIDS)}")
    return value


def _round_count(name: str, value: int) -> int:
    if int(value) != value or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0, got {value}")
    return int(value)


def _round_time(name: str, value: float) -> float:
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value}")
    return float(value)


def _stages(name: str, value: float | Sequence[float], check: Callable[[str, float], float]) -> tuple:
    """``refine_steps`` or ``refine_time`` as a tuple of per-stage values, each checked by ``check``: a number is
    one stage, a non-empty list or tuple one value per stage of the ladder."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"{name} must be a number or a non-empty list, got []")
        return tuple(check(name, item) for item in value)
    return (check(name, value),)


def round_ladder(refine_steps: int | Sequence[int], refine_time: float | Sequence[float]) -> list[tuple[int, float]]:
    """The refinement's stages ``[(rounds, time), ...]`` from ``refine_steps`` and ``refine_time``: numbers give
    one stage; equal-length lists a ladder (e.g. ``[64, 16]`` and ``[0.3, 0.1]``: 64 rounds at t = 0.3, then 16
    at 0.1); a number beside a list applies to every stage.

    Raises:
        ValueError: a value out of range, or two lists of different lengths.
    """
    counts = _stages("refine_steps", refine_steps, _round_count)
    times = _stages("refine_time", refine_time, _round_time)
    if len(counts) == 1:
        counts = counts * len(times)
    elif len(times) == 1:
        times = times * len(counts)
    elif len(counts) != len(times):
        raise ValueError(f"refine_time must list as many stages as refine_steps ({len(counts)}), got {len(times)}")
    return list(zip(counts, times))


def _resample(value: int) -> int:
    if int(value) != value or value < 1:
        raise ValueError(f"resample must be a whole number >= 1, got {value}")
    return int(value)


def _guidance(value: float) -> float:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"guidance must be a number >= 0, got {value}")
    return float(value)


def _class_temperature(value: float) -> float:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"class_temperature must be a positive number, got {value}")
    return float(value)


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


#: The value check of every sampler option but ``refine_steps`` and ``refine_time`` (checked together by
#: :func:`round_ladder`), shared by the constructors and :func:`check_option_values`.
_OPTION_CHECKS = {
    "eta": lambda value: _unit_interval("eta", value),
    "noise_scale": lambda value: _unit_interval("noise_scale", value),
    "grid": _grid,
    "polish_steps": lambda value: _round_count("polish_steps", value),
    "polish_time": lambda value: _round_time("polish_time", value),
    "polish_average": lambda value: _round_count("polish_average", value),
    "class_temperature": _class_temperature,
    "constrained_decoding": lambda value: _flag("constrained_decoding", value),
    "final_call": lambda value: _flag("final_call", value),
    "refine_classes": lambda value: _flag("refine_classes", value),
    "resample": _resample,
    "guidance": _guidance,
}


def check_option_values(options: dict) -> None:
    """Check the values of sampler options before any sampler (or model) exists.

    Raises:
        ValueError: the first value out of its range, in the constructors' words.
    """
    round_ladder(options.get("refine_steps", 0), options.get("refine_time", 0.02))
    for name, value in options.items():
        if name in _OPTION_CHECKS:
            _OPTION_CHECKS[name](value)


def _unchanged(state: GraphState, t: Tensor | None) -> GraphState:
    """The ``keep`` of a sample without a fixed part."""
    return state


class Sampler:
    """Base sampler: the time grid and the sampling loop.

    Args:
        process: the forward process being inverted; the sampler steps its
            Gaussian part (``process.gaussian``, kept as :attr:`diffusion`).
        num_steps: number of reverse steps ``T``; the denoiser is called
            ``T + 1`` times (the last call turns ``z_0`` into the sample;
            :class:`ConsistencySampler`: ``T`` calls in all, see :attr:`network_calls`).
        final_call: make that last call (default True). False: the sample is the state the last step
            reached at ``t = 0``, whose positions differ from the call's clean prediction there by
            ``sigma(0) / alpha(0)`` times the predicted noise (about 0.005 for the polynomial schedule),
            so ``T`` calls in all; what a few-step (distilled) sampler wants, where one call is a
            quarter of the cost. Refused by :class:`ConsistencySampler`, whose last call is a step.
        grid: ``"time"`` (uniform in ``t``) or ``"logsnr"`` (uniform in
            log-SNR); None takes the class's ``default_grid``.
        refine_steps: refinement calls after the loop (default 0), see :meth:`refine`; a list of counts makes a
            ladder of stages with the times in ``refine_time`` (:func:`round_ladder`).
        refine_time: the time they re-noise to, in (0, 1) (default 0.02); a list: one time per stage.
        polish_steps: more refinement calls after those (default 0), each re-noising to ``polish_time``.
        polish_time: in (0, 1) (default 0.02): a small time after refinements at a larger ``refine_time``,
            whose last clean prediction from that larger noise leaves bond lengths coarse.
        polish_average: after all rounds, this many more calls (default 0) that re-noise the final sample to
            ``polish_time`` independently and average their clean predictions (positions, and features when
            diffused; classes kept), see :meth:`refine`.
        refine_classes: the refinements re-noise the categorical channels too and draw them again from the
            prediction (default False: they keep the classes as drawn). Refused for processes without such
            channels.
        class_temperature: processes with categorical channels divide the
            predicted clean-class logits by this before each draw (default 1;
            below 1 sharpens them). Refused for processes without such channels.
        constrained_decoding: the final draw of the pair classes obeys the domain's constraint
            (``class_constraint`` of :meth:`sample`; molecules: no atom above its largest valence,
            :mod:`molgen.molecules.valence_decoding`). Default False: as drawn. Refused for
            processes without categorical channels.
        resample: with a fixed part (inpainting), take each step this many times,
            re-noising the result back to the step's start in between (RePaint's
            resampling jumps, which let the generated part adapt to the fixed one;
            default 1: none). Costs that many network calls per step.
        guidance: classifier-free guidance scale ``w`` >= 0 for a conditional model sampled with a
            condition (:class:`~molgen.diffusion.conditioning.GuidedDenoiser`): every call becomes
            two, combined as ``(1 + w) * conditional - w * unconditional``. 0 (default): the
            conditional model as trained, one call.
    """

    default_grid = "time"

    def __init__(
        self,
        process: DiffusionProcess,
        num_steps: int,
        grid: str | None = None,
        refine_steps: int | Sequence[int] = 0,
        refine_time: float | Sequence[float] = 0.02,
        class_temperature: float = 1.0,
        constrained_decoding: bool = False,
        resample: int = 1,
        guidance: float = 0.0,
        final_call: bool = True,
        refine_classes: bool = False,
        polish_steps: int = 0,
        polish_time: float = 0.02,
        polish_average: int = 0,
    ) -> None:
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        grid = _grid(self.default_grid if grid is None else grid)
        ladder = round_ladder(refine_steps, refine_time)
        polish_steps, polish_time = _round_count("polish_steps", polish_steps), _round_time("polish_time", polish_time)
        polish_average = _round_count("polish_average", polish_average)
        class_options = {
            "class_temperature": _class_temperature(class_temperature) != 1.0,
            "constrained_decoding": _flag("constrained_decoding", constrained_decoding),
            "refine_classes": _flag("refine_classes", refine_classes),
        }
        given = [name for name, is_set in class_options.items() if is_set]
        if given and not process.has_classes:
            raise ValueError(
                f"{given[0]} applies to models that generate bonds; this one generates coordinates and types"
            )
        self.process = process
        self.diffusion = process.gaussian
        self.class_temperature = float(class_temperature)
        self.constrained_decoding = constrained_decoding
        self.refine_classes = refine_classes
        self.final_call = _flag("final_call", final_call)
        # what sample() runs with: the domain's constraint (under constrained_decoding) and the fixed pairs
        self._constraint: ClassConstraint | None = None
        self._frozen: Tensor | None = None
        self.resample = _resample(resample)
        self.guidance = _guidance(guidance)
        self.num_steps = num_steps
        self.grid = grid
        self.ladder = ladder
        self.polish_steps = polish_steps
        self.polish_time = polish_time
        self.polish_average = polish_average

    @property
    def network_calls(self) -> int:
        """Denoiser calls of one :meth:`sample`: one per step (times ``resample`` with a fixed part), the final
        clean prediction (unless ``final_call`` is False), the refinements, polishing rounds and averaged
        polishing calls; twice that with ``guidance``."""
        loop = (len(self.timesteps()) - 1) * self.resample + int(self.final_call)
        calls = loop + sum(rounds for rounds, _ in self.ladder) + self.polish_steps + self.polish_average
        return 2 * calls if self.guidance else calls

    def timesteps(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Tensor:
        """Decreasing grid of ``T + 1`` times from exactly 1 to exactly 0, [T + 1].

        ``time``: ``[1, (T-1)/T, ..., 0]``. ``logsnr``: the times whose
        log-SNR is evenly spaced between ``log_snr(1)`` and ``log_snr(0)``
        (both finite, see :mod:`molgen.diffusion.schedules`).
        """
        if self.grid == "time":
            return torch.linspace(1.0, 0.0, self.num_steps + 1, device=device, dtype=dtype)
        schedule = self.diffusion.schedule
        first, last = schedule.log_snr(torch.tensor([1.0, 0.0], dtype=torch.float64)).tolist()
        t = invert_log_snr(schedule, torch.linspace(first, last, self.num_steps + 1, dtype=torch.float64))
        t[0], t[-1] = 1.0, 0.0  # exact ends: the loop's final clean prediction is at t = 0
        return t.to(device=device, dtype=dtype)

    def reset(self) -> None:
        """Clear state carried between steps; :meth:`sample` calls it before the first step.

        Stateless samplers do nothing; multistep solvers forget their history
        so that consecutive :meth:`sample` calls are independent.
        """

    def memory(self) -> object:
        """What the sampler carries between steps (a multistep solver's history), for :meth:`recall`."""
        return None

    def recall(self, memory: object) -> None:
        """Return to an earlier :meth:`memory`, so that a repeated step (a resampling jump) starts
        from the same history as the first try."""

    def step(
        self,
        pos_t: Tensor,
        h_t: Tensor,
        eps_pos: Tensor,
        eps_h: Tensor,
        t: Tensor,
        s: Tensor,
        batch: Tensor,
        generator: torch.Generator | None,
    ) -> tuple[Tensor, Tensor]:
        """Move ``(pos_t, h_t)`` from time ``t`` to ``s < t`` (scalars, 0-dim tensors).

        ``eps_pos`` [N, 3] is already projected to zero CoM per graph;
        ``eps_h`` [N, F] is the feature prediction (ignored when features
        are clean conditioning, which must be returned unchanged).
        """
        raise NotImplementedError

    def refine(
        self,
        predict: Predictor,
        state: GraphState,
        generator: torch.Generator | None,
        keep: Keep = _unchanged,
    ) -> GraphState:
        """Re-noise the finished sample to ``refine_time`` and denoise it, ``refine_steps`` times (stage by stage
        for a ladder of times, :func:`round_ladder`), then the same ``polish_steps`` times at ``polish_time``.

        Each round draws ``z = alpha * x + sigma * noise`` (zero-CoM noise for
        positions; features only when they are diffused) and replaces ``x`` by
        the clean prediction ``(z - sigma * eps) / alpha``; categorical classes
        stay as drawn. At a small time this
        projects the sample onto what the network considers clean at the scale
        ``sigma(refine_time)`` (about 0.03 A for the polynomial schedule at
        0.02): it sharpens local geometry such as bond lengths, which a few-step
        sampler leaves coarser than a 1000-step one, and leaves structure at
        larger scales alone. The clean prediction is a posterior mean, so a
        component of data variance ``v`` comes out with variance
        ``alpha**2 v**2 / (alpha**2 v + sigma**2)``: a slight shrinkage of
        fluctuations at or below ``sigma``.

        With ``refine_classes`` each round also re-noises the categorical channels to its time
        (:meth:`~molgen.diffusion.process.DiffusionProcess.renoise_classes`, after the coordinates' noise) and
        draws them again from the prediction (:meth:`draw_classes` to ``t = 0``, constrained decoding
        included): one more informed update of the atom types and bonds from nearly clean coordinates,
        which a few-step sampler lacks (docs/distillation.md). Many such rounds at a larger time (0.1)
        followed by polishing rounds at a small one (0.02) act as a restart sampler that corrects the
        graph (docs/performance.md). A ladder steps the rounds' time down between the two (the drug model:
        rounds at 0.3 for the chemistry, then at 0.1 for the conformation, docs/druglike.md).

        With ``polish_average`` K, the final sample is then re-noised to ``polish_time`` K times independently
        and replaced by the mean of the K clean predictions (positions, and features when diffused; the classes
        stay as they are). One round carries the noise it drew into its output along the directions the
        network leaves alone (a Gaussian component of variance ``v`` keeps ``k**2 sigma**2`` of it, with
        ``k = alpha v / (alpha**2 v + sigma**2)``); the mean of K keeps ``k**2 sigma**2 / K``. What is left is
        the network's own error, which averaging does not touch (docs/druglike.md: 1 kcal/mol of strain).

        Args:
            predict: the network bound to the batch (:meth:`DiffusionProcess.predictor`).
            state: the finished sample, zero-CoM positions.
            keep: applied to each round's noised state (at the round's time) and clean prediction
                (``None``): the inpainting replacement of a fixed part; by default nothing.
        Returns:
            The refined state (unchanged when ``refine_steps``, ``polish_steps`` and ``polish_average`` are 0).
        """
        zero = state.pos.new_tensor(0.0)
        stages = [*self.ladder, (self.polish_steps, self.polish_time)]
        for time_of_round in [time for rounds, time in stages for _ in range(rounds)]:
            t = state.pos.new_tensor(time_of_round)
            noised = self._renoise(state, t, generator)
            if self.refine_classes:
                noised = self.process.renoise_classes(noised, zero, t, generator)
            noised = keep(noised, t)
            out = predict(noised, t)
            state = self._clean_prediction(noised, out, t)
            if self.refine_classes:
                state = self.draw_classes(state, out, t, zero, generator, keep)
            state = keep(state, None)
        if self.polish_average:
            t = state.pos.new_tensor(self.polish_time)
            cleans = []
            for _ in range(self.polish_average):
                noised = keep(self._renoise(state, t, generator), t)
                cleans.append(self._clean_prediction(noised, predict(noised, t), t))
            pos = torch.stack([clean.pos for clean in cleans]).mean(0)
            h = torch.stack([clean.h for clean in cleans]).mean(0) if self.diffusion.diffuse_features else state.h
            state = keep(state.replace(pos=pos, h=h), None)
        return state

    def _renoise(self, state: GraphState, t: Tensor, generator: torch.Generator | None) -> GraphState:
        """``state`` forward-noised to time ``t``: ``alpha * x + sigma * noise`` for the positions (zero-CoM
        noise) and for the features when they are diffused; classes untouched."""
        diffusion = self.diffusion
        alpha, sigma = diffusion.schedule.alpha(t), diffusion.schedule.sigma(t)
        pos_t = alpha * state.pos + sigma * zero_com_noise(state.pos, state.batch, generator)
        h = state.h
        if diffusion.diffuse_features:
            h = alpha * h + sigma * torch.randn(h.shape, generator=generator, device=h.device, dtype=h.dtype)
        return state.replace(pos=pos_t, h=h)

    def _clean_prediction(self, state: GraphState, out: Prediction, t: Tensor) -> GraphState:
        """``state`` at time ``t`` with positions (and features, when they are diffused) replaced by
        their clean prediction from the network's output ``out``; clean conditioning features and classes are kept."""
        diffusion = self.diffusion
        pos = remove_mean(diffusion.predict_clean(state.pos, out.eps_pos, t), state.batch, state.num_graphs)
        h = diffusion.predict_clean(state.h, out.eps_h, t) if diffusion.diffuse_features else state.h
        return state.replace(pos=pos, h=h)

    def draw_classes(
        self,
        state: GraphState,
        out: Prediction,
        t: Tensor,
        s: Tensor,
        generator: torch.Generator | None,
        keep: Keep,
    ) -> GraphState:
        """The process's discrete step from ``t`` to ``s`` and the fixed part put back (``keep``); at
        ``s = 0`` under ``constrained_decoding``, the final pair classes repaired by the domain's
        constraint, the fixed part's pairs untouched."""
        state = keep(self.process.discrete_step(state, out, t, s, generator, self.class_temperature), s)
        if self._constraint is not None and bool((s == 0).all()):
            state = self.process.constrain_classes(state, out, self._constraint, self.class_temperature, self._frozen)
        return state

    def finish(
        self, predict: Predictor, state: GraphState, t: Tensor, generator: torch.Generator | None, keep: Keep
    ) -> GraphState:
        """The sample from the loop's last state, at the grid's last time ``t`` (one network call): its clean
        prediction. At ``t = 0`` the categorical channels were drawn by the last step and are kept; ``keep``
        serves a finish that draws them itself (:meth:`draw_classes`, as the consistency sampler's)."""
        return self._clean_prediction(state, predict(state, t), t)

    @torch.inference_mode()
    def sample(
        self,
        denoiser: torch.nn.Module,
        num_nodes: Tensor,
        num_features: int = 0,
        *,
        condition: Tensor | None = None,
        node_labels: Tensor | None = None,
        known: KnownPart | None = None,
        graph_condition: GraphCondition | None = None,
        class_constraint: ClassConstraint | None = None,
        energy_guidance: EnergyGuidance | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        progress: bool = False,
        position_dims: int = 3,
    ) -> GraphState:
        """Generate a batch of graphs.

        Args:
            denoiser: the process's network (in eval mode). A self-conditioned one gets
                the previous call's clean estimate at every call after the first
                (:class:`~molgen.diffusion.self_conditioning.EstimateFeedback`).
            num_nodes: [B] long, node count of each graph.
            num_features: F, the width of diffused continuous features.
            condition: [N, F] clean features when the process conditions on them
                (e.g. backbone atom types); else None.
            node_labels: [N] long labels the network is conditioned on, never noised (-1: not given; backbones
                in internal coordinates: secondary structure, :attr:`GraphState.node_labels`); or None.
            known: a fixed part to keep (inpainting, :mod:`molgen.diffusion.inpainting`): after the
                prior, every step and every clean prediction the process replaces it by its true
                value noised to that time; the sample ends with it exact and in its given frame.
            graph_condition: target properties of each graph for a conditional model
                (:mod:`molgen.diffusion.conditioning`; ``[B, P]``), or None (unconditional).
            class_constraint: the domain's rule on the final pair classes, applied when the sampler
                was built with ``constrained_decoding`` (which refuses to run without one).
            energy_guidance: steer every call towards ``graph_condition`` with a regressor of the
                properties (:mod:`molgen.diffusion.energy_guidance`), after classifier-free guidance.
            generator: seeds every random draw (on ``device``), in this order: the prior
                positions, the process's prior, then per step the sampler's draws and the
                process's discrete draws, then the refinement noise.
            position_dims: dimensions of each node's coordinates: 3, or 0 for a model without coordinates
                (``h`` holds everything it generates, e.g. a chain's internal coordinates).
        Returns:
            The sample: positions with zero CoM per graph, features, classes.
        """
        process = self.process
        if process.conditions_on_features != (condition is not None):
            needs = "conditions on clean features: pass the condition" if condition is None else "takes no condition"
            raise ValueError(f"this diffusion {needs}")
        if self.constrained_decoding and class_constraint is None:
            raise ValueError("constrained_decoding needs the domain's class constraint; this model's domain has none")
        num_nodes = num_nodes.to(device)
        batch = node_batch(num_nodes)
        n_total = int(num_nodes.sum())
        pos = zero_com_noise(torch.empty(n_total, position_dims, device=device, dtype=dtype), batch, generator)
        if condition is None:
            h = torch.zeros(n_total, num_features, device=device, dtype=dtype)
        else:
            h = condition.to(device=device, dtype=dtype)
        state = process.prior(GraphState(pos, h, batch, num_nodes.numel()), generator)
        if graph_condition is not None:
            state = state.replace(condition=graph_condition.to(device, dtype))
        if node_labels is not None:
            state = state.replace(node_labels=node_labels.to(device))
        if self.guidance:
            if graph_condition is None:
                raise ValueError("guidance needs a condition: sample a conditional model with target properties")
            denoiser = GuidedDenoiser(denoiser, self.guidance)
        if energy_guidance is not None:
            if graph_condition is None:
                raise ValueError("energy guidance needs a condition: sample a conditional model with target properties")
            denoiser = process.guide_with_energy(denoiser, energy_guidance)
        grid = self.timesteps(device, dtype)

        def keep(state: GraphState, t: Tensor | None) -> GraphState:
            return state if known is None else process.inpaint(state, known, t, generator)

        self._constraint = class_constraint if self.constrained_decoding else None
        self._frozen = None
        if known is not None:
            known = known.to(device, dtype)
            known.check(state)
            self._frozen = known.pair_mask
            if is_fixed_part_aware(denoiser):  # a network trained with fixed parts also sees the known part itself
                state = state.replace(known=known)
            state = keep(state, grid[0])
        predict = process.predictor(denoiser, state)
        self.reset()
        if self.resample > 1 and known is None:
            raise ValueError("resample applies only when sampling with a fixed part")
        for i in tqdm(range(len(grid) - 1), desc="sampling", disable=not progress, leave=False):
            t, s = grid[i], grid[i + 1]
            memory = self.memory()
            for jump in range(self.resample):
                if jump:  # back to time t (RePaint): the fixed and generated parts get another step to agree
                    state = keep(process.renoise(state, s, t, generator), t)
                    self.recall(memory)
                out = predict(state, t)
                pos, h = self.step(state.pos, state.h, out.eps_pos, out.eps_h, t, s, state.batch, generator)
                state = self.draw_classes(state.replace(pos=pos, h=h), out, t, s, generator, keep)

        if self.final_call:
            state = keep(self.finish(predict, state, grid[-1], generator, keep), None)
        state = self.refine(predict, state, generator, keep)
        return state if known is None else known.place(state)


@SAMPLERS.register("ancestral")
@SAMPLERS.register("ddpm")
class AncestralSampler(Sampler):
    """Ancestral (DDPM) sampling: draw ``z_s ~ p(z_s | z_t)`` at every step.

    Args:
        noise_scale: factor in [0, 1] on the standard deviation of the noise
            drawn at each step, positions and diffused features alike (default 1,
            the exact posterior). Below 1 this is the low-temperature sampling of
            protein backbone models (FrameDiff's and Genie's noise scale): each
            step moves closer to the network's mean, trading diversity and size
            for fewer chain breaks on the backbone model (docs/backbones.md). 0 is
            the deterministic chain of posterior means.
        grid: time grid (default ``time``).
    """

    def __init__(
        self,
        process: DiffusionProcess,
        num_steps: int,
        noise_scale: float = 1.0,
        grid: str | None = None,
        **shared,
    ) -> None:
        super().__init__(process, num_steps, grid, **shared)
        self.noise_scale = _unit_interval("noise_scale", noise_scale)

    def step(self, pos_t, h_t, eps_pos, eps_h, t, s, batch, generator):
        diffusion = self.diffusion
        noise_pos = self.noise_scale * zero_com_noise(pos_t, batch, generator)
        pos_s = diffusion.posterior_step(pos_t, eps_pos, t, s, noise_pos)
        if not diffusion.diffuse_features:
            return pos_s, h_t
        noise_h = self.noise_scale * torch.randn(h_t.shape, generator=generator, device=h_t.device, dtype=h_t.dtype)
        return pos_s, diffusion.posterior_step(h_t, eps_h, t, s, noise_h)


@SAMPLERS.register("ddim")
class DDIMSampler(Sampler):
    """DDIM (Song, Meng & Ermon 2021): denoise to ``x0_hat``, then re-noise to time ``s``.

    With ``x0_hat = (z_t - sigma_t * eps) / alpha_t`` and the ancestral
    standard deviation ``c = sigma_s / sigma_t * sqrt(1 - alpha_t**2 / alpha_s**2)``::

        z_s = alpha_s * x0_hat + sqrt(sigma_s**2 - (eta * c)**2) * eps + eta * c * noise

    ``eta = 0`` is the deterministic first-order solver of the
    probability-flow ODE (given the prior draw, no randomness is used);
    ``eta = 1`` has exactly the ancestral step's variance and, drawing its
    noise in the same order, reproduces :class:`AncestralSampler`.
    Position noise is projected to zero CoM, so positions stay in that subspace.

    Args:
        eta: noise scale in [0, 1] (default 0).
        grid: time grid (default ``time``).
    """

    def __init__(
        self, process: DiffusionProcess, num_steps: int, eta: float = 0.0, grid: str | None = None, **shared
    ) -> None:
        super().__init__(process, num_steps, grid, **shared)
        self.eta = _unit_interval("eta", eta)

    def _update(self, z_t: Tensor, eps: Tensor, t: Tensor, s: Tensor, noise: Tensor | None) -> Tensor:
        schedule = self.diffusion.schedule
        alpha_t, sigma_t = schedule.alpha(t), schedule.sigma(t)
        alpha_s, sigma_s = schedule.alpha(s), schedule.sigma(s)
        x0 = self.diffusion.predict_clean(z_t, eps, t)
        if noise is None:
            return alpha_s * x0 + sigma_s * eps
        # sigma_t**2 - (alpha_t/alpha_s)**2 * sigma_s**2 == 1 - (alpha_t/alpha_s)**2 for a VP process
        std = self.eta * sigma_s / sigma_t * (sigma_t**2 - (alpha_t / alpha_s) ** 2 * sigma_s**2).clamp(min=0.0).sqrt()
        return alpha_s * x0 + (sigma_s**2 - std**2).clamp(min=0.0).sqrt() * eps + std * noise

    def step(self, pos_t, h_t, eps_pos, eps_h, t, s, batch, generator):
        # eta = 0 draws nothing; otherwise positions then features, in AncestralSampler's order
        noise_pos = zero_com_noise(pos_t, batch, generator) if self.eta > 0 else None
        pos_s = self._update(pos_t, eps_pos, t, s, noise_pos)
        if not self.diffusion.diffuse_features:
            return pos_s, h_t
        noise_h = None
        if self.eta > 0:
            noise_h = torch.randn(h_t.shape, generator=generator, device=h_t.device, dtype=h_t.dtype)
        return pos_s, self._update(h_t, eps_h, t, s, noise_h)


@SAMPLERS.register("dpm-solver")
class DPMSolverSampler(Sampler):
    """DPM-Solver++(2M) (Lu et al. 2022): second-order multistep ODE solver in the data prediction.

    In the half log-SNR ``lambda = log(alpha / sigma)`` the probability-flow
    ODE integrates exactly up to the data prediction ``x0_hat``. A step
    from ``t`` to ``s`` with ``dlambda = lambda_s - lambda_t > 0``::

        z_s = sigma_s / sigma_t * z_t - alpha_s * expm1(-dlambda) * D

    First step: ``D = x0_hat(t)`` (first order, DDIM). Later steps
    extrapolate linearly in ``lambda`` through the previous step's
    prediction ``x0_prev`` at ``t_prev``, with ``r = (lambda_t - lambda_prev) / dlambda``::

        D = x0_hat(t) + (x0_hat(t) - x0_prev) / (2 r)

    With ``eta = 0`` (default) this is deterministic given the prior draw.
    ``eta > 0`` gives the stochastic SDE-DPM-Solver++(2M) of the same paper,
    which injects fresh noise at every step as ancestral sampling does (noise
    corrects errors of an imperfect denoiser) while keeping the second-order
    data prediction::

        z_s = sigma_s / sigma_t * exp(-eta dlambda) * z_t
              - alpha_s * expm1(-(1 + eta) dlambda) * D
              + sigma_s * sqrt(-expm1(-2 eta dlambda)) * noise

    At ``eta = 1`` a first-order step (``D = x0_hat``) is exactly the
    ancestral posterior step. Positions stay in the zero-CoM subspace (every
    term is a combination of zero-CoM states, predictions and noise); clean
    conditioning features are passed through unchanged.

    Args:
        eta: noise scale in [0, 1] (default 0: the ODE solver).
        grid: time grid (default ``logsnr``: uniform steps in ``lambda``,
            the variable the solver's error is expanded in).
    """

    default_grid = "logsnr"

    def __init__(
        self, process: DiffusionProcess, num_steps: int, eta: float = 0.0, grid: str | None = None, **shared
    ) -> None:
        super().__init__(process, num_steps, grid, **shared)
        self.eta = _unit_interval("eta", eta)
        self.reset()

    def reset(self) -> None:
        """Forget the previous step's ``(lambda_t, x0_pos, x0_h)``."""
        self._previous: tuple[Tensor, Tensor, Tensor | None] | None = None

    def memory(self) -> object:
        return self._previous

    def recall(self, memory: object) -> None:
        self._previous = memory

    def step(self, pos_t, h_t, eps_pos, eps_h, t, s, batch, generator):
        diffusion, schedule = self.diffusion, self.diffusion.schedule
        lambda_t, lambda_s = half_log_snr(schedule, t), half_log_snr(schedule, s)
        dlambda = lambda_s - lambda_t
        x0_pos = diffusion.predict_clean(pos_t, eps_pos, t)
        x0_h = diffusion.predict_clean(h_t, eps_h, t) if diffusion.diffuse_features else None

        d_pos, d_h = x0_pos, x0_h
        if self._previous is not None:
            lambda_prev, prev_pos, prev_h = self._previous
            weight = dlambda / (2.0 * (lambda_t - lambda_prev))  # 1 / (2 r)
            d_pos = x0_pos + weight * (x0_pos - prev_pos)
            if x0_h is not None:
                d_h = x0_h + weight * (x0_h - prev_h)
        self._previous = (lambda_t, x0_pos, x0_h)

        decay = schedule.sigma(s) / schedule.sigma(t) * torch.exp(-self.eta * dlambda)
        gain = -schedule.alpha(s) * torch.expm1(-(1.0 + self.eta) * dlambda)
        pos_s = decay * pos_t + gain * d_pos
        if self.eta > 0:  # positions then features, in AncestralSampler's order
            noise_std = schedule.sigma(s) * (-torch.expm1(-2.0 * self.eta * dlambda)).sqrt()
            pos_s = pos_s + noise_std * zero_com_noise(pos_t, batch, generator)
        if d_h is None:
            return pos_s, h_t
        h_s = decay * h_t + gain * d_h
        if self.eta > 0:
            h_s = h_s + noise_std * torch.randn(h_t.shape, generator=generator, device=h_t.device, dtype=h_t.dtype)
        return pos_s, h_s


@SAMPLERS.register("consistency")
class ConsistencySampler(Sampler):
    """Multistep consistency sampling (Song et al. 2023, Algorithm 1): ``num_steps`` network calls in all.

    Each call predicts the clean sample ``x0_hat = (z_t - sigma_t * eps) / alpha_t``, which is re-noised
    to the next grid time with fresh noise::

        z_s = alpha_s * x0_hat + sigma_s * noise

    and the last call's prediction is the sample. The grid is the first ``num_steps`` times of the
    parent grid of ``num_steps`` steps (``time``: 1, 0.75, 0.5, 0.25 for four calls; the final 0 is
    dropped), so ``--steps 1`` is the one-step map from the prior. Categorical channels take the
    process's ancestral step between the calls (the posterior given the predicted clean classes) and,
    after the last call, draw from the predicted clean classes themselves (the posterior at ``s = 0``).

    Meant for a consistency-distilled model (:mod:`molgen.diffusion.distillation`), whose clean
    prediction from any time is the end of its teacher's ODE trajectory; on an ordinary diffusion
    model a clean prediction from high noise is the blurred posterior mean, and few calls give poor
    samples. Position noise is projected to zero CoM; clean conditioning features pass unchanged.

    Args:
        grid: time grid (default ``time``, as the distillation's).
    """

    def __init__(self, process: DiffusionProcess, num_steps: int, **options) -> None:
        super().__init__(process, num_steps, **options)
        if not self.final_call:
            raise ValueError(
                "final_call=false does not apply to the consistency sampler: its last call is its last step"
            )

    def timesteps(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Tensor:
        """The times of the ``num_steps`` calls, from exactly 1 down, [num_steps]."""
        return super().timesteps(device, dtype)[:-1]

    def step(self, pos_t, h_t, eps_pos, eps_h, t, s, batch, generator):
        # positions then features, in AncestralSampler's order
        diffusion, schedule = self.diffusion, self.diffusion.schedule
        alpha_s, sigma_s = schedule.alpha(s), schedule.sigma(s)
        pos_s = alpha_s * diffusion.predict_clean(pos_t, eps_pos, t) + sigma_s * zero_com_noise(pos_t, batch, generator)
        if not diffusion.diffuse_features:
            return pos_s, h_t
        noise_h = torch.randn(h_t.shape, generator=generator, device=h_t.device, dtype=h_t.dtype)
        return pos_s, alpha_s * diffusion.predict_clean(h_t, eps_h, t) + sigma_s * noise_h

    def finish(
        self, predict: Predictor, state: GraphState, t: Tensor, generator: torch.Generator | None, keep: Keep
    ) -> GraphState:
        """The clean prediction at the last call's time ``t > 0``, categorical channels drawn from their
        predicted clean classes (the process's step from ``t`` to 0)."""
        out = predict(state, t)
        return self.draw_classes(self._clean_prediction(state, out, t), out, t, torch.zeros_like(t), generator, keep)


def sampler_names() -> list[str]:
    """Names :func:`make_sampler` accepts, sorted."""
    return SAMPLERS.names()


def sampler_options(name: str) -> list[str]:
    """The options :func:`make_sampler` accepts for sampler ``name`` (e.g. ``["eta", "grid", "refine_steps", ...]``):
    the sampler's own, then those every sampler inherits from :class:`Sampler`."""
    own = [p.name for p in inspect.signature(SAMPLERS[name]).parameters.values() if p.kind is not p.VAR_KEYWORD]
    shared = [p for p in inspect.signature(Sampler).parameters if p not in own]
    return [p for p in own + shared if p not in ("process", "num_steps")]


def make_sampler(name: str, process: DiffusionProcess, num_steps: int, **options) -> Sampler:
    """Build a sampler by name (see the module docstring); ``options`` go to its constructor.

    Raises:
        ValueError: unknown name, or an option the sampler does not take
            (the message lists the valid choices).
    """
    valid = sampler_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for sampler {name!r}; valid options: {valid}")
    return SAMPLERS[name](process, num_steps, **options)
