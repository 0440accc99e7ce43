"""Consistency distillation and the consistency sampler (molgen.diffusion.distillation, samplers).

On the Gaussian toy the teacher is the exact denoiser, so its DDIM trajectories are affine maps
and a student whose noise prediction is affine per grid time can represent the distilled map
exactly: a short distillation must reproduce the teacher's ODE endpoint from one call.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from molgen.checkpoint import load_checkpoint
from molgen.diffusion import ConsistencySampler, GaussianDiffusion, PolynomialSchedule, make_sampler
from molgen.diffusion.categorical import CategoricalDiffusion
from molgen.diffusion.distillation import CONSISTENCY, PROGRESSIVE, ConsistencyDistillation, ProgressiveDistillation
from molgen.diffusion.process import GraphState, Prediction
from molgen.graph_batch import graph_mean, node_batch, remove_mean
from molgen.sampling import SamplingConfig, generate
from tests.diffusion.test_samplers import H_MEAN, H_STD, POS_STD, gaussian_oracle
from tests.helpers import save_tiny_checkpoint
from tests.joint_helpers import save_tiny_joint_checkpoint, tiny_joint_module, tiny_molecules

SCHEDULE = PolynomialSchedule()


class Oracle(torch.nn.Module):
    """The toy's exact denoiser as a module (the teacher)."""

    def forward(self, pos, h, t, batch):
        return gaussian_oracle(SCHEDULE)(pos, h, t, batch)


