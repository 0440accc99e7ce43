import io

import pytest
import torch

from molgen.molecules.featurize import AtomFeaturizer, atomic_number, element_symbol


def test_encode_layout_and_scaling():
    f = AtomFeaturizer()
    h = f.encode(torch.tensor([6, 1, 9]))
    assert f.num_features == 6
    assert h.shape == (3, 6) and h.dtype == torch.float32
    torch.testing.assert_close(h[0], torch.tensor([0.0, 0.25, 0.0, 0.0, 0.0, 0.6]))
    torch.testing.assert_close(h[2, -1], torch.tensor(0.9))


def test_encode_decode_roundtrip():
    f = AtomFeaturizer()
    z = torch.tensor([1, 6, 7, 8, 9, 6, 1])
    assert torch.equal(f.decode(f.encode(z)), z)
    # Decoding noisy features still picks the largest one-hot entry.
    noise = torch.randn(len(z), f.num_features, generator=torch.Generator().manual_seed(0))
    noisy = f.encode(z) + 0.05 * noise
    assert torch.equal(f.decode(noisy), z)


def test_unknown_element_is_named():
    with pytest.raises(ValueError, match="Cl"):
        AtomFeaturizer().encode(torch.tensor([6, 17]))


def test_bad_inputs():
    f = AtomFeaturizer()
    with pytest.raises(ValueError, match="integer"):
        f.encode(torch.tensor([6.0]))
    with pytest.raises(ValueError, match="shape"):
        f.decode(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="unknown element symbol"):
        AtomFeaturizer(atom_types=("C", "Xx"))
    with pytest.raises(ValueError, match="duplicates"):
        AtomFeaturizer(atom_types=("C", "C"))


def test_custom_types_without_hydrogen():
    f = AtomFeaturizer(atom_types=["C", "N", "O", "F"])
    assert f.atom_types == ("C", "N", "O", "F") and f.num_features == 5
    with pytest.raises(ValueError, match="'H'"):
        f.encode(torch.tensor([1]))


def test_dict_roundtrip_through_weights_only_checkpoint():
    f = AtomFeaturizer(atom_types=("C", "N", "O"), one_hot_scale=1.0, charge_scale=0.5)
    buffer = io.BytesIO()
    torch.save({"featurizer": f.to_dict()}, buffer)
    buffer.seek(0)
    restored = AtomFeaturizer.from_dict(torch.load(buffer, weights_only=True)["featurizer"])
    assert restored == f
    with pytest.raises(ValueError, match="keys"):
        AtomFeaturizer.from_dict({"atom_types": ["C"]})


def test_symbol_helpers():
    assert atomic_number("O") == 8 and element_symbol(9) == "F"
    with pytest.raises(ValueError):
        element_symbol(0)
