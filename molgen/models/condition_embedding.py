"""The map that adds a graph's target properties to its nodes' embedding (conditional models, issue 26)."""

from __future__ import annotations

from torch import Tensor, nn

from molgen.diffusion.conditioning import GraphCondition, condition_features


class ConditionEmbedding(nn.Module):
    """``GraphCondition`` ``[B, P]`` -> ``[N, hidden_dim]`` invariant node features, added to a denoiser's
    node embedding (beside the time), and optionally ``[N, num_layers, hidden_dim]`` more, one added to the
    node features before each of the denoiser's layers (:meth:`per_layer`).

    A linear map without bias of :func:`~molgen.diffusion.conditioning.condition_features`
    ``[values * mask, mask]``: a dropped property adds exactly 0, so without a condition the
    denoiser is its unconditional self, whatever the weights (the guarantee classifier-free
    guidance and ``init_from`` an unconditional model rely on). The weights start at zero, so
    a conditional model fine-tuned from an unconditional one starts out as it. The same holds for the
    per-layer maps, so a model conditioned at its input only loads into one conditioned at every layer
    (``init_from``) and starts out as itself.

    Why every layer: added once to the input embedding, the condition has to survive every layer's
    residual updates to reach the output; EDM's conditional models were trained from scratch for
    thousands of epochs, a CPU budget fine-tunes (docs/conditioning.md).

    Args:
        num_conditions: ``P``, the properties the model is conditioned on.
        hidden_dim: width of the node embedding.
        num_layers: per-layer maps (0: the input embedding only).
    """

    def __init__(self, num_conditions: int, hidden_dim: int, num_layers: int = 0) -> None:
        super().__init__()
        if num_conditions < 1:
            raise ValueError(f"num_conditions must be >= 1, got {num_conditions}")
        self.num_conditions, self.num_layers = num_conditions, num_layers
        self.linear = nn.Linear(2 * num_conditions, hidden_dim, bias=False)
        nn.init.zeros_(self.linear.weight)
        # All layers' maps as one matrix: one product per call.
        self.layer_linear = nn.Linear(2 * num_conditions, num_layers * hidden_dim, bias=False) if num_layers else None
        if self.layer_linear is not None:
            nn.init.zeros_(self.layer_linear.weight)

    def forward(self, condition: GraphCondition | None, batch: Tensor, num_graphs: int, like: Tensor) -> Tensor:
        """Node features ``[N, hidden_dim]`` (dtype of ``like``) for nodes of graphs ``batch`` [N]."""
        features = condition_features(condition, num_graphs, self.num_conditions, like)
        return self.linear(features)[batch]

    def per_layer(
        self, condition: GraphCondition | None, batch: Tensor, num_graphs: int, like: Tensor
    ) -> Tensor | None:
        """Node features ``[N, num_layers, hidden_dim]`` to add before each layer; None without per-layer maps."""
        if self.layer_linear is None:
            return None
        features = condition_features(condition, num_graphs, self.num_conditions, like)
        return self.layer_linear(features).unflatten(-1, (self.num_layers, -1))[batch]


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


def layer_conditions(
    embedding: ConditionEmbedding | None,
    condition: GraphCondition | None,
    batch: Tensor,
    num_graphs: int,
    like: Tensor,
) -> Tensor | None:
    """The per-layer condition features ``[N, num_layers, D]`` of a denoiser's embedding, or None (no
    conditions, or conditioned at the input only)."""
    return None if embedding is None else embedding.per_layer(condition, batch, num_graphs, like)