class AffineStudent(torch.nn.Module):
    """``eps_pos = a_i pos`` and ``eps_h = b_i h + c_i`` at grid time ``i``: the family of the toy's exact
    consistency function; starts as the oracle (the teacher's weights)."""

    def __init__(self, grid: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("grid", grid)
        alpha, sigma = SCHEDULE.alpha(grid), SCHEDULE.sigma(grid)
        gain_h = sigma / (alpha**2 * H_STD**2 + sigma**2)
        self.a = torch.nn.Parameter(sigma / (alpha**2 * POS_STD**2 + sigma**2))
        self.b = torch.nn.Parameter(gain_h.clone())
        self.c = torch.nn.Parameter(-gain_h * alpha * H_MEAN)

    def forward(self, pos, h, t, batch):
        i = (self.grid[None, :] - t[:, None]).abs().argmin(dim=1)[batch]
        return self.a[i, None] * pos, self.b[i, None] * h + self.c[i, None]


def toy_data(graphs: int, generator: torch.Generator, n: int = 4) -> GraphState:
    batch = node_batch(torch.full((graphs,), n))
    pos = POS_STD * remove_mean(torch.randn(graphs * n, 3, generator=generator, dtype=torch.float64), batch)
    h = H_MEAN + H_STD * torch.randn(graphs * n, 2, generator=generator, dtype=torch.float64)
    return GraphState(pos, h, batch, graphs)


def toy_sample(sampler, denoiser, graphs=200):
    return sampler.sample(
        denoiser, torch.full((graphs,), 4), 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )


@pytest.mark.parametrize("snr_floor", [0.0, 1.0])
def test_distilled_one_step_map_matches_the_teachers_ode_endpoint(snr_floor):
    process, solver_steps = GaussianDiffusion(SCHEDULE), 8
    teacher_solver = make_sampler("ddim", process, solver_steps)
    student = AffineStudent(teacher_solver.timesteps(dtype=torch.float64))
    distill = ConsistencyDistillation(process, student, Oracle(), solver_steps, target_decay=0.5, snr_floor=snr_floor)
    optimizer = torch.optim.Adam(student.parameters(), lr=0.01)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(600):  # about 1.5 s
        loss, parts = distill.loss(student, toy_data(256, generator), generator=generator)
        optimizer.zero_grad()
        loss.mean().backward()
        optimizer.step()
        distill.after_optimizer_step(student)
        losses.append(loss.mean().item())
    assert set(parts) == {CONSISTENCY}
    assert losses[0] > 1e-3 and losses[-1] < 1e-12  # the teacher itself is not consistent; the student becomes so

    # the teacher's ODE endpoint: its deterministic solver on the same grid, from the same prior draw
    endpoint = toy_sample(teacher_solver, Oracle())
    one_step = toy_sample(make_sampler("consistency", process, 1), student)
    assert (one_step.pos - endpoint.pos).norm() < 1e-6 * endpoint.pos.norm()
    assert (one_step.h - endpoint.h).norm() < 1e-6 * (endpoint.h - H_MEAN).norm()
    # the teacher's own one-step clean prediction is the blurred mean, nowhere near it
    undistilled = toy_sample(make_sampler("consistency", process, 1), Oracle())
    assert (undistilled.pos - endpoint.pos).norm() > 0.9 * endpoint.pos.norm()


@pytest.mark.parametrize("snr_floor, teacher_steps", [(0.0, 2), (1.0, 2), (1.0, 4)])
def test_a_progressive_student_takes_in_one_ddim_step_what_the_teacher_takes_in_several(snr_floor, teacher_steps):
    """On the toy the teacher's DDIM steps are an affine map, which one step of an affine student can
    represent: after distillation DDIM with 4 steps of the student equals DDIM with 8 (16) of the teacher."""
    process, student_steps = GaussianDiffusion(SCHEDULE), 4
    student = AffineStudent(make_sampler("ddim", process, student_steps).timesteps(dtype=torch.float64))
    distill = ProgressiveDistillation(
        process, student, Oracle(), student_steps, snr_floor=snr_floor, teacher_steps=teacher_steps
    )
    optimizer = torch.optim.Adam(student.parameters(), lr=0.01)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(600):
        loss, parts = distill.loss(student, toy_data(256, generator), generator=generator)
        optimizer.zero_grad()
        loss.mean().backward()
        optimizer.step()
        losses.append(loss.mean().item())
    assert set(parts) == {PROGRESSIVE}
    assert losses[0] > 1e-4 and losses[-1] < 1e-12
    teacher = toy_sample(make_sampler("ddim", process, teacher_steps * student_steps), Oracle())
    distilled = toy_sample(make_sampler("ddim", process, student_steps), student)
    assert (distilled.pos - teacher.pos).norm() < 1e-6 * teacher.pos.norm()
    assert (distilled.h - teacher.h).norm() < 1e-6 * (teacher.h - H_MEAN).norm()
    undistilled = toy_sample(make_sampler("ddim", process, student_steps), Oracle())
    assert (undistilled.pos - teacher.pos).norm() > 1e-3 * teacher.pos.norm()


def briefly_trained_teacher(molecules: GraphState, generator: torch.Generator):
    """The tiny joint module after 100 training steps on ``molecules``, so that its trajectories and class
    predictions depend on the input."""
    teacher = tiny_joint_module()
    optimizer = torch.optim.Adam(teacher.denoiser.parameters(), lr=1e-2)
    for _ in range(100):
        loss, _ = teacher.diffusion.loss(teacher.denoiser, molecules, generator=generator)
        optimizer.zero_grad()
        loss.mean().backward()
        optimizer.step()
    return teacher


def test_the_joint_loss_decreases_on_a_tiny_run():
    molecules, generator = tiny_molecules(), torch.Generator().manual_seed(0)
    teacher = briefly_trained_teacher(molecules, generator)
    student = copy.deepcopy(teacher.denoiser)
    distill = ConsistencyDistillation(teacher.diffusion, student, teacher.denoiser, solver_steps=10, target_decay=0.5)

    def evaluate() -> tuple[float, dict[str, float]]:
        with torch.no_grad():
            runs = [distill.loss(student, molecules, generator=torch.Generator().manual_seed(i)) for i in range(16)]
        parts = {name: sum(run[1][name].mean().item() for run in runs) / len(runs) for name in runs[0][1]}
        return sum(run[0].mean().item() for run in runs) / len(runs), parts

    before, parts_before = evaluate()
    assert set(parts_before) == {CONSISTENCY, "atom_type", "charge", "bond"}
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-3)
    for _ in range(40):
        loss, _ = distill.loss(student, molecules, generator=generator)
        optimizer.zero_grad()
        loss.mean().backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        optimizer.step()
        distill.after_optimizer_step(student)
    after, parts_after = evaluate()
    # measured: consistency 0.024 -> 0.012, total 0.073 -> 0.038; the class divergences start at 0 and stay below 1e-3
    assert parts_after[CONSISTENCY] < 0.7 * parts_before[CONSISTENCY] and after < 0.7 * before
    assert all(parts_before[name] == 0 and parts_after[name] < 0.01 for name in ("atom_type", "charge", "bond"))


