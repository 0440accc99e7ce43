import pytest
import torch

from molgen.training.train import ema_with_warmup


def test_ema_decay_ramps_up_then_caps():
    update = ema_with_warmup(0.999)
    averaged, target = [torch.zeros(3)], [torch.ones(3)]
    update(averaged, target, torch.tensor(1))  # decay (1 + 1) / (10 + 1)
    torch.testing.assert_close(averaged[0], torch.full((3,), 1 - 2 / 11))
    late = [torch.zeros(3)]
    update(late, target, torch.tensor(100_000))  # ramp above the cap: decay 0.999
    torch.testing.assert_close(late[0], torch.full((3,), 0.001))


def test_short_runs_follow_the_weights():
    update = ema_with_warmup(0.999)
    averaged = [torch.zeros(1)]
    for n in range(1, 301):
        update(averaged, [torch.ones(1)], torch.tensor(n))
    assert averaged[0].item() == pytest.approx(1.0, abs=0.05)  # 0.999 fixed would give 0.26
