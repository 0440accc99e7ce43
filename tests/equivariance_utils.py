"""Shared equivariance checks for denoisers (not a test module).

Any model with the denoiser signature
``forward(pos [N,3], h [N,F], t [B], batch [N]) -> (eps_pos [N,3], eps_h [N,F])``
can be checked with :func:`assert_denoiser_equivariant`. Import it as
``from tests.equivariance_utils import ...`` (``tests`` is a package).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

__all__ = ["random_rotation", "tolerance", "permute_within_graphs", "permute_graphs", "assert_denoiser_equivariant"]

Denoiser = Callable[[Tensor, Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]


def random_rotation(dtype: torch.dtype = torch.float64, reflect: bool = False, generator=None) -> Tensor:
    """Random orthogonal ``[3, 3]`` matrix with determinant ``-1`` if ``reflect`` else ``+1``.

    QR of a Gaussian matrix, with the signs of R's diagonal folded into Q so
    that Q is Haar-distributed, then one column flipped to fix the determinant.
    """
    a = torch.randn(3, 3, dtype=torch.float64, generator=generator)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r))
    target = -1.0 if reflect else 1.0
    if torch.linalg.det(q) * target < 0:
        q[:, 0] = -q[:, 0]
    return q.to(dtype)


def tolerance(dtype: torch.dtype) -> dict[str, float]:
    """``rtol``/``atol`` for ``torch.testing.assert_close`` on O(1) outputs.

    float64 round-off through ~10 layers is ~1e-13, so 1e-9 leaves ample
    margin while still catching any real symmetry breaking. For float32, the
    default EGNNDenoiser (9 layers, width 256, QM9-size molecules with
    coordinates of a few Angstrom) was measured at ~1.5e-6 rotation error at
    initialisation; 1e-4 leaves margin for trained weights and larger outputs
    (``rtol`` covers those).
    """
    if dtype == torch.float64:
        return {"rtol": 1e-9, "atol": 1e-9}
    if dtype == torch.float32:
        return {"rtol": 1e-4, "atol": 1e-4}
    raise ValueError(f"no tolerance defined for {dtype}")


def permute_within_graphs(batch: Tensor, generator=None) -> Tensor:
    """Random permutation ``[N]`` that shuffles nodes only inside their graph,
    so ``batch[perm]`` stays sorted."""
    noise = torch.rand(batch.numel(), dtype=torch.float64, generator=generator).to(batch.device)
    return torch.argsort(batch.to(torch.float64) + 0.5 * noise)


def permute_graphs(batch: Tensor, generator=None) -> tuple[Tensor, Tensor, Tensor]:
    """Reorder whole graphs of a batch, keeping the node order inside each graph.

    Returns ``(node_perm [N], graph_perm [B], new_batch [N])``: the new batch
    holds old graph ``graph_perm[b]`` as graph ``b``, its nodes are
    ``old_nodes[node_perm]``, and ``new_batch`` is sorted.
    """
    num_graphs = int(batch.max()) + 1
    graph_perm = torch.randperm(num_graphs, generator=generator).to(batch.device)
    rank = torch.empty_like(graph_perm)
    rank[graph_perm] = torch.arange(num_graphs, device=batch.device)
    new_graph_of_node = rank[batch]
    node_perm = torch.argsort(new_graph_of_node * batch.numel() + torch.arange(batch.numel(), device=batch.device))
    return node_perm, graph_perm, new_graph_of_node[node_perm]


def _check(actual: Tensor, expected: Tensor, what: str, tol: dict[str, float]) -> None:
    torch.testing.assert_close(actual, expected, **tol, msg=lambda m: f"{what}: {m}")


@torch.no_grad()
def assert_denoiser_equivariant(
    model: Denoiser,
    pos: Tensor,
    h: Tensor,
    t: Tensor,
    batch: Tensor,
    dtype: torch.dtype,
    *,
    reflections: bool = True,
    node_permutations: bool = True,
    seed: int = 0,
) -> None:
    """Assert E(3) (or SE(3)) and permutation equivariance of a denoiser.

    Checks, with ``(e_x, e_h) = model(pos, h, t, batch)``:

    - rotation ``R`` (``det = +1``): ``model(pos R^T) = (e_x R^T, e_h)``;
    - reflection (``det = -1``), only if ``reflections`` (an SE(3)-only model,
      e.g. one using cross products, may legitimately fail it);
    - translation by a different vector per graph: outputs unchanged;
    - a permutation of nodes within each graph: outputs permuted likewise;
      with ``node_permutations=False`` (models of chains, whose node order is
      the sequence) a reordering of whole graphs in the batch instead.

    The model (if an ``nn.Module``) and inputs are cast to ``dtype`` and the
    model is put in eval mode; inputs may live on any device (the model must
    already be there). Random draws use a CPU generator seeded with ``seed``.
    Raises ``AssertionError`` naming the failed check.
    """
    if isinstance(model, torch.nn.Module):
        model = model.to(dtype).eval()
    gen = torch.Generator().manual_seed(seed)
    pos, h, t = pos.to(dtype), h.to(dtype), t.to(dtype)
    tol = tolerance(dtype)
    eps_x, eps_h = model(pos, h, t, batch)

    transforms = [("rotation", False)] + ([("reflection", True)] if reflections else [])
    for name, reflect in transforms:
        rot = random_rotation(dtype, reflect=reflect, generator=gen).to(pos.device)
        out_x, out_h = model(pos @ rot.T, h, t, batch)
        _check(out_x, eps_x @ rot.T, f"{name} (eps_pos)", tol)
        _check(out_h, eps_h, f"{name} (eps_h)", tol)

    num_graphs = t.shape[0]
    shift = 3.0 * torch.randn(num_graphs, 3, dtype=torch.float64, generator=gen).to(pos.device, dtype)
    out_x, out_h = model(pos + shift[batch], h, t, batch)
    _check(out_x, eps_x, "translation (eps_pos)", tol)
    _check(out_h, eps_h, "translation (eps_h)", tol)

    if node_permutations:
        perm = permute_within_graphs(batch, generator=gen)
        out_x, out_h = model(pos[perm], h[perm], t, batch[perm])
    else:
        perm, graph_perm, new_batch = permute_graphs(batch, generator=gen)
        out_x, out_h = model(pos[perm], h[perm], t[graph_perm], new_batch)
    _check(out_x, eps_x[perm], "permutation (eps_pos)", tol)
    _check(out_h, eps_h[perm], "permutation (eps_h)", tol)


def assert_finite_on_degenerate_graphs(model, num_features: int) -> None:
    """A one-node graph and two coincident atoms give finite outputs and gradients,
    and the one-node graph's eps_pos is zero (its zero-CoM subspace is empty)."""
    batch = torch.tensor([0, 1, 1, 1])
    pos = torch.tensor([[0.0, 0.0, 0.0], [0.3, 0.3, 0.3], [0.3, 0.3, 0.3], [-0.6, -0.6, -0.6]], requires_grad=True)
    h = torch.randn(4, num_features, requires_grad=True)
    t = torch.tensor([0.2, 0.7])
    eps_pos, eps_h = model(pos, h, t, batch)
    assert torch.isfinite(eps_pos).all() and torch.isfinite(eps_h).all()
    torch.testing.assert_close(eps_pos[0], torch.zeros(3))
    (eps_pos.square().sum() + eps_h.square().sum()).backward()
    assert torch.isfinite(pos.grad).all() and torch.isfinite(h.grad).all()


def assert_output_contract(model, pos, h, t, batch, dtype) -> tuple:
    """Outputs keep the inputs' shapes and dtype and eps_pos has zero mean per graph; returns them."""
    eps_pos, eps_h = model(pos, h, t, batch)
    assert eps_pos.shape == pos.shape and eps_h.shape == h.shape
    assert eps_pos.dtype == dtype and eps_h.dtype == dtype
    num_graphs = int(batch.max()) + 1
    com = eps_pos.new_zeros(num_graphs, 3).index_add_(0, batch, eps_pos) / torch.bincount(batch)[:, None].to(dtype)
    torch.testing.assert_close(com, torch.zeros_like(com), atol=1e-6 if dtype == torch.float32 else 1e-12, rtol=0)
    return eps_pos, eps_h