def test_class_transitions_are_distilled_on_a_tiny_run(monkeypatch):
    """``classes="transition"``: the teacher's steps draw the classes (one draw per teacher step, none with
    ``match``) and the class terms are the student's step's likelihood of them; a tiny run lowers the loss."""
    molecules, generator = tiny_molecules(), torch.Generator().manual_seed(0)
    teacher = briefly_trained_teacher(molecules, generator)
    process, student = teacher.diffusion, copy.deepcopy(teacher.denoiser)
    draws = []
    original = type(process).discrete_step

    def counting(self, state, out, t, s, generator, temperature):
        draws.append(temperature)
        return original(self, state, out, t, s, generator, temperature)

    monkeypatch.setattr(type(process), "discrete_step", counting)
    matching = ProgressiveDistillation(process, student, teacher.denoiser, solver_steps=4, teacher_steps=3)
    matching.loss(student, molecules, generator=generator)
    assert draws == []
    distill = ProgressiveDistillation(
        process, student, teacher.denoiser, solver_steps=4, teacher_steps=3, classes="transition", class_temperature=0.5
    )

    def evaluate() -> float:
        with torch.no_grad():
            runs = [distill.loss(student, molecules, generator=torch.Generator().manual_seed(i)) for i in range(16)]
        assert set(runs[0][1]) == {PROGRESSIVE, "atom_type", "charge", "bond"}
        return sum(run[0].mean().item() for run in runs) / len(runs)

    draws.clear()
    before = evaluate()
    assert draws == [0.5] * 3 * 16
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-3)
    for _ in range(40):
        loss, _ = distill.loss(student, molecules, generator=generator)
        optimizer.zero_grad()
        loss.mean().backward()
        optimizer.step()
    after = evaluate()
    assert after < before  # measured: 1.757 -> 1.697
    with pytest.raises(ValueError, match="distill.classes must be one of"):
        ProgressiveDistillation(process, student, teacher.denoiser, classes="frozen")


def test_the_transition_loss_is_the_reverse_steps_negative_log_likelihood():
    process, clean = tiny_joint_module().diffusion, tiny_molecules()
    t = torch.tensor([0.3, 0.6, 0.9])
    noisy = process.noise(clean, t, torch.Generator().manual_seed(0))
    sure = Prediction(
        clean.pos, None,
        20.0 * torch.cat([F.one_hot(clean.node_classes[:, 0], 5), F.one_hot(clean.node_classes[:, 1], 3)], 1).float(),
        20.0 * F.one_hot(clean.edge_classes, 4).float(),
    )  # fmt: skip
    # predicting the clean classes for certain, one step to s = 0 reaches them: no loss
    parts = process.transition_loss(noisy, sure, t, torch.zeros(3), clean, temperature=1.0)
    # (up to the schedule's precision: the posterior at s = 0 keeps about 1e-5 of the noise; measured 9e-6)
    assert set(parts) == {"atom_type", "charge", "bond"} and all(p.max() < 1e-4 for p in parts.values())
    # otherwise the mean of -log posterior over each graph's items, as the categorical channel computes it
    s = torch.tensor([0.1, 0.3, 0.5])
    rough = Prediction(clean.pos, None, torch.randn(11, 8), torch.randn(len(clean.edge_classes), 4))
    parts = process.transition_loss(noisy, rough, t, s, noisy, temperature=0.5)
    pair_graph = clean.batch[clean.pair_index[0]]
    probs = process.edge_channel.posterior(
        noisy.edge_classes, torch.softmax(rough.edge_logits / 0.5, -1), t[pair_graph], s[pair_graph]
    )
    nll = -probs.gather(1, noisy.edge_classes[:, None]).squeeze(1).log()
    expected = torch.stack([nll[pair_graph == g].mean() for g in range(3)])
    torch.testing.assert_close(parts["bond"], expected)


def test_the_class_divergence_is_the_cross_entropy_less_the_teachers_entropy():
    logits, teacher = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
    p = teacher.softmax(dim=-1)
    entropy = -(p * p.log()).sum(dim=-1)
    cross_entropy = torch.nn.functional.cross_entropy(logits, p, reduction="none")
    torch.testing.assert_close(CategoricalDiffusion.divergence(logits, teacher), cross_entropy - entropy)
    assert CategoricalDiffusion.divergence(teacher, teacher).abs().max() < 1e-12


def test_the_target_network_is_an_ema_of_the_student():
    student = torch.nn.Linear(2, 2)
    distill = ConsistencyDistillation(GaussianDiffusion(SCHEDULE), student, Oracle(), target_decay=0.75)
    before = distill.target.weight.detach().clone()
    assert torch.equal(before, student.weight) and not distill.target.weight.requires_grad
    with torch.no_grad():
        student.weight.add_(1.0)
    distill.after_optimizer_step(student)
    torch.testing.assert_close(distill.target.weight, before + 0.25)


