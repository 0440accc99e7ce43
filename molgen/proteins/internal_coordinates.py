"""A CA trace in internal coordinates: virtual bond angles and torsions, and the trace rebuilt from them.

A chain of ``L`` CA atoms 3.80 Å apart is fixed, up to a rigid motion, by the virtual bond angle at every
inner residue and the virtual torsion of every four consecutive residues (Levitt 1976; FoldingDiff, Wu et
al. 2022, diffuses the full backbone's angles the same way). Residue ``i`` owns

- ``theta[i]`` = angle CA(i-1)-CA(i)-CA(i+1), defined for ``1 <= i <= L-2``;
- ``tau[i]`` = torsion CA(i-1)-CA(i)-CA(i+1)-CA(i+2), defined for ``1 <= i <= L-3``;

both in radians, NaN where undefined. These are invariant under rotations and translations, and a
reflection changes the sign of every torsion: a model of them is chiral by construction (an alpha helix
has ``theta`` ≈ 91°, ``tau`` ≈ +50°; a strand ``theta`` ≈ 120°, ``tau`` ≈ -170°).

The features a model diffuses (:func:`angle_features`) are, per residue, the standardised angle and the
cosine and sine of the torsion, so that the torsion's periodicity needs no wrapped noise; undefined
entries are zeros, and :func:`angles_from_features` reads the angles back. :func:`ca_traces_from_features`
rebuilds a batch of traces from features in torch, for a model that looks at its own estimate in space.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from molgen.proteins.geometry import CA_CA_DISTANCE, angle, dihedral, place_atom

__all__ = [
    "NUM_FEATURES",
    "THETA_MEAN",
    "THETA_STD",
    "angle_features",
    "angles_from_features",
    "ca_distance_loss",
    "ca_internal_coordinates",
    "ca_trace_from_internal",
    "ca_traces_from_features",
    "feature_angles",
    "nonlocal_ca_distance_loss",
    "tidied_features",
]

#: Per residue: standardised virtual bond angle, cosine and sine of the virtual torsion.
NUM_FEATURES = 3
#: Mean and standard deviation (radians) of the virtual bond angle over the break-free training segments
#: of db55 and cgdms (234,398 residues): 106.9° ± 17.3°.
THETA_MEAN = math.radians(106.9)
THETA_STD = math.radians(17.3)
#: CA-CA distance (Å) under which a residue pair is a contact of :func:`ca_distance_loss`.
CONTACT_DISTANCE = 10.0
#: :func:`nonlocal_ca_distance_loss`'s contacts: at least this far apart in sequence (an ideal helix's
#: i, i+4 pair is 6.2 Å apart, its i, i+5 pair 8.6 Å) and closer than this (a beta ladder's CA-CA
#: distances are 4.4-5.5 Å across, about 6.5 Å on the diagonal).
NONLOCAL_SEPARATION = 5
NONLOCAL_CONTACT_DISTANCE = 8.0
#: Range the decoded angles are clipped to (degrees): no real CA trace bends tighter than about 75°.
THETA_RANGE = (60.0, 175.0)


def ca_internal_coordinates(ca: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(theta [L], tau [L])`` radians of a CA trace ``[L, 3]`` (Å), NaN where undefined (module docstring)."""
    ca = np.asarray(ca, dtype=np.float64)
    if ca.ndim != 2 or ca.shape[1] != 3:
        raise ValueError(f"a CA trace must be [L, 3], got {ca.shape}")
    length = len(ca)
    theta, tau = np.full(length, np.nan), np.full(length, np.nan)
    if length >= 3:
        theta[1:-1] = np.radians(angle(ca[:-2], ca[1:-1], ca[2:]))
    if length >= 4:
        tau[1:-2] = np.radians(dihedral(ca[:-3], ca[1:-2], ca[2:-1], ca[3:]))
    return theta, tau


