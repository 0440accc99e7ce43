"""Reverse-process samplers.

A sampler owns a time grid from 1 (noise) to 0 (data) and a ``step`` that
moves the state from one grid time ``t`` to the next ``s < t`` given the
denoiser's noise prediction. :meth:`Sampler.sample` is the shared loop: draw
the prior, step through the grid, and finish with the clean prediction at
``t = 0``. A new algorithm (DDIM, multistep solvers) subclasses
:class:`Sampler` and overrides :meth:`step`.
"""

from __future__ import annotations

import torch
from torch import Tensor
from tqdm.auto import tqdm

from molgen.diffusion.gaussian import (
    Denoiser,
    GaussianDiffusion,
    remove_mean,
    zero_com_noise,
)


class Sampler:
    """Base sampler: the time grid and the sampling loop.

    Args:
        diffusion: the forward process being inverted.
        num_steps: number of reverse steps ``T``; the denoiser is called
            ``T + 1`` times (the last call turns ``z_0`` into the sample).
    """

    def __init__(self, diffusion: GaussianDiffusion, num_steps: int) -> None:
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        self.diffusion = diffusion
        self.num_steps = num_steps

    def timesteps(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Tensor:
        """Uniform grid ``[1, (T-1)/T, ..., 0]``, [T + 1]."""
        return torch.linspace(1.0, 0.0, self.num_steps + 1, device=device, dtype=dtype)

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
        """Move ``(pos_t, h_t)`` from time ``t`` to ``s < t`` (scalars, 0-dim tensors)."""
        raise NotImplementedError

    @torch.inference_mode()
    def sample(
        self,
        denoiser: Denoiser,
        num_nodes: Tensor,
        num_features: int,
        h_condition: Tensor | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        progress: bool = False,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Generate a batch of graphs.

        Args:
            denoiser: noise predictor (in eval mode).
            num_nodes: [B] long, node count of each graph.
            num_features: F, the feature width the denoiser expects.
            h_condition: [N, F] clean features when the diffusion does not
                diffuse them (e.g. backbone atom types); else None.
            generator: seeds every random draw (on ``device``).
        Returns:
            ``(pos [N, 3] with zero CoM per graph, h [N, F], batch [N])``.
        """
        diffusion = self.diffusion
        num_nodes = num_nodes.to(device)
        num_graphs = num_nodes.numel()
        batch = torch.repeat_interleave(torch.arange(num_graphs, device=device), num_nodes)
        n_total = int(num_nodes.sum())

        pos = zero_com_noise(torch.empty(n_total, 3, device=device, dtype=dtype), batch, generator)
        if diffusion.diffuse_features:
            h = torch.randn(n_total, num_features, generator=generator, device=device, dtype=dtype)
        elif h_condition is None:
            raise ValueError("this diffusion conditions on clean features: pass h_condition")
        else:
            h = h_condition.to(device=device, dtype=dtype)

        grid = self.timesteps(device, dtype)
        for i in tqdm(range(self.num_steps), desc="sampling", disable=not progress, leave=False):
            t, s = grid[i], grid[i + 1]
            eps_pos, eps_h = denoiser(pos, h, t.expand(num_graphs), batch)
            pos, h = self.step(pos, h, remove_mean(eps_pos, batch, num_graphs), eps_h, t, s, batch, generator)

        t0 = grid[-1]
        eps_pos, eps_h = denoiser(pos, h, t0.expand(num_graphs), batch)
        pos = remove_mean(diffusion.predict_clean(pos, remove_mean(eps_pos, batch, num_graphs), t0), batch, num_graphs)
        if diffusion.diffuse_features:
            h = diffusion.predict_clean(h, eps_h, t0)
        return pos, h, batch


class AncestralSampler(Sampler):
    """Ancestral (DDPM) sampling: draw ``z_s ~ p(z_s | z_t)`` at every step."""

    def step(self, pos_t, h_t, eps_pos, eps_h, t, s, batch, generator):
        diffusion = self.diffusion
        pos_s = diffusion.posterior_step(pos_t, eps_pos, t, s, zero_com_noise(pos_t, batch, generator))
        if not diffusion.diffuse_features:
            return pos_s, h_t
        noise_h = torch.randn(h_t.shape, generator=generator, device=h_t.device, dtype=h_t.dtype)
        return pos_s, diffusion.posterior_step(h_t, eps_h, t, s, noise_h)


_SAMPLERS = {"ddpm": AncestralSampler, "ancestral": AncestralSampler}


def make_sampler(name: str, diffusion: GaussianDiffusion, num_steps: int) -> Sampler:
    """Build a sampler by name (``ddpm``/``ancestral``)."""
    if name not in _SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose from {sorted(_SAMPLERS)}")
    return _SAMPLERS[name](diffusion, num_steps)
