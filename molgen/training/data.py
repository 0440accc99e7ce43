"""LightningDataModule over graph datasets, and the data configs that build them."""

from __future__ import annotations

import lightning as L
from torch.utils.data import Dataset
from torch_geometric.loader import DataLoader


class GraphDataModule(L.LightningDataModule):
    """Batches ``torch_geometric.data.Data`` graphs in the sparse PyG layout.

    Args:
        train: training dataset; items have ``pos`` [n, 3], ``h`` [n, F].
        val: validation dataset.
        dataset_info: plain-typed dict saved with the model (feature width,
            decoding, node-count histogram); see the domain that builds it.
    """

    def __init__(self, train: Dataset, val: Dataset, dataset_info: dict, batch_size: int = 64, num_workers: int = 0):
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {batch_size}")
        self.train, self.val, self.dataset_info = train, val, dataset_info
        self.batch_size, self.num_workers = batch_size, num_workers

    def train_dataloader(self):
        return DataLoader(
            self.train,
            batch_size=self.batch_size,
            shuffle=True,
            drop_last=len(self.train) > self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def val_dataloader(self):
        return DataLoader(
            self.val, batch_size=self.batch_size, num_workers=self.num_workers, persistent_workers=self.num_workers > 0
        )


def build_datamodule(config: dict) -> GraphDataModule:
    """Build the data module named by ``config["name"]`` (``qm9``)."""
    config = dict(config)
    name = config.pop("name")
    batch_size, num_workers = config.pop("batch_size"), config.pop("num_workers")
    if name == "qm9":
        from molgen.molecules.qm9 import qm9_train_val

        train, val, info = qm9_train_val(**config)
    elif name == "qm9_bonds":  # QM9 with perceived bonds and charges, for joint models (docs/bonds.md)
        from molgen.molecules.qm9_bonds import qm9_bonds_train_val

        train, val, info = qm9_bonds_train_val(**config)
    elif name == "backbone":
        from molgen.proteins.dataset import backbone_train_val

        if config.get("root") is None:
            raise ValueError("the backbone dataset needs a folder of structure files: set data.root=...")
        train, val, info = backbone_train_val(**config)
    else:
        raise ValueError(f"unknown dataset {name!r}; available: qm9, qm9_bonds, backbone")
    return GraphDataModule(train, val, info, batch_size=batch_size, num_workers=num_workers)
