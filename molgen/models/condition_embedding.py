"""The map that adds a graph's target properties to its nodes' embedding (conditional models, issue 26)."""

from __future__ import annotations

from torch import Tensor, nn

from molgen.diffusion.conditioning import GraphCondition, condition_features


class ConditionEmbedding(nn.Module):
    """``GraphCondition`` ``[B, P]`` -> ``[N, hidden_dim]`` invariant node features, added to a denoiser's
    node embedding (beside the time).

    A linear map without bias of :func:`~molgen.diffusion.conditioning.condition_features`
    ``[values * mask, mask]``: a dropped property adds exactly 0, so without a condition the
    denoiser is its unconditional self, whatever the weights (the guarantee classifier-free
    guidance and ``init_from`` an unconditional model rely on). The weights start at zero, so
    a conditional model fine-tuned from an unconditional one starts out as it.

    Args:
        num_conditions: ``P``, the properties the model is conditioned on.
        hidden_dim: width of the node embedding.
    """

    def __init__(self, num_conditions: int, hidden_dim: int) -> None:
        super().__init__()
        if num_conditions < 1:
            raise ValueError(f"num_conditions must be >= 1, got {num_conditions}")
        self.num_conditions = num_conditions
        self.linear = nn.Linear(2 * num_conditions, hidden_dim, bias=False)
        nn.init.zeros_(self.linear.weight)

    def forward(self, condition: GraphCondition | None, batch: Tensor, num_graphs: int, like: Tensor) -> Tensor:
        """Node features ``[N, hidden_dim]`` (dtype of ``like``) for nodes of graphs ``batch`` [N]."""
        features = condition_features(condition, num_graphs, self.num_conditions, like)
        return self.linear(features)[batch]


def add_condition(
    embedding: ConditionEmbedding | None,
    hidden: Tensor,
    condition: GraphCondition | None,
    batch: Tensor,
    num_graphs: int,
) -> Tensor:
    """``hidden`` [N, D] plus the embedding of ``condition`` (a denoiser's node embedding); unchanged for a
    denoiser without conditions (``embedding`` None), which refuses a condition (ValueError)."""
    if embedding is None:
        if condition is not None:
            raise ValueError("this denoiser was built without conditions: it takes no condition")
        return hidden
    return hidden + embedding(condition, batch, num_graphs, hidden)
