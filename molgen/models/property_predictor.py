"""E(3)-invariant EGNN regressor of molecular properties (the property predictor of EDM's conditional protocol)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from molgen.graph_batch import graph_sum
from molgen.nn.egnn import EGNNLayer
from molgen.nn.graphs import fully_connected_edges
from molgen.registry import Registry

__all__ = ["PREDICTORS", "PropertyPredictor", "build_predictor"]

#: Property predictors by ``model.name``; ``molgen train`` trains a model named here as a predictor, not a denoiser.
PREDICTORS: Registry[type[nn.Module]] = Registry("property predictor")


@PREDICTORS.register("property_egnn")
class PropertyPredictor(nn.Module):
    """Predicts ``P`` scalar properties of each molecule of a batch from its atoms and coordinates.

    Architecture (EDM's QM9 property classifier, Hoogeboom et al. 2022, after Satorras et al. 2021):
    ``h`` is linearly embedded to ``hidden_dim`` and passed with the coordinates through ``num_layers``
    :class:`~molgen.nn.egnn.EGNNLayer` s with attention, on the fully connected graph of each molecule
    (both directions of every atom pair); every layer also receives the squared input distances as an
    edge feature. The nodes then go through an MLP, are summed per molecule, and a second MLP reads out
    the ``P`` properties. The output is invariant to rotations, reflections and translations of ``pos``
    and to the order of the atoms of a molecule.

    The last layer's coordinate update is never read: its weights (``phi_x``) are frozen at their
    initialisation, so that neither the optimiser nor data-parallel training sees a parameter without
    gradient.

    Args:
        in_node_dim: width ``F`` of the atom features ``h``.
        num_properties: number ``P`` of predicted properties.
        hidden_dim: width of the hidden atom features and messages.
        num_layers: number of EGNN layers (at least 1).
        attention: gate messages with a learned sigmoid attention.
        aggregation: ``"sum"`` or ``"mean"`` neighbour aggregation.
        normalization_factor: divisor of the ``"sum"`` aggregation.
        tanh: bound per-edge coordinate steps by ``coords_range * tanh``.
        coords_range: bound used with ``tanh``, in Å.
        norm_constant: added to distances (Å) in the coordinate-update direction.
        input_noise: standard deviation (Å) of Gaussian noise added to the coordinates in training only
            (a regulariser, like dropout): a predictor used to guide sampling (docs/conditioning.md,
            "Property guidance") then has smooth gradients on slightly imperfect geometry. 0: none (EDM's).
    """

    def __init__(
        self,
        in_node_dim: int,
        num_properties: int,
        hidden_dim: int = 128,
        num_layers: int = 7,
        attention: bool = True,
        aggregation: str = "sum",
        normalization_factor: float = 1.0,
        tanh: bool = True,
        coords_range: float = 15.0,
        norm_constant: float = 1.0,
        input_noise: float = 0.0,
    ) -> None:
        if num_layers < 1:
            raise ValueError(f"a property predictor needs at least one layer, got num_layers={num_layers}")
        if input_noise < 0:
            raise ValueError(f"input_noise is a standard deviation in Å, got {input_noise}")
        super().__init__()
        self.input_noise = float(input_noise)
        self.embedding = nn.Linear(in_node_dim, hidden_dim)
        self.layers = nn.ModuleList(
            EGNNLayer(
                hidden_dim,
                edge_attr_dim=1,
                attention=attention,
                aggregation=aggregation,
                normalization_factor=normalization_factor,
                norm_constant=norm_constant,
                tanh=tanh,
                coords_range=coords_range,
            )
            for _ in range(num_layers)
        )
        self.layers[-1].phi_x.requires_grad_(False)
        self.node_readout = _mlp(hidden_dim, hidden_dim)
        self.graph_readout = _mlp(hidden_dim, num_properties)

    def forward(self, pos: Tensor, h: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        """Predict the properties of each molecule.

        Args:
            pos: ``[N, 3]`` atom coordinates in Å (any origin: the output does not depend on it).
            h: ``[N, F]`` atom features (:meth:`molgen.molecules.featurize.AtomFeaturizer.encode`).
            batch: ``LongTensor[N]`` sorted molecule index of each atom.
            num_graphs: number ``B`` of molecules.

        Returns:
            ``[B, P]`` properties in normalised units (``(value - mean) / std`` of the training data).
        """
        if self.training and self.input_noise > 0:
            pos = pos + self.input_noise * torch.randn_like(pos)
        edge_index = fully_connected_edges(batch)
        source, target = edge_index
        distances = (pos[target] - pos[source]).square().sum(dim=-1, keepdim=True)  # [E, 1] Å²
        x, hidden = pos, self.embedding(h)
        for layer in self.layers:
            x, hidden = layer(x, hidden, edge_index, distances)
        return self.graph_readout(graph_sum(self.node_readout(hidden), batch, num_graphs))


def _mlp(hidden_dim: int, out_dim: int) -> nn.Sequential:
    """``Linear(hidden_dim, hidden_dim)``, SiLU, ``Linear(hidden_dim, out_dim)``."""
    return nn.Sequential(nn.Linear(hidden_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, out_dim))


def build_predictor(model: dict, dataset_info: dict) -> nn.Module:
    """The predictor of the ``model`` config (``name`` plus constructor options), sized by the data.

    Args:
        model: ``{"name": ..., **options}``, ``name`` in :data:`PREDICTORS`.
        dataset_info: the data's :meth:`~molgen.dataset_info.DatasetInfo.to_dict`; ``num_features``
            gives ``F`` and ``conditions["names"]`` the ``P`` predicted properties.

    Raises:
        ValueError: the data has no conditions, or the name is not a predictor's (one line).
    """
    conditions = dataset_info.get("conditions") or {}
    if not conditions.get("names"):
        raise ValueError(
            "a property predictor is trained on data with property values: set data.conditions "
            "(e.g. experiment=qm9_property, data.conditions=[alpha,gap,homo,lumo,mu,Cv])"
        )
    options = dict(model)
    cls = PREDICTORS[options.pop("name", None)]
    return cls(in_node_dim=int(dataset_info["num_features"]), num_properties=len(conditions["names"]), **options)
