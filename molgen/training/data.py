"""LightningDataModule over graph datasets, and the data configs that build them."""

from __future__ import annotations

import lightning as L
from torch.utils.data import Dataset
from torch_geometric.loader import DataLoader

from molgen.dataset_info import DatasetInfo
from molgen.domains import dataset_domain


class GraphDataModule(L.LightningDataModule):
    """Batches ``torch_geometric.data.Data`` graphs in the sparse PyG layout.

    Args:
        train: training dataset; items have ``pos`` [n, 3], ``h`` [n, F].
        val: validation dataset.
        dataset_info: what the model keeps of the data (feature width, decoding,
            size histogram); see the domain that builds it.
    """

    def __init__(
        self, train: Dataset, val: Dataset, dataset_info: DatasetInfo, batch_size: int = 64, num_workers: int = 0
    ):
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
    """Build the data module of the data config ``config`` (``name`` picks the dataset and its domain)."""
    config = dict(config)
    name = config.pop("name")
    batch_size, num_workers = config.pop("batch_size"), config.pop("num_workers")
    train, val, info = dataset_domain(name).build_data(name, **config)
    return GraphDataModule(train, val, info, batch_size=batch_size, num_workers=num_workers)