def test_intervals_are_solver_steps_and_given_times_snap_to_them():
    distill = ConsistencyDistillation(GaussianDiffusion(SCHEDULE), torch.nn.Linear(1, 1), Oracle(), solver_steps=4)
    like = torch.zeros(1, dtype=torch.float64)
    s, t = distill.times(5, like, torch.tensor([1.0, 0.8, 0.3, 0.26, 0.01], dtype=torch.float64), None)
    assert t.tolist() == [1.0, 0.75, 0.25, 0.25, 0.25] and s.tolist() == [0.75, 0.5, 0.0, 0.0, 0.0]
    s, t = distill.times(1000, like, None, torch.Generator().manual_seed(0))
    assert set(t.tolist()) == {1.0, 0.75, 0.5, 0.25} and torch.allclose(t - s, torch.full_like(t, 0.25))
    with pytest.raises(ValueError, match="target_decay"):
        ConsistencyDistillation(GaussianDiffusion(SCHEDULE), torch.nn.Linear(1, 1), Oracle(), target_decay=1.0)


def test_a_progressive_round_calls_the_teacher_once_per_teacher_step_within_one_student_interval():
    seen = []

    class Spy(Oracle):
        def forward(self, pos, h, t, batch):
            seen.append(t.tolist())
            return super().forward(pos, h, t, batch)

    process = GaussianDiffusion(SCHEDULE)
    distill = ProgressiveDistillation(process, Oracle(), Spy(), solver_steps=2, teacher_steps=3)
    clean = toy_data(2, torch.Generator().manual_seed(0))
    distill.loss(Oracle(), clean, t=torch.tensor([0.9, 0.2], dtype=torch.float64))
    # student grid 1, 0.5, 0 (t snaps to 1 and 0.5); the teacher's steps 1/6 apart within each interval
    expected = [[1.0, 0.5], [5 / 6, 1 / 3], [4 / 6, 1 / 6]]
    assert len(seen) == 3 and all(torch.allclose(torch.tensor(a), torch.tensor(b)) for a, b in zip(seen, expected))
    with pytest.raises(ValueError, match="teacher_steps must be an integer >= 2, got 1"):
        ProgressiveDistillation(process, Oracle(), Oracle(), solver_steps=2, teacher_steps=1)


# ----- the consistency sampler ------------------------------------------------


@pytest.mark.parametrize("steps, times", [(1, [1.0]), (2, [1.0, 0.5]), (4, [1.0, 0.75, 0.5, 0.25])])
def test_consistency_sampler_calls_the_network_once_per_step(steps, times):
    process = GaussianDiffusion(SCHEDULE)
    sampler = make_sampler("consistency", process, steps)
    assert isinstance(sampler, ConsistencySampler) and sampler.network_calls == steps
    assert make_sampler("ddpm", process, steps).network_calls == steps + 1
    seen = []

    def counting(pos, h, t, batch):
        seen.append(t[0].item())
        return gaussian_oracle(SCHEDULE)(pos, h, t, batch)

    out = toy_sample(sampler, counting, graphs=3)
    assert seen == times
    assert graph_mean(out.pos, out.batch).abs().max() < 1e-10


def test_consistency_sampler_renoises_the_clean_prediction_with_fresh_noise():
    """Two calls on the toy: the sample is the clean prediction at t = 1/2 of ``alpha x0_hat + sigma noise``,
    whose variance per degree of freedom follows from the exact denoiser's linear gains."""
    process = GaussianDiffusion(SCHEDULE)
    out = toy_sample(make_sampler("consistency", process, 2), Oracle(), graphs=20000)
    t1, t2 = torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.5, dtype=torch.float64)

    def clean_gain(t):  # x0_hat = k z_t for the exact denoiser, k = alpha v / (alpha^2 v + sigma^2)
        alpha, sigma = SCHEDULE.alpha(t), SCHEDULE.sigma(t)
        return alpha * POS_STD**2 / (alpha**2 * POS_STD**2 + sigma**2)

    alpha, sigma = SCHEDULE.alpha(t2), SCHEDULE.sigma(t2)
    expected = clean_gain(t2) ** 2 * (alpha**2 * clean_gain(t1) ** 2 + sigma**2)
    per_dof_var = (out.pos**2).sum() / (20000 * 3 * 3)
    assert per_dof_var.item() == pytest.approx(expected.item(), rel=0.03)


@pytest.mark.parametrize("joint", [False, True], ids=["gaussian", "joint"])
def test_consistency_sampler_runs_end_to_end_for_both_processes(tmp_path, joint):
    save = save_tiny_joint_checkpoint if joint else save_tiny_checkpoint
    model = load_checkpoint(save(tmp_path / "model.ckpt"))
    for steps in (1, 2, 4):
        options = {"class_temperature": 0.5} if joint else {}
        molecules = generate(model, 3, SamplingConfig("consistency", steps, options), seed=1, progress=False)
        assert len(molecules) == 3 and all(m.finite for m in molecules)
        assert all((m.bonds is not None) == joint for m in molecules)
