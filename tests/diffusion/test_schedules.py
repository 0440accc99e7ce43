import math

import pytest
import torch

from molgen.diffusion.schedules import (
    CosineSchedule,
    LogLinearSchedule,
    PolynomialSchedule,
    make_schedule,
    schedule_from_dict,
)

SCHEDULES = [PolynomialSchedule(power=2.0, precision=1e-5), CosineSchedule(precision=1e-5), LogLinearSchedule()]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: s.name)
def test_bounds_and_variance_preserving(schedule):
    t = torch.linspace(0, 1, 1001, dtype=torch.float64)
    a2 = schedule.alpha_sq(t)
    assert torch.all(a2 >= schedule.precision - 1e-15) and torch.all(a2 <= 1 - schedule.precision + 1e-15)
    torch.testing.assert_close(schedule.alpha(t) ** 2 + schedule.sigma(t) ** 2, torch.ones_like(t))
    assert a2[0] == pytest.approx(1 - schedule.precision)
    assert a2[-1] == pytest.approx(schedule.precision, abs=1e-12)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: s.name)
def test_monotone(schedule):
    t = torch.linspace(0, 1, 1001, dtype=torch.float64)
    assert torch.all(torch.diff(schedule.alpha_sq(t)) <= 0)
    assert torch.all(torch.diff(schedule.log_snr(t)) < 0)
    assert torch.isfinite(schedule.log_snr(t)).all()


def test_polynomial_matches_edm_closed_form():
    # EDM polynomial_2: alpha^2 = (1 - 2s)(1 - t^2)^2 + s
    s = 1e-5
    sched = PolynomialSchedule(power=2.0, precision=s)
    for t in (0.0, 0.1, 0.5, 0.9, 1.0):
        expected = (1 - 2 * s) * (1 - t**2) ** 2 + s
        assert sched.alpha_sq(torch.tensor(t, dtype=torch.float64)).item() == pytest.approx(expected, rel=1e-12)


def test_cosine_midpoint():
    sched = CosineSchedule(offset=0.0, precision=1e-5)
    # a(0.5) = cos(pi/4)^2 = 0.5
    expected = (1 - 2e-5) * 0.5 + 1e-5
    assert sched.alpha_sq(torch.tensor(0.5, dtype=torch.float64)).item() == pytest.approx(expected)
    assert math.isclose(sched.log_snr(torch.tensor(0.5, dtype=torch.float64)).item(), 0.0, abs_tol=1e-9)


def test_loglinear_is_linear_in_log_snr_away_from_the_ends():
    sched = LogLinearSchedule(log_snr_max=10.0, log_snr_min=-4.0)
    # The ends bend: the precision floor near t = 0, the pinning of alpha to 0 at t = 1.
    t = torch.linspace(0.15, 0.8, 50, dtype=torch.float64)
    torch.testing.assert_close(sched.log_snr(t), 10.0 - 14.0 * t, atol=0.1, rtol=0)
    # Equal time per noise scale: a tenth of the time spans the same log-SNR drop anywhere in between.
    drops = sched.log_snr(torch.tensor([0.2, 0.6], dtype=torch.float64)) - sched.log_snr(
        torch.tensor([0.3, 0.7], dtype=torch.float64)
    )
    torch.testing.assert_close(drops, torch.full((2,), 1.4, dtype=torch.float64), atol=0.05, rtol=0)


def test_loglinear_default_has_no_abrupt_tail():
    """Over a 200-step uniform grid alpha may grow at most as fast as under the polynomial
    schedule: a steep first step multiplies the network's error (the l_min = -4 variant does)."""
    grid = torch.linspace(1.0, 0.0, 201, dtype=torch.float64)

    def steepest(schedule):
        alpha = schedule.alpha(grid)
        return float((alpha[1:] / alpha[:-1]).max())

    assert steepest(LogLinearSchedule()) <= steepest(PolynomialSchedule())
    assert steepest(LogLinearSchedule(log_snr_min=-4.0)) > 3 * steepest(PolynomialSchedule())


def test_roundtrip_and_errors():
    sched = make_schedule("polynomial", power=3.0, precision=1e-4)
    again = schedule_from_dict(sched.to_dict())
    t = torch.rand(10)
    torch.testing.assert_close(again.alpha_sq(t), sched.alpha_sq(t))
    with pytest.raises(ValueError, match="unknown noise schedule"):
        make_schedule("linear")
    with pytest.raises(ValueError, match="precision"):
        PolynomialSchedule(precision=0.0)
    loglinear = schedule_from_dict(LogLinearSchedule(log_snr_max=8.0, log_snr_min=-3.0).to_dict())
    assert (loglinear.log_snr_max, loglinear.log_snr_min) == (8.0, -3.0)
    with pytest.raises(ValueError, match="log_snr_max > log_snr_min"):
        LogLinearSchedule(log_snr_max=-4.0, log_snr_min=10.0)
