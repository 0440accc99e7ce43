"""Gaussian diffusion over point clouds with invariant node features.

The state of a batch of graphs (torch_geometric layout, no padding) is

    pos   [N, 3]  equivariant coordinates, kept in the zero centre-of-mass
                  subspace of each graph (translation is not modelled); [N, 0] for
                  a model without coordinates (a chain's internal coordinates in ``h``)
    h     [N, F]  invariant node features (diffused, or clean conditioning)
    batch [N]     graph index of each node, sorted, in [0, B)

Forward process: ``z_t = alpha_t * x + sigma_t * eps`` for both channels,
with the position noise projected onto the zero-CoM subspace. The denoiser
predicts ``eps``; the loss is the squared error per degree of freedom of
each graph, counting ``3 * (n - 1)`` degrees of freedom for positions (none for ``[N, 0]``).

Nothing here knows about chemistry: domains turn their data into ``pos``/``h``.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import Generator, Tensor

from molgen.diffusion.conditioning import condition_from_batch
from molgen.diffusion.inpainting import KnownPart
from molgen.diffusion.prediction import VelocityDenoiser
from molgen.diffusion.process import DiffusionProcess, GraphState, Prediction, Predictor, bind_inputs, per_item
from molgen.diffusion.schedules import NoiseSchedule
from molgen.diffusion.self_conditioning import (
    EstimateFeedback,
    GaussianEstimate,
    clean_estimate,
    is_self_conditioned,
    training_estimate,
)
from molgen.diffusion.structure_loss import StructureLoss, structure_loss_per_graph
from molgen.graph_batch import graph_sizes, graph_sum, remove_mean

# What a trained network outputs: the noise, or the velocity (molgen.diffusion.prediction).
PREDICTIONS = ("eps", "v")


class Denoiser(Protocol):
    """The network a :class:`GaussianDiffusion` calls: predicts the noise of both channels.

    Shapes: pos [N, 3], h [N, F], t [B] in [0, 1], batch [N] -> ([N, 3], [N, F]).
    A self-conditioned network also takes ``self_condition`` (:mod:`molgen.diffusion.self_conditioning`).
    """

    def __call__(self, pos: Tensor, h: Tensor, t: Tensor, batch: Tensor) -> tuple[Tensor, Tensor]: ...


def position_dof(num_nodes: Tensor, dims: int = 3) -> Tensor:
    """Degrees of freedom of zero-CoM positions per graph, ``dims * (n - 1)``: ``3 (n - 1)`` in space, none
    for a model without coordinates (positions ``[N, 0]``)."""
    return dims * (num_nodes - 1)


def zero_com_noise(num_nodes_like: Tensor, batch: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Standard Gaussian noise in the zero-CoM subspace, shaped like ``num_nodes_like`` [N, 3].

    Projecting isotropic noise is exactly the standard normal of the
    ``3 (n - 1)``-dimensional subspace (the projection is orthogonal).
    """
    noise = torch.randn(
        num_nodes_like.shape, generator=generator, device=num_nodes_like.device, dtype=num_nodes_like.dtype
    )
    return remove_mean(noise, batch)


