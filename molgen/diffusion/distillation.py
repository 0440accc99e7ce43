"""Consistency distillation (Song et al. 2023; LCM, Luo et al. 2023): a few-step student from a many-step teacher.

A frozen teacher defines the probability-flow ODE of its process; its deterministic solver (one
DDIM step, :class:`~molgen.diffusion.samplers.DDIMSampler` with ``eta = 0``, the first-order
DPM-Solver) moves a noisy state from one time of a grid of ``solver_steps`` intervals to the next.
The student, a network of the teacher's architecture that starts from the teacher's weights, is
trained so that its clean prediction ``f(z_t, t) = (z_t - sigma_t * eps_hat) / alpha_t`` is the
same at both ends of such a step: it then maps every point of a teacher trajectory to the
trajectory's end (the clean prediction at ``t = 0``, where ``f`` is the identity up to the
schedule's ``sigma_0``), and :class:`~molgen.diffusion.samplers.ConsistencySampler` needs one
to four calls. One training step, for graphs with clean data ``x`` and a grid interval
``s = t_n < t = t_{n+1}`` drawn uniformly per graph::

    z_s ~ q(z_s | x),  z_t ~ q(z_t | z_s)           every channel, the classes as a coupled chain
    z_s' = teacher's DDIM step of z_t to s          the Gaussian channels; classes stay z_s's
    x*   = f_target(z_s', s)                        target network, no gradient
    loss = w_pos * lambda(t) * |f_student(z_t, t) - x*|^2 / dof  +  sum_c w_c * KL(teacher_c(z_t) || student_c(z_t))

The target network is an exponential moving average of the student (decay ``target_decay``,
updated in :meth:`ConsistencyDistillation.after_optimizer_step`), and starts as a copy of it.

The distance is measured on the noise scale: with ``eps* = (z_t - alpha_t x*) / sigma_t``,
``|eps_hat - eps*|^2 = SNR(t) |f_student - x*|^2``, so ``lambda(t) = max(SNR(t), snr_floor) / SNR(t)``
on the noise error is the clean-prediction distance weighted by ``max(SNR(t), snr_floor)``.
``snr_floor = 0`` (the default) is the teacher's own eps-MSE weighting, well conditioned for an
eps-predicting network at every ``t``. ``1`` is Salimans & Ho's truncated SNR, which gives the
high-noise calls of a few-step sampler the weight of their clean-prediction error; for an eps
network it weighs the noise error by ``1 / SNR(t)``, 1e5 at ``t = 1`` of the polynomial schedule,
and that interval then dominates the loss (docs/distillation.md).

Categorical channels (the joint model's atom types, charges and bonds) have no ODE: their
forward chain is drawn jointly for the two times (``z_s`` then ``q(z_t | z_s)``, the pair the
sampler sees), the positions' ODE is distilled conditioned on them, and each channel's
predicted clean classes are trained by cross-entropy against the teacher's class probabilities
at the same input, reported as the KL divergence (the cross-entropy less the teacher's entropy,
0 while the student agrees; :meth:`~molgen.diffusion.process.DiffusionProcess.class_loss`);
sampling draws them with the process's ancestral step between calls.

Nothing here knows about chemistry: the process's hooks noise, predict and score every channel.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Generator, Tensor

from molgen.diffusion.gaussian import position_dof
from molgen.diffusion.joint import POSITIONS
from molgen.diffusion.process import DiffusionProcess, GraphState, per_item
from molgen.diffusion.samplers import DDIMSampler
from molgen.graph_batch import graph_sizes, graph_sum

__all__ = ["CONSISTENCY", "PROGRESSIVE", "ConsistencyDistillation", "ProgressiveDistillation", "clean_prediction_error"]

CONSISTENCY = "consistency"
"""Name of the consistency term in the loss components (weighted as the process's positions)."""
PROGRESSIVE = "progressive"
"""Name of the progressive-distillation term in the loss components (weighted as the process's positions)."""
CLASS_OBJECTIVES = ("match", "transition")
"""Values of :class:`ProgressiveDistillation`'s ``classes``."""


def clean_prediction_error(
    gaussian: Any, noisy: GraphState, out: Any, pos: Tensor, h: Tensor | None, t: Tensor, snr_floor: float
) -> Tensor:
    """Per graph ``[B]``: the student's noise error against ``eps* = (z_t - alpha_t x*) / sigma_t`` for the
    clean targets ``x*`` (``pos`` [N, 3], and ``h`` [N, F] when features are diffused) at times ``t`` [B],
    per degree of freedom, weighted ``max(SNR(t), snr_floor) / SNR(t)``: the clean-prediction distance
    weighted by ``max(SNR(t), snr_floor)`` (see the module docstring)."""
    batch, num_graphs, schedule = noisy.batch, noisy.num_graphs, gaussian.schedule
    t_node = per_item(t, batch)[:, None]
    alpha_t, sigma_t = schedule.alpha(t_node), schedule.sigma(t_node)
    channels = [(noisy.pos, pos, out.eps_pos)]
    num_nodes = graph_sizes(batch, num_graphs)
    dof = position_dof(num_nodes, pos.shape[1])
    if gaussian.diffuse_features:
        channels.append((noisy.h, h, out.eps_h))
        dof = dof + num_nodes * noisy.h.shape[1]
    sq_err = sum(((eps - (z_t - alpha_t * target) / sigma_t) ** 2).sum(1) for z_t, target, eps in channels)
    weight = (snr_floor * torch.exp(-schedule.log_snr(t))).clamp(min=1.0)
    return weight * graph_sum(sq_err, batch, num_graphs) / dof.clamp(min=1).to(sq_err.dtype)


def _with_classes(
    process: DiffusionProcess, name: str, term: Tensor, noisy: GraphState, out: Any, teacher_out: Any
) -> tuple[Tensor, dict[str, Tensor]]:
    """The weighted total ``[B]`` of the positions' ``term`` and each categorical channel's divergence from the
    teacher's predicted classes at the same input, and the components."""
    return _weighted(process, name, term, process.class_loss(noisy, out, teacher_out))


def _weighted(
    process: DiffusionProcess, name: str, term: Tensor, classes: dict[str, Tensor]
) -> tuple[Tensor, dict[str, Tensor]]:
    """The total ``[B]`` of the positions' ``term`` and the ``classes`` terms under the process's loss weights,
    and the components."""
    weights = process.loss_weights
    total = weights.get(POSITIONS, 1.0) * term
    total = total + sum(weights.get(channel, 1.0) * value for channel, value in classes.items())
    return total, {name: term, **classes}


class _TeacherDistillation(DiffusionProcess):
    """What both distillations share: the teacher's process, the frozen teacher, the DDIM solver on its
    grid, the ``snr_floor`` of :func:`clean_prediction_error`, and the data entry points of the process."""

    def __init__(
        self, process: DiffusionProcess, teacher: torch.nn.Module, solver: DDIMSampler, snr_floor: float
    ) -> None:
        super().__init__()
        if not snr_floor >= 0.0:
            raise ValueError(f"distill.snr_floor must be >= 0, got {snr_floor}")
        self.process = process
        self.teacher = teacher.requires_grad_(False)
        self.solver = solver
        self.snr_floor = float(snr_floor)

    @property
    def conditions_on_features(self) -> bool:
        return self.process.conditions_on_features

    def state_from_batch(self, data: Any) -> GraphState:
        return self.process.state_from_batch(data)


class ConsistencyDistillation(_TeacherDistillation):
    """The training objective of a consistency-distilled student of ``process`` (see the module docstring).

    Only the training entry points are implemented (:meth:`state_from_batch`, :meth:`loss`,
    :meth:`after_optimizer_step`): the student samples as a network of ``process`` itself.

    Args:
        process: the teacher's (and student's) process.
        student: the network being trained (the teacher's weights at the start); the target network is
            a frozen copy of it.
        teacher: the teacher's network, frozen here.
        solver_steps: intervals of the teacher's ODE grid (each training pair is one DDIM step).
        grid: that grid's spacing, ``time`` or ``logsnr`` (:meth:`Sampler.timesteps`).
        target_decay: EMA decay of the target network per optimizer step, in [0, 1) (0: the student itself).
        snr_floor: ``>= 0``; the clean-prediction distance is weighted by ``max(SNR(t), snr_floor)``.
    """

    def __init__(
        self,
        process: DiffusionProcess,
        student: torch.nn.Module,
        teacher: torch.nn.Module,
        solver_steps: int = 50,
        grid: str = "time",
        target_decay: float = 0.95,
        snr_floor: float = 0.0,
    ) -> None:
        if not 0.0 <= target_decay < 1.0:
            raise ValueError(f"distill.target_decay must be in [0, 1), got {target_decay}")
        super().__init__(process, teacher, DDIMSampler(process, solver_steps, grid=grid), snr_floor)
        self.target = copy.deepcopy(student).requires_grad_(False)
        self.target_decay = float(target_decay)

    def times(
        self, num_graphs: int, like: Tensor, t: Tensor | None, generator: Generator | None
    ) -> tuple[Tensor, Tensor]:
        """``(s, t)``, each ``[B]``: both ends of one solver interval per graph, ``s < t``. Intervals are
        drawn uniformly (one draw per graph), or hold the given student times ``t`` [B], each moved
        to the nearest interval start."""
        grid = self.solver.timesteps(like.device, like.dtype)
        if t is None:
            index = torch.randint(len(grid) - 1, (num_graphs,), generator=generator, device=like.device)
        else:
            index = (grid[:-1, None] - t[None, :]).abs().argmin(dim=0)
        return grid[index + 1], grid[index]

    def loss(
        self, denoiser: torch.nn.Module, clean: GraphState, t: Tensor | None = None, generator: Generator | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Weighted distillation loss per graph ``[B]``, and its unweighted components: ``consistency`` and
        one KL divergence per categorical channel (see the module docstring).

        Draws, in order: the intervals (unless ``t``, the student's times [B], is given), the state at
        ``s`` (:meth:`~DiffusionProcess.noise`), then its forward step to ``t``
        (:meth:`~DiffusionProcess.renoise`).
        """
        process, gaussian = self.process, self.process.gaussian
        batch, num_graphs = clean.batch, clean.num_graphs
        s, t = self.times(num_graphs, clean.pos, t, generator)
        noisy_s = process.noise(clean, s, generator)
        noisy_t = process.renoise(noisy_s, s, t, generator)
        s_node, t_node = per_item(s, batch)[:, None], per_item(t, batch)[:, None]
        with torch.no_grad():
            teacher_out = process.predictor(self.teacher, noisy_t)(noisy_t, t)
            pos_s, h_s = self.solver.step(
                noisy_t.pos, noisy_t.h, teacher_out.eps_pos, teacher_out.eps_h, t_node, s_node, batch, None
            )
            stepped = noisy_s.replace(pos=pos_s, h=h_s)
            target_out = process.predictor(self.target, stepped)(stepped, s)
        student_out = process.predictor(denoiser, noisy_t)(noisy_t, t)

        clean_pos = gaussian.predict_clean(stepped.pos, target_out.eps_pos, s_node)
        clean_h = gaussian.predict_clean(stepped.h, target_out.eps_h, s_node) if gaussian.diffuse_features else None
        consistency = clean_prediction_error(gaussian, noisy_t, student_out, clean_pos, clean_h, t, self.snr_floor)
        return _with_classes(process, CONSISTENCY, consistency, noisy_t, student_out, teacher_out)

    @torch.no_grad()
    def after_optimizer_step(self, denoiser: torch.nn.Module) -> None:
        """Move the target network toward the student: ``target += (1 - target_decay) (student - target)``."""
        torch._foreach_lerp_(list(self.target.parameters()), list(denoiser.parameters()), 1.0 - self.target_decay)


class ProgressiveDistillation(_TeacherDistillation):
    """One round of progressive distillation (Salimans & Ho 2022): a student that takes one DDIM step where
    its teacher takes ``teacher_steps`` (two in the paper; more makes one round of several halvings).

    On the student's grid of ``student_steps`` intervals (``grid`` spacing), one interval ``s < t`` per
    graph, split into ``teacher_steps`` intervals of the teacher's finer grid::

        z_t ~ q(z_t | x)                                 every channel
        z_s = the teacher's DDIM steps t -> ... -> s     the Gaussian channels; classes stay z_t's
        x~ = (z_s - (sigma_s / sigma_t) z_t) / (alpha_s - (sigma_s / sigma_t) alpha_t)
        loss = w_pos * lambda(t) * |f_student(z_t, t) - x~|^2 / dof + sum_c w_c * KL(teacher_c(z_t) || student_c(z_t))

    ``x~`` is the clean prediction whose single DDIM step from ``t`` lands where the teacher's steps do;
    ``lambda`` is the weighting of :func:`clean_prediction_error` (``snr_floor``).

    ``classes="transition"`` distils the categorical channels too: the teacher's steps draw them as its
    sampler does (:meth:`~molgen.diffusion.process.DiffusionProcess.discrete_step` at ``class_temperature``),
    so that its later steps see them, and the class terms become the negative log-likelihood of the classes
    the teacher reached at ``s`` under the student's one reverse step from ``t``
    (:meth:`~molgen.diffusion.process.DiffusionProcess.transition_loss`, same temperature): a sampler with
    fewer steps updates the classes fewer times, and each update must do what the teacher's several did
    (docs/distillation.md measures how much the number of class updates costs). The student samples with
    ``--sampler ddim --steps student_steps`` (``eta`` 0); the next round distils it in turn (``teacher=`` its
    checkpoint). Only the training entry points are implemented.

    Args:
        process: the teacher's (and student's) process.
        student: the network being trained (the teacher's weights at the start).
        teacher: the teacher's network, frozen here.
        solver_steps: the student's steps (the teacher takes ``teacher_steps`` times as many).
        grid: the grids' spacing, ``time`` or ``logsnr``.
        snr_floor: ``>= 0``; see :func:`clean_prediction_error`.
        teacher_steps: the teacher's DDIM steps per student step, ``>= 2``.
        classes: ``match`` (the student's clean-class prediction matches the teacher's at the same input, the
            teacher's steps keep the classes of ``z_t``) or ``transition`` (above).
        class_temperature: ``transition``: the temperature of the teacher's class draws and of the student's
            step, the sampler's ``class_temperature``.
    """

    def __init__(
        self,
        process: DiffusionProcess,
        student: torch.nn.Module,
        teacher: torch.nn.Module,
        solver_steps: int = 25,
        grid: str = "time",
        snr_floor: float = 0.0,
        teacher_steps: int = 2,
        classes: str = "match",
        class_temperature: float = 1.0,
    ) -> None:
        if not (isinstance(teacher_steps, int) and teacher_steps >= 2):
            raise ValueError(f"distill.teacher_steps must be an integer >= 2, got {teacher_steps!r}")
        if classes not in CLASS_OBJECTIVES:
            raise ValueError(f"distill.classes must be one of {list(CLASS_OBJECTIVES)}, got {classes!r}")
        if not class_temperature > 0:
            raise ValueError(f"distill.class_temperature must be a positive number, got {class_temperature!r}")
        super().__init__(process, teacher, DDIMSampler(process, teacher_steps * solver_steps, grid=grid), snr_floor)
        self.teacher_steps = teacher_steps
        self.classes = classes
        self.class_temperature = float(class_temperature)

    def loss(
        self, denoiser: torch.nn.Module, clean: GraphState, t: Tensor | None = None, generator: Generator | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Weighted loss per graph ``[B]`` and its components: ``progressive`` and one KL divergence per
        categorical channel. Draws the intervals (unless ``t`` [B] is given: each moved to the nearest student
        time), then the state at ``t``."""
        process, gaussian, k = self.process, self.process.gaussian, self.teacher_steps
        batch, num_graphs = clean.batch, clean.num_graphs
        grid = self.solver.timesteps(clean.pos.device, clean.pos.dtype)  # the teacher's: every k-th is the student's
        if t is None:
            index = k * torch.randint((len(grid) - 1) // k, (num_graphs,), generator=generator, device=grid.device)
        else:
            index = k * (grid[:-1:k, None] - t[None, :]).abs().argmin(dim=0)
        t, s = grid[index], grid[index + k]
        noisy_t = process.noise(clean, t, generator)
        with torch.no_grad():
            predict = process.predictor(self.teacher, noisy_t)
            teacher_out = predict(noisy_t, t)
            out, state, transition = teacher_out, noisy_t, self.classes == "transition"
            for j in range(k):
                start, end = grid[index + j], grid[index + j + 1]
                if j:
                    out = predict(state, start)
                pos, h = self.solver.step(
                    state.pos, state.h, out.eps_pos, out.eps_h,
                    per_item(start, batch)[:, None], per_item(end, batch)[:, None], batch, None,
                )  # fmt: skip
                state = state.replace(pos=pos, h=h)
                if transition:
                    state = process.discrete_step(state, out, start, end, generator, self.class_temperature)
            schedule, t_node, s_node = gaussian.schedule, per_item(t, batch)[:, None], per_item(s, batch)[:, None]
            ratio = schedule.sigma(s_node) / schedule.sigma(t_node)
            denominator = schedule.alpha(s_node) - ratio * schedule.alpha(t_node)
            target_pos = (state.pos - ratio * noisy_t.pos) / denominator
            target_h = (state.h - ratio * noisy_t.h) / denominator if gaussian.diffuse_features else None
        student_out = process.predictor(denoiser, noisy_t)(noisy_t, t)
        term = clean_prediction_error(gaussian, noisy_t, student_out, target_pos, target_h, t, self.snr_floor)
        if not transition:
            return _with_classes(process, PROGRESSIVE, term, noisy_t, student_out, teacher_out)
        classes = process.transition_loss(noisy_t, student_out, t, s, state, self.class_temperature)
        return _weighted(process, PROGRESSIVE, term, classes)
