"""Shared equivariance checks for denoisers (not a test module).

Any model with the denoiser signature
``forward(pos [N,3], h [N,F], t [B], batch [N]) -> (eps_pos [N,3], eps_h [N,F])``
can be checked with :func:`assert_denoiser_equivariant`. Import it as
``from tests.equivariance_utils import ...`` (``tests`` is a package).

Rotations come from ``e3nn.o3.rand_matrix`` and the rotation/reflection checks
from ``e3nn.util.test.equivariance_error``; only what e3nn cannot express is
custom: a different translation per graph, and permutations of the nodes within
graphs (or of whole graphs).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from e3nn import o3
from e3nn.util.test import FLOAT_TOLERANCE, equivariance_error
from torch import Tensor

__all__ = [
    "random_rotation",
    "tolerance",
    "assert_o3_equivariant",
    "permute_within_graphs",
    "permute_graphs",
    "assert_denoiser_equivariant",
]

Denoiser = Callable[[Tensor, Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]

# e3nn orders the components of an l=1 irrep as (y, z, x); the models use (x, y, z).
_VECTOR = o3.Irreps("1o")
_XYZ_TO_E3NN = [1, 2, 0]
_E3NN_TO_XYZ = [2, 0, 1]


def random_rotation(dtype: torch.dtype = torch.float64, reflect: bool = False, generator=None) -> Tensor:
    """Haar-random ``[3, 3]`` rotation (``e3nn.o3.rand_matrix``), negated (det ``-1``) if ``reflect``.

    e3nn draws from the global RNG; with a CPU ``generator`` the draw is seeded
    from it instead, in a fork of the global RNG, which is left untouched.
    """
    if generator is None:
        rot = o3.rand_matrix(dtype=torch.float64)
    else:
        seed = int(torch.randint(0, 2**62, (), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            rot = o3.rand_matrix(dtype=torch.float64)
    return (-rot if reflect else rot).to(dtype)


def tolerance(dtype: torch.dtype) -> dict[str, float]:
    """``rtol``/``atol`` for ``torch.testing.assert_close`` on O(1) outputs.

    float64 is e3nn's ``FLOAT_TOLERANCE`` (1e-9): round-off through ~10 layers
    is ~1e-13, so it leaves ample margin while still catching any real symmetry
    breaking. For float32 this is tighter than e3nn's 1e-3: the default
    EGNNDenoiser (9 layers, width 256, QM9-size molecules with coordinates of a
    few Angstrom) was measured at ~1.5e-6 rotation error at initialisation;
    1e-4 leaves margin for trained weights and larger outputs (``rtol`` covers
    those).
    """
    if dtype == torch.float64:
        value = float(FLOAT_TOLERANCE[torch.float64])
        return {"rtol": value, "atol": value}
    if dtype == torch.float32:
        return {"rtol": 1e-4, "atol": 1e-4}
    raise ValueError(f"no tolerance defined for {dtype}")


def _is_vector(irreps) -> bool:
    return irreps is not None and irreps != "cartesian_points" and o3.Irreps(irreps) == _VECTOR


@torch.no_grad()
def assert_o3_equivariant(
    func: Callable,
    args: Sequence,
    irreps_in: Sequence,
    irreps_out: Sequence,
    dtype: torch.dtype,
    *,
    names: Sequence[str] | None = None,
    reflections: bool = True,
    seed: int = 0,
) -> dict[str, Tensor]:
    """Assert that ``func(*args)`` is O(3)-equivariant (SO(3) only if not ``reflections``).

    A thin layer over ``e3nn.util.test.equivariance_error``: ``irreps_in`` and
    ``irreps_out`` name one irreps per argument and per output (``None`` for an
    argument left alone: times, batch, edge indices), except that ``"1o"`` is a
    Cartesian vector in (x, y, z) order, as the models use, rather than e3nn's
    (y, z, x). e3nn draws one rotation ``R`` and one reflection ``-R``, here from
    the global RNG forked and seeded with ``seed``. Output ``k`` fails if its
    largest error exceeds ``atol + rtol * max|output k|`` of ``tolerance(dtype)``;
    the ``AssertionError`` names the transform ("rotation"/"reflection") and the
    output (``names``). Returns ``{"rotation": errors, "reflection": errors}``,
    one error per output.
    """
    vector_in = [_is_vector(irreps) for irreps in irreps_in]
    vector_out = [_is_vector(irreps) for irreps in irreps_out]

    def as_list(out):
        return [out] if isinstance(out, Tensor) else list(out)

    def func_e3nn(*args_e3nn):
        out = func(*(a[..., _E3NN_TO_XYZ] if v else a for a, v in zip(args_e3nn, vector_in)))
        return [o[..., _XYZ_TO_E3NN] if v else o for o, v in zip(as_list(out), vector_out)]

    args_e3nn = [a[..., _XYZ_TO_E3NN] if v else a for a, v in zip(args, vector_in)]
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        errors = equivariance_error(
            func_e3nn,
            args_e3nn,
            irreps_in=list(irreps_in),
            irreps_out=list(irreps_out),
            do_parity=reflections,
            do_translation=False,
        )
    errors = {("reflection" if parity_k else "rotation"): err for (parity_k, _), err in errors.items()}

    tol = tolerance(dtype)
    bounds = [tol["atol"] + tol["rtol"] * float(out.abs().max()) for out in as_list(func(*args))]
    names = list(names) if names is not None else [f"output {k}" for k in range(len(irreps_out))]
    failures = [
        f"{transform} ({name}): max error {error:.3e} > {bound:.3e}"
        for transform, errs in errors.items()
        for name, error, bound in zip(names, errs.tolist(), bounds)
        if not error <= bound
    ]
    assert not failures, "; ".join(failures)
    return errors


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

    The first two are e3nn's ``equivariance_error`` (via
    :func:`assert_o3_equivariant`, ``pos``/``eps_pos`` as ``1o``, ``h``/``eps_h``
    as ``Fx0e``, ``t`` and ``batch`` untransformed); e3nn translates all points
    by one vector, so the per-graph translation and the permutations are custom.

    The model (if an ``nn.Module``) and inputs are cast to ``dtype`` and the
    model is put in eval mode; inputs may live on any device (the model must
    already be there). Random draws are seeded with ``seed`` (a CPU generator,
    and a fork of the global RNG for e3nn). Raises ``AssertionError`` naming
    the failed check.
    """
    if isinstance(model, torch.nn.Module):
        model = model.to(dtype).eval()
    gen = torch.Generator().manual_seed(seed)
    pos, h, t = pos.to(dtype), h.to(dtype), t.to(dtype)
    tol = tolerance(dtype)
    eps_x, eps_h = model(pos, h, t, batch)

    features = f"{h.shape[1]}x0e"
    assert_o3_equivariant(
        model,
        (pos, h, t, batch),
        ["1o", features, None, None],
        ["1o", features],
        dtype,
        names=("eps_pos", "eps_h"),
        reflections=reflections,
        seed=seed,
    )

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