class GaussianDiffusion(DiffusionProcess):
    """Variance-preserving Gaussian diffusion over ``(pos, h)``.

    Args:
        schedule: alpha/sigma of t.
        diffuse_features: if True, ``h`` is noised and generated together
            with ``pos`` (molecules: atom types). If False, ``h`` is clean
            conditioning that the denoiser sees at every step (protein
            backbones: fixed atom identities), and only ``pos`` is generated.
        prediction: what the trained network outputs, ``"eps"`` or ``"v"``
            (see :mod:`molgen.diffusion.prediction`). The denoiser this class
            calls always returns ``eps``; with ``"v"`` it is the network wrapped
            in :class:`~molgen.diffusion.prediction.VelocityDenoiser`, and the
            loss becomes the v-MSE.
        structure_loss: an auxiliary training loss on the clean estimate of the diffused features
            (:mod:`molgen.diffusion.structure_loss`), or None. Sampling ignores it.
    """

    def __init__(
        self,
        schedule: NoiseSchedule,
        diffuse_features: bool = True,
        prediction: str = "eps",
        structure_loss: StructureLoss | None = None,
    ) -> None:
        super().__init__()
        self.schedule = schedule
        self.diffuse_features = diffuse_features
        if prediction not in PREDICTIONS:
            raise ValueError(f"unknown diffusion.prediction {prediction!r}; choose from {list(PREDICTIONS)}")
        self.prediction = prediction
        if structure_loss is not None and not diffuse_features:
            raise ValueError(
                "diffusion.structure_loss reads the diffused features (e.g. the angles of "
                "experiment=backbone_internal): it needs diffuse_features=true"
            )
        self.structure_loss = structure_loss

    # ----- forward process -------------------------------------------------
    def add_noise(
        self, pos: Tensor, h: Tensor, t: Tensor, batch: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Sample ``q(z_t | x)``.

        Args:
            pos: [N, 3] clean positions (any CoM: they are centred first).
            h: [N, F] clean features.
            t: [B] times in [0, 1].
        Returns:
            ``(pos_t, h_t, eps_pos, eps_h)``, each shaped like its input;
            ``pos_t`` and ``eps_pos`` have zero CoM per graph. When features
            are not diffused, ``h_t`` is ``h`` and ``eps_h`` is zeros.
        """
        num_graphs = t.shape[0]
        pos = remove_mean(pos, batch, num_graphs)
        alpha = self.schedule.alpha(t)[batch, None]
        sigma = self.schedule.sigma(t)[batch, None]
        eps_pos = zero_com_noise(pos, batch, generator)
        pos_t = alpha * pos + sigma * eps_pos
        if self.diffuse_features:
            eps_h = torch.randn(h.shape, generator=generator, device=h.device, dtype=h.dtype)
            h_t = alpha * h + sigma * eps_h
        else:
            eps_h, h_t = torch.zeros_like(h), h
        return pos_t, h_t, eps_pos, eps_h

    @property
    def gaussian(self) -> GaussianDiffusion:
        return self

    @property
    def conditions_on_features(self) -> bool:
        return not self.diffuse_features

    def wrap_network(self, network: torch.nn.Module) -> torch.nn.Module:
        """A v-predicting network is wrapped to return ``eps`` (:class:`VelocityDenoiser`)."""
        if self.prediction == "v":
            return VelocityDenoiser(network, self.schedule, self.diffuse_features)
        return network

    def state_from_batch(self, data: Any) -> GraphState:
        """``data.pos`` [N, 3], ``data.h`` [N, F], ``data.batch`` [N] of a torch_geometric ``Batch``, and its
        ``y`` [B, P] (target properties) and ``node_labels`` [N] when it has them."""
        return GraphState(
            data.pos,
            data.h,
            data.batch,
            data.num_graphs,
            condition=condition_from_batch(data),
            node_labels=getattr(data, "node_labels", None),
        )

    def noise(self, clean: GraphState, t: Tensor, generator: Generator | None = None) -> GraphState:
        """Positions, then the features when they are diffused (:meth:`add_noise`)."""
        pos_t, h_t, _, _ = self.add_noise(clean.pos, clean.h, t, clean.batch, generator)
        return clean.replace(pos=pos_t, h=h_t)

    # ----- training objective ---------------------------------------------
    def loss(
        self, denoiser: Denoiser, clean: GraphState, t: Tensor | None = None, generator: Generator | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Epsilon-prediction squared error per degree of freedom, ``[B]``, and no components (with a
        ``structure_loss``: that loss added, and its weighted value ``[B]`` as the component ``structure``).

        With ``prediction="v"`` each graph's error is divided by ``alpha_t**2``:
        since ``eps - eps_hat = alpha_t (v - v_hat)`` for the wrapped network,
        this is exactly the v-MSE. The position error is summed over the ``3 (n - 1)`` zero-CoM degrees
        of freedom (the predicted noise is projected first, so a CoM
        component in the prediction costs nothing and carries no signal);
        feature errors count ``n * F`` more when features are diffused.

        A self-conditioned denoiser (:mod:`molgen.diffusion.self_conditioning`)
        gets its own detached estimate for half of the batches, decided by one
        draw from ``generator`` after the noise.
        """
        pos, h, batch, num_graphs = clean.pos, clean.h, clean.batch, clean.num_graphs
        if t is None:
            t = self.sample_time(num_graphs, pos.device, generator).to(pos.dtype)
        pos_t, h_t, eps_pos, eps_h = self.add_noise(pos, h, t, batch, generator)
        inputs, estimate = (pos_t, h_t, t, batch), {}
        denoiser = bind_inputs(denoiser, condition=clean.condition, node_labels=clean.node_labels)
        if is_self_conditioned(denoiser):
            estimate["self_condition"] = training_estimate(denoiser, inputs, self.self_condition_estimate, generator)
        pred_pos, pred_h = denoiser(*inputs, **estimate)
        pred_pos = remove_mean(pred_pos, batch, num_graphs)

        sq_err = ((pred_pos - eps_pos) ** 2).sum(dim=1)
        num_nodes = graph_sizes(batch, num_graphs)
        dof = position_dof(num_nodes, pos.shape[1])
        if self.diffuse_features:
            sq_err = sq_err + ((pred_h - eps_h) ** 2).sum(dim=1)
            dof = dof + num_nodes * h.shape[1]
        per_graph = graph_sum(sq_err, batch, num_graphs) / dof.clamp(min=1).to(sq_err.dtype)
        if self.prediction == "v":
            per_graph = per_graph / self.schedule.alpha_sq(t)
        if self.structure_loss is None:
            return per_graph, {}
        estimate = self.predict_clean(h_t, pred_h, t[batch, None])
        structure = structure_loss_per_graph(self.structure_loss, estimate, h, t, batch)
        return per_graph + structure, {"structure": structure}

    # ----- sampling hooks (molgen.diffusion.samplers.Sampler) ---------------
    def prior(self, start: GraphState, generator: Generator | None = None) -> GraphState:
        """Standard normal features when they are diffused (drawn after the positions); clean
        conditioning features are kept."""
        if not self.diffuse_features:
            return start
        h = start.h
        return start.replace(h=torch.randn(h.shape, generator=generator, device=h.device, dtype=h.dtype))

    def inpaint(self, state: GraphState, known: KnownPart, t: Tensor | None, generator: Generator | None) -> GraphState:
        """Positions, then the known nodes' diffused features (conditioning features are clean already)."""
        state = super().inpaint(state, known, t, generator)
        if not self.diffuse_features or known.h is None:
            return state
        h = known.h
        if t is not None:
            noise = torch.randn(h.shape, generator=generator, device=h.device, dtype=h.dtype)
            h = self.schedule.alpha(t) * h + self.schedule.sigma(t) * noise
        return state.replace(h=torch.where(known.mask[:, None], h, state.h))

    def renoise_values(
        self, z_s: Tensor, s: Tensor, t: Tensor, generator: Generator | None, batch: Tensor | None = None
    ) -> Tensor:
        """``z_t ~ q(z_t | z_s)``: ``alpha_ts z_s + sqrt(sigma_t**2 - alpha_ts**2 sigma_s**2) noise`` with
        ``alpha_ts = alpha_t / alpha_s``; zero-CoM noise when ``batch`` is given (positions)."""
        alpha_ts = self.schedule.alpha(t) / self.schedule.alpha(s)
        std = (self.schedule.sigma(t) ** 2 - alpha_ts**2 * self.schedule.sigma(s) ** 2).clamp(min=0.0).sqrt()
        if batch is not None:
            noise = zero_com_noise(z_s, batch, generator)
        else:
            noise = torch.randn(z_s.shape, generator=generator, device=z_s.device, dtype=z_s.dtype)
        return alpha_ts * z_s + std * noise

    def renoise(self, state: GraphState, s: Tensor, t: Tensor, generator: Generator | None) -> GraphState:
        """Positions, then the features when they are diffused."""
        state = super().renoise(state, s, t, generator)
        if not self.diffuse_features:
            return state
        s_node, t_node = per_item(s, state.batch)[..., None], per_item(t, state.batch)[..., None]
        return state.replace(h=self.renoise_values(state.h, s_node, t_node, generator))

    def self_condition_estimate(self, inputs: tuple[Tensor, Tensor, Tensor, Tensor], output: tuple) -> GaussianEstimate:
        """The estimate a self-conditioned denoiser gets next (:mod:`molgen.diffusion.self_conditioning`):
        the zero-CoM clean positions and, when features are diffused, the clean features implied by a call
        on ``inputs = (pos_t, h_t, t [B], batch)`` that returned ``output = (eps_pos, eps_h)``, detached."""
        pos_t, h_t, t, batch = inputs
        pos = clean_estimate(self, pos_t, output[0], t, batch, t.shape[0])
        if not self.diffuse_features:
            return GaussianEstimate(pos, None)
        return GaussianEstimate(pos, self.predict_clean(h_t, output[1], t[batch, None]).detach())

    def predictor(self, denoiser: Denoiser, state: GraphState) -> Predictor:
        """Calls ``denoiser`` on the batch of ``state``, feeding a self-conditioned one its previous
        estimate (:class:`~molgen.diffusion.self_conditioning.EstimateFeedback`)."""
        denoise = EstimateFeedback(
            bind_inputs(denoiser, condition=state.condition, node_labels=state.node_labels),
            self.self_condition_estimate,
        )

        def predict(current: GraphState, t: Tensor) -> Prediction:
            eps_pos, eps_h = denoise(current.pos, current.h, t.expand(current.num_graphs), current.batch)
            return Prediction(remove_mean(eps_pos, current.batch, current.num_graphs), eps_h)

        return predict

    # ----- reverse process -------------------------------------------------
    def posterior_step(
        self,
        z_t: Tensor,
        eps_pred: Tensor,
        t: Tensor,
        s: Tensor,
        noise: Tensor | None,
    ) -> Tensor:
        """One ancestral step ``z_t -> z_s`` (``s < t``) of ``p(z_s | z_t)``.

        With ``alpha_ts = alpha_t / alpha_s`` and
        ``sigma_ts**2 = sigma_t**2 - alpha_ts**2 * sigma_s**2``::

            mean = z_t / alpha_ts - sigma_ts**2 / (alpha_ts * sigma_t) * eps
            std  = sigma_ts * sigma_s / sigma_t

        ``t``/``s`` are broadcastable to ``z_t`` (e.g. [N, 1]); ``noise`` is
        a standard normal draw shaped like ``z_t`` (projected for positions)
        or None for the mean.
        """
        alpha_t, sigma_t = self.schedule.alpha(t), self.schedule.sigma(t)
        alpha_s, sigma_s = self.schedule.alpha(s), self.schedule.sigma(s)
        alpha_ts = alpha_t / alpha_s
        sigma_ts_sq = (sigma_t**2 - alpha_ts**2 * sigma_s**2).clamp(min=0.0)
        mean = z_t / alpha_ts - sigma_ts_sq / (alpha_ts * sigma_t) * eps_pred
        if noise is None:
            return mean
        return mean + (sigma_ts_sq.sqrt() * sigma_s / sigma_t) * noise

    def predict_clean(self, z_t: Tensor, eps_pred: Tensor, t: Tensor) -> Tensor:
        """``x_hat = (z_t - sigma_t * eps) / alpha_t``; ``t`` broadcastable to ``z_t``."""
        return (z_t - self.schedule.sigma(t) * eps_pred) / self.schedule.alpha(t)
