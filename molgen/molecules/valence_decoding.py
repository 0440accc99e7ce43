"""Valence-constrained decoding: the final bonds of a bond model, with no atom above its largest valence.

A joint model draws its final bond orders independently per atom pair from its predicted clean
classes, so an atom can end with more bonds than its element allows (over-valent: the most common
reason a drug-like sample fails RDKit sanitisation, docs/druglike.md). Under this constraint the
final draw is repaired greedily: while an atom's bond-order sum exceeds the largest valence of its
element and formal charge (:data:`~molgen.molecules.metrics.graph_stability.CHARGED_VALENCES`,
without hydrogens: those are placed at export), lower by one the order of the bond whose lowering
costs the least model log-likelihood, ``log p(order) - log p(order - 1)`` under the predicted clean
bond distribution, among the bonds of over-valent atoms. Each lowering removes one unit of excess,
so it stops after at most the total excess; a bond lowered to order 0 disconnects, which the
model's probabilities make the last resort. Elements and charges are kept as drawn; an atom left
with fewer bonds than its valence gets hydrogens at export, as any sample does.

This is a decoding of the model's own distribution (the most likely assignment reachable from the
drawn one by lowering orders), in the spirit of the valency corrections of graph generators; the
model card states which figures use it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from molgen.molecules.metrics.graph_stability import CHARGED_VALENCES

__all__ = ["ValenceConstraint", "max_valence"]

#: Valence cap of an element missing from :data:`CHARGED_VALENCES`: no constraint.
UNCONSTRAINED = 1_000


def max_valence(symbol: str, charge: int) -> int:
    """The largest bond-order sum (hydrogens included) allowed for ``symbol`` with formal ``charge``;
    a charge the table lacks falls back to the neutral element's, an element it lacks to no cap."""
    allowed = CHARGED_VALENCES.get((symbol, charge)) or CHARGED_VALENCES.get((symbol, 0))
    return max(allowed) if allowed else UNCONSTRAINED


class ValenceConstraint:
    """The final-bond constraint of a molecule model's classes (a :class:`~molgen.diffusion.process.ClassConstraint`).

    Args:
        element_symbols: the element of each class of the atom-type channel.
        charge_values: the formal charge of each class of the charge channel.
        bond_orders: the bond order of each edge class (class 0: no bond, order 0).
        atom_column, charge_column: the columns of those channels in ``node_classes``.
    """

    def __init__(
        self,
        element_symbols: Sequence[str],
        charge_values: Sequence[int],
        bond_orders: Sequence[int],
        atom_column: int,
        charge_column: int,
    ) -> None:
        orders = [int(order) for order in bond_orders]
        if sorted(orders) != list(range(len(orders))):
            raise ValueError(f"bond classes must have the orders 0, 1, ..., K-1 in some order, got {orders}")
        # [A, Q]: the cap of each (atom-type class, charge class)
        self.caps = torch.tensor([[max_valence(e, int(q)) for q in charge_values] for e in element_symbols])
        self.orders = torch.tensor(orders)
        self.lower = torch.tensor([orders.index(order - 1) if order else -1 for order in orders])
        self.atom_column, self.charge_column = atom_column, charge_column

    def __call__(
        self,
        node_classes: Tensor,
        pair_index: Tensor,
        edge_classes: Tensor,
        edge_log_probs: Tensor,
        frozen: Tensor | None = None,
    ) -> Tensor:
        """The drawn ``edge_classes`` [P] with over-valent atoms repaired (see the module docstring): [P] long.

        Args:
            node_classes: [N, C] long, the drawn node classes.
            pair_index: [2, P] long, the node pairs of the edge classes.
            edge_classes: [P] long, the drawn bond classes.
            edge_log_probs: [P, K] the predicted clean bond-class log-probabilities.
            frozen: [P] bool, bonds never lowered (a fixed part's), or None. An atom whose excess only
                frozen bonds could remove stays over-valent.
        """
        device = edge_classes.device
        caps = self.caps.to(device)[node_classes[:, self.atom_column], node_classes[:, self.charge_column]]
        orders, lower = self.orders.to(device), self.lower.to(device)
        edge_classes = edge_classes.clone()
        first, second = pair_index
        cost_of_lowering = edge_log_probs - edge_log_probs[:, lower.clamp(min=0)]  # [P, K]: from class k to k-1
        while True:
            order = orders[edge_classes]
            valence = torch.zeros_like(caps).index_add_(0, first, order).index_add_(0, second, order)
            over = valence > caps
            if not over.any():
                return edge_classes
            candidate = (order > 0) & (over[first] | over[second])
            if frozen is not None:
                candidate &= ~frozen
            if not candidate.any():
                return edge_classes
            cost = cost_of_lowering.gather(1, edge_classes[:, None]).squeeze(1)
            cost = torch.where(candidate, cost, torch.full_like(cost, float("inf")))
            pair = int(cost.argmin())
            edge_classes[pair] = lower[edge_classes[pair]]