def angle_features(theta: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """``[L, 3]`` float32: ``(theta - THETA_MEAN) / THETA_STD``, ``cos(tau)``, ``sin(tau)``; zeros where undefined."""
    features = np.stack([(theta - THETA_MEAN) / THETA_STD, np.cos(tau), np.sin(tau)], axis=-1)
    return np.nan_to_num(features, nan=0.0).astype(np.float32)


def angles_from_features(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(theta [L], tau [L])`` radians of features ``[L, 3]``: the angle clipped to :data:`THETA_RANGE`, the
    torsion from the direction of its (cosine, sine) pair, whatever its length."""
    features = np.asarray(features, dtype=np.float64)
    theta = np.clip(features[:, 0] * THETA_STD + THETA_MEAN, *np.radians(THETA_RANGE))
    return theta, np.arctan2(features[:, 2], features[:, 1])


def ca_trace_from_internal(theta: np.ndarray, tau: np.ndarray, bond: float = CA_CA_DISTANCE) -> np.ndarray:
    """The CA trace ``[L, 3]`` (Å, float64) with consecutive atoms ``bond`` apart and the given angles (radians,
    indexed as :func:`ca_internal_coordinates` returns them; entries that are undefined there are not read).
    The first atom is at the origin, the second on the x axis, the third in the xy plane.

    Raises:
        ValueError: ``theta`` and ``tau`` differ in length, or a read entry is not finite.
    """
    theta, tau = np.asarray(theta, dtype=np.float64), np.asarray(tau, dtype=np.float64)
    length = len(theta)
    if tau.shape != theta.shape or theta.ndim != 1:
        raise ValueError(f"theta and tau must both be [L], got {theta.shape} and {tau.shape}")
    if not (np.isfinite(theta[1:-1]).all() and np.isfinite(tau[1:-2]).all()):
        raise ValueError("the angles of a CA trace must be finite")
    ca = np.zeros((length, 3))
    if length >= 2:
        ca[1, 0] = bond
    if length >= 3:
        ca[2] = ca[1] + bond * np.array([-np.cos(theta[1]), np.sin(theta[1]), 0.0])
    for k in range(3, length):  # atom k from the three before it: angle at k-1, torsion owned by k-2
        ca[k] = place_atom(ca[k - 3], ca[k - 2], ca[k - 1], bond, math.degrees(theta[k - 1]), math.degrees(tau[k - 2]))
    return ca


def feature_angles(features: Tensor) -> tuple[Tensor, Tensor]:
    """Torch counterpart of :func:`angles_from_features`: ``features [..., 3]`` -> ``(theta [...], tau [...])``
    radians, the angle clipped to :data:`THETA_RANGE`."""
    theta = (features[..., 0] * THETA_STD + THETA_MEAN).clamp(*np.radians(THETA_RANGE))
    return theta, torch.atan2(features[..., 2], features[..., 1])


def tidied_features(features: Tensor) -> Tensor:
    """Torch counterpart of :func:`angle_features` of :func:`angles_from_features`: ``features [..., 3]`` re-derived
    from the angles they stand for (the angle clipped to :data:`THETA_RANGE`, the torsion's cosine and sine of
    unit length), whatever their scale."""
    theta, tau = feature_angles(features)
    return torch.stack([(theta - THETA_MEAN) / THETA_STD, tau.cos(), tau.sin()], dim=-1)


def ca_traces_from_features(features: Tensor, bond: float = CA_CA_DISTANCE) -> Tensor:
    """Batched torch counterpart of :func:`angles_from_features` then :func:`ca_trace_from_internal`.

    ``features [B, L, 3]`` (padded chains are fine: an atom depends only on the features before it) ->
    CA traces ``[B, L, 3]`` in Å, same dtype, the same frame as the numpy rebuild. Differentiable, but meant
    for detached estimates: the loop over ``L`` is sequential.
    """
    batch, length = features.shape[:2]
    theta, tau = feature_angles(features)
    atoms = [features.new_zeros(batch, 3) for _ in range(min(length, 3))]
    if length >= 2:
        atoms[1] = atoms[1] + features.new_tensor([bond, 0.0, 0.0])
    if length >= 3:
        bend = torch.stack([-theta[:, 1].cos(), theta[:, 1].sin(), torch.zeros_like(theta[:, 1])], dim=-1)
        atoms[2] = atoms[1] + bond * bend
    for k in range(3, length):  # NeRF (place_atom): atom k from the three before it
        a, b, c = atoms[k - 3], atoms[k - 2], atoms[k - 1]
        x_axis = torch.nn.functional.normalize(c - b, dim=-1)
        z_axis = torch.nn.functional.normalize(torch.linalg.cross(b - a, x_axis), dim=-1)
        y_axis = torch.linalg.cross(z_axis, x_axis)
        angle_k, torsion_k = theta[:, k - 1, None], tau[:, k - 2, None]
        atoms.append(
            c
            + bond
            * (
                -angle_k.cos() * x_axis
                + angle_k.sin() * torsion_k.cos() * y_axis
                + angle_k.sin() * torsion_k.sin() * z_axis
            )
        )
    return torch.stack(atoms, dim=1) if atoms else features.new_zeros(batch, 0, 3)


def ca_distance_loss(
    estimate: Tensor,
    clean: Tensor,
    batch: Tensor,
    num_graphs: int,
    *,
    min_separation: int = 1,
    contact_distance: float = CONTACT_DISTANCE,
) -> Tensor:
    """The CA-CA distance error of a batch of estimated chains, for ``diffusion.structure_loss`` (``ca_distances``).

    ``estimate`` and ``clean`` are angle features ``[N, 3]`` of chains in residue order (``batch [N]`` sorted);
    both are rebuilt into CA traces and, over the residue pairs at least ``min_separation`` apart in sequence
    and closer than ``contact_distance`` in either trace (the pairs of a helix turn, a strand ladder, packed
    segments, and the contacts the estimate makes that the truth lacks), the Huber loss (1 Å) of the estimated
    distance against the clean one is averaged.
    Counting only the true contacts rewards collapsing the chain: it costs nothing to bring everything close.
    Returns ``[num_graphs]`` (Å), differentiable in ``estimate``: the gradient reaches every angle whose error
    moves a contact.

    Raises:
        ValueError: features that are not the :data:`NUM_FEATURES` angle features.
    """
    from torch_geometric.utils import to_dense_batch  # torch_geometric: only where the loss is used

    if estimate.shape[-1] != NUM_FEATURES:
        raise ValueError(
            f"diffusion.structure_loss=ca_distances reads CA internal-coordinate features [N, {NUM_FEATURES}] "
            f"(experiment=backbone_internal), got [N, {estimate.shape[-1]}]"
        )

    estimated, mask = to_dense_batch(estimate, batch, batch_size=num_graphs)
    truth = ca_traces_from_features(to_dense_batch(clean, batch, batch_size=num_graphs)[0])
    traces = ca_traces_from_features(estimated)

    def distances(trace: Tensor) -> Tensor:  # clamped: no NaN gradient on the diagonal
        return (trace[:, :, None] - trace[:, None]).square().sum(-1).clamp(min=1e-8).sqrt()

    true_distances, estimated_distances = distances(truth), distances(traces)
    position = torch.arange(mask.shape[1], device=mask.device)
    separated = (position[:, None] - position[None]).abs() >= max(min_separation, 1)
    # contacts of either: a contact the truth lacks (segments collapsed onto each other) costs as one it has
    contacts = (true_distances < contact_distance) | (estimated_distances.detach() < contact_distance)
    pairs = mask[:, :, None] & mask[:, None] & separated & contacts
    error = torch.nn.functional.huber_loss(estimated_distances, true_distances, reduction="none", delta=1.0)
    return (error * pairs).sum(dim=(1, 2)) / pairs.sum(dim=(1, 2)).clamp(min=1)


def nonlocal_ca_distance_loss(estimate: Tensor, clean: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
    """:func:`ca_distance_loss` over the nonlocal contacts only (``diffusion.structure_loss=nonlocal_ca_distances``):
    pairs at least :data:`NONLOCAL_SEPARATION` apart in sequence and closer than :data:`NONLOCAL_CONTACT_DISTANCE`
    in either trace. No pair inside a helix qualifies, so the loss does not reward a helix's easily placed
    contacts over the strand ladders and packed segments that decide a fold (with every contact under 10 Å the
    angle model bought its spatial accuracy with helices; docs/backbones.md)."""
    return ca_distance_loss(
        estimate,
        clean,
        batch,
        num_graphs,
        min_separation=NONLOCAL_SEPARATION,
        contact_distance=NONLOCAL_CONTACT_DISTANCE,
    )
