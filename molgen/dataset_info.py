"""What a trained model keeps of its training data: the typed contract between training and sampling.

A data builder returns a :class:`DatasetInfo` of its domain; training stores
it in the checkpoint as a plain dict (:meth:`DatasetInfo.to_dict`, so
checkpoints load with ``torch.load(weights_only=True)``), and sampling reads it
back with :func:`dataset_info_from_dict`, which also migrates the dicts of
older checkpoints and model cards (version 1: no ``version`` key, domain
``backbone``, ``num_atoms_histogram`` / ``num_residues_histogram``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

#: The secondary-structure states a fold-conditioned backbone model is conditioned on, in the order of its label
#: classes: helix, strand, coil (:mod:`molgen.proteins.secondary_structure`, which parses and computes them).
SECONDARY_STRUCTURE_STATES = "HE-"

__all__ = ["BackboneInfo", "DatasetInfo", "MoleculeInfo", "dataset_info_from_dict"]

VERSION = 2
"""Version of the dict layout :meth:`DatasetInfo.to_dict` writes."""


@dataclass(frozen=True)
class DatasetInfo:
    """Fields every domain has.

    Attributes:
        dataset: name of the training data (e.g. ``qm9``, a structure folder's name).
        num_features: width ``F`` of the continuous node features the denoiser takes.
        size_histogram: ``size_histogram[n]`` training samples of size ``n``, in the
            domain's unit of size (atoms per molecule, residues per backbone).
    """

    domain: ClassVar[str]
    dataset: str
    num_features: int
    size_histogram: list[int]

    @property
    def num_node_labels(self) -> int:
        """Per-node label classes the model is conditioned on (none here)."""
        return 0

    @property
    def labels_in_features(self) -> bool:
        """Whether the labels are the last channels of ``h`` rather than the state's ``node_labels``."""
        return False

    @property
    def position_dims(self) -> int:
        """Dimensions of each node's diffused coordinates: 3 (space)."""
        return 3

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for checkpoints and model cards (with ``version`` and ``domain``)."""
        return {"version": VERSION, "domain": self.domain, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class MoleculeInfo(DatasetInfo):
    """Molecules: how node features decode to atoms, and the categorical channels of bond models.

    Attributes:
        featurizer: :meth:`molgen.molecules.featurize.AtomFeaturizer.to_dict`.
        remove_h: whether hydrogens were left out.
        categorical: bond models only: ``{"node": [channel, ...], "edge": channel}``, each
            channel ``{"name", "classes", "marginals"}``; None for coordinate-and-type models.
        num_dropped: molecules the data builder dropped, per split (bond models).
        conditions: property-conditioned models only: the training statistics of the properties
            (:func:`molgen.targets.conditions_info`); None for unconditional models.
    """

    domain: ClassVar[str] = "molecules"
    featurizer: dict[str, Any]
    remove_h: bool = False
    categorical: dict[str, Any] | None = None
    num_dropped: dict[str, int] | None = None
    conditions: dict[str, Any] | None = None


@dataclass(frozen=True)
class BackboneInfo(DatasetInfo):
    """Protein backbones: node atom types per residue and the coordinate unit.

    Attributes:
        atom_types: the backbone atoms of each residue, in node order (N, CA, C, O).
        length_scale: Å per model unit of coordinates.
        max_length: longest training crop, in residues.
        node_vectors: residue-level models with vector features: the atoms each node (at its CA)
            carries as offsets from the CA (``["N", "C", "O"]``), in ``h``; None otherwise.
        vector_scale: Å per unit of those offsets.
        secondary_structure: the last three channels of ``h`` are per-residue secondary-structure
            labels the model is conditioned on (:mod:`molgen.proteins.secondary_structure`).
        internal_coordinates: one node per residue without coordinates; ``h`` holds the CA trace's virtual
            bond angle and torsion features (:mod:`molgen.proteins.internal_coordinates`).
    """

    domain: ClassVar[str] = "backbones"
    atom_types: list[str]
    length_scale: float
    max_length: int | None = None
    node_vectors: list[str] | None = None
    vector_scale: float = 1.0
    secondary_structure: bool = False
    internal_coordinates: bool = False

    @property
    def num_node_labels(self) -> int:
        """With ``secondary_structure``, the label classes of each residue (helix, strand, coil): the channels
        of ``h`` after the atom types, or, for internal coordinates (whose ``h`` is diffused), the classes of the
        state's ``node_labels``."""
        if not self.secondary_structure:
            return 0
        return (
            len(SECONDARY_STRUCTURE_STATES) if self.internal_coordinates else self.num_features - len(self.atom_types)
        )

    @property
    def labels_in_features(self) -> bool:
        """Whether the labels are channels of ``h`` (clean conditioning features) rather than ``node_labels``."""
        return self.secondary_structure and not self.internal_coordinates

    @property
    def position_dims(self) -> int:
        """0 for a model of internal coordinates (no node coordinates), else 3."""
        return 0 if self.internal_coordinates else 3


_TYPES: dict[str, type[DatasetInfo]] = {cls.domain: cls for cls in (MoleculeInfo, BackboneInfo)}


def _migrate(data: dict[str, Any]) -> dict[str, Any]:
    """A version-1 dict (before typed infos) in the version-2 layout."""
    data = dict(data)
    data.setdefault("domain", "molecules")  # the first checkpoints were all molecules
    if data["domain"] == "backbone":
        data["domain"] = "backbones"
    for old in ("num_atoms_histogram", "num_residues_histogram"):
        if old in data:
            data["size_histogram"] = data.pop(old)
    data["version"] = VERSION
    return data


def dataset_info_from_dict(data: dict[str, Any]) -> DatasetInfo:
    """The typed info of a checkpoint's or model card's dict, migrated from older layouts.

    Raises:
        ValueError: unknown domain or version, or keys that do not fit the domain's info
            (one line naming them).
    """
    if not isinstance(data, dict):
        raise ValueError(f"dataset_info must be a dict, got {type(data).__name__}")
    version = data.get("version", 1)
    if version == 1:
        data = _migrate(data)
    elif version != VERSION:
        raise ValueError(f"dataset_info version {version} is newer than this molgen reads ({VERSION}); upgrade molgen")
    fields = {k: v for k, v in data.items() if k not in ("version", "domain")}
    cls = _TYPES.get(data["domain"])
    if cls is None:
        raise ValueError(f"unknown dataset_info domain {data['domain']!r}; known: {sorted(_TYPES)}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(fields) - names)
    missing = sorted(
        f.name for f in dataclasses.fields(cls) if f.name not in fields and f.default is dataclasses.MISSING
    )
    if unknown or missing:
        raise ValueError(f"dataset_info does not fit domain {cls.domain!r}: unknown keys {unknown}, missing {missing}")
    return cls(**fields)
