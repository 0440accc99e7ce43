"""EGNNVectorDenoiser: E(3) equivariance of positions and vector features, permutations, and the residue-level
backbone with vector features end to end (dataset item -> decode, sampling)."""

import numpy as np
import pytest
import torch

from molgen.diffusion.process import GraphState
from molgen.domains.backbones import BackboneDomain, motif_offsets
from molgen.models.egnn_vectors import EGNNVectorDenoiser
from molgen.proteins.dataset import BackboneDataset
from molgen.proteins.geometry import ideal_helix, ideal_strand
from molgen.proteins.motif import Motif, MotifPlacement
from tests.equivariance_utils import permute_within_graphs, random_rotation, tolerance

SIZES = [7, 5, 9]


def make(seed=0, graph="knn+chain"):
    torch.manual_seed(seed)
    model = EGNNVectorDenoiser(
        9, hidden_dim=16, num_layers=2, graph=graph, knn_k=4, chain_window=1, max_residue_offset=4, distance_rbf=4
    ).double()
    with torch.no_grad():  # EDM's tiny coordinate-head gain would make the position checks vacuous
        for layer in model.layers:
            layer.phi_x[-1].weight.mul_(100.0)
    return model.eval()


def inputs(seed=0):
    gen = torch.Generator().manual_seed(seed)
    batch = torch.repeat_interleave(torch.arange(len(SIZES)), torch.tensor(SIZES))
    n = batch.numel()
    return (
        torch.randn(n, 3, generator=gen, dtype=torch.float64),
        torch.randn(n, 9, generator=gen, dtype=torch.float64),
        torch.rand(len(SIZES), generator=gen, dtype=torch.float64),
        batch,
    )


def rotate_vectors(h, rotation):
    return (h.reshape(-1, 3, 3) @ rotation.T).reshape(h.shape)


@pytest.mark.parametrize("reflect", [False, True])
def test_positions_and_vectors_rotate_with_the_input_in_float64(reflect):
    model, (pos, h, t, batch) = make(), inputs()
    tol = tolerance(torch.float64)
    eps_pos, eps_h = model(pos, h, t, batch)
    assert eps_pos.abs().max() > 1e-2 and eps_h.abs().max() > 1e-2, "outputs barely move: the test would be vacuous"
    rotation = random_rotation(torch.float64, reflect=reflect, generator=torch.Generator().manual_seed(1))
    shift = 3.0 * torch.randn(len(SIZES), 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    out_pos, out_h = model(pos @ rotation.T + shift[batch], rotate_vectors(h, rotation), t, batch)
    torch.testing.assert_close(out_pos, eps_pos @ rotation.T, **tol)
    torch.testing.assert_close(out_h, rotate_vectors(eps_h, rotation), **tol)


def test_permuting_nodes_within_graphs_permutes_the_outputs_on_a_full_graph():
    model, (pos, h, t, batch) = make(graph="full"), inputs()
    perm = permute_within_graphs(batch, generator=torch.Generator().manual_seed(0))
    eps_pos, eps_h = model(pos, h, t, batch)
    out_pos, out_h = model(pos[perm], h[perm], t, batch[perm])
    torch.testing.assert_close(out_pos, eps_pos[perm], **tolerance(torch.float64))
    torch.testing.assert_close(out_h, eps_h[perm], **tolerance(torch.float64))


def test_refuses_features_that_are_not_vectors():
    with pytest.raises(ValueError, match="3 per vector"):
        EGNNVectorDenoiser(8)


def test_an_item_decodes_back_to_its_backbone_and_motifs_give_their_offsets():
    coords = np.concatenate([ideal_helix(12), ideal_strand(9) + [0.0, 30.0, 0.0]])
    dataset = BackboneDataset(
        torch.as_tensor(coords), torch.tensor([0, 12, 21]), ["h", "s"], atoms=["CA"], node_vectors=["N", "C", "O"]
    )
    from molgen.dataset_info import BackboneInfo

    info = BackboneInfo("tiny", 9, [0] * 13, ["CA"], 10.0, node_vectors=["N", "C", "O"], vector_scale=2.0)
    item = dataset[0]
    assert item.pos.shape == (12, 3) and item.h.shape == (12, 9)
    state = GraphState(item.pos.double(), item.h.double(), torch.zeros(12, dtype=torch.long), 1)
    decoded = BackboneDomain().decode(info, state)[0]
    helix = coords[:12] - coords[:12, 1].mean(axis=0)
    np.testing.assert_allclose(decoded, helix, atol=1e-4)
    assert BackboneDomain().condition(info, torch.tensor([12])) is None

    motif = Motif((coords[:4],), ("A1-4",))
    offsets = motif_offsets(MotifPlacement(motif, lengths=(8,), starts=((2,),)), 0, info)
    np.testing.assert_allclose(offsets[2:6], item.h[:4].double().numpy(), atol=1e-5)
    assert not offsets[[0, 1, 6, 7]].any()
    with pytest.raises(ValueError, match="node_vectors"):
        BackboneDataset(torch.as_tensor(coords), torch.tensor([0, 21]), ["x"], node_vectors=["N", "C", "O"])
