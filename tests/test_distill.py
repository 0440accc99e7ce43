"""`molgen train experiment=distill`: the student module, its configs and checks, and the run end to end."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf
from rdkit import Chem

from molgen.checkpoint_files import CheckpointError
from molgen.dataset_info import MoleculeInfo
from molgen.diffusion.distillation import ConsistencyDistillation, ProgressiveDistillation
from molgen.diffusion.prediction import JointVelocityDenoiser
from molgen.training.module import DiffusionModule, check_resumable
from molgen.training.train import teacher_configs
from tests.joint_helpers import JOINT_DIFFUSION, TINY_JOINT_MODEL, joint_dataset_info, save_tiny_joint_checkpoint

DISTILL = {"solver_steps": 10, "grid": "time", "target_decay": 0.95, "snr_floor": 0.0}


def student_module(teacher, **changes) -> DiffusionModule:
    configs = {"model": TINY_JOINT_MODEL, "diffusion": JOINT_DIFFUSION, "dataset_info": joint_dataset_info().to_dict()}
    return DiffusionModule(optim={"lr": 1e-3}, distill={"teacher": str(teacher), **DISTILL}, **{**configs, **changes})


def test_the_student_starts_from_its_teacher_and_only_it_is_trained(tmp_path):
    teacher = save_tiny_joint_checkpoint(tmp_path / "teacher.ckpt", seed=3)
    module = student_module(teacher)
    assert isinstance(module.diffusion, ConsistencyDistillation)
    weights = torch.load(teacher, weights_only=True)["state_dict"]
    for name, value in module.denoiser.state_dict().items():
        assert torch.equal(value, weights[f"denoiser.{name}"])
        assert torch.equal(module.diffusion.target.state_dict()[name], value)
    trained = {id(p) for group in module.configure_optimizers().param_groups for p in group["params"]}
    assert trained == {id(p) for p in module.denoiser.parameters()}
    with pytest.raises(ValueError, match=r"keeps its teacher's model, diffusion \(but for distill.prediction\)"):
        student_module(teacher, model={**TINY_JOINT_MODEL, "hidden_dim": 8})
    with pytest.raises(CheckpointError, match="teacher='nowhere.ckpt' is neither a checkpoint file nor a shipped"):
        student_module("nowhere.ckpt")


def test_a_velocity_student_takes_the_eps_teachers_weights_and_the_teacher_keeps_predicting_eps(tmp_path):
    teacher = save_tiny_joint_checkpoint(tmp_path / "teacher.ckpt", seed=3)
    v_diffusion = {**JOINT_DIFFUSION, "prediction": "v"}
    distill = {"teacher": str(teacher), **DISTILL, "method": "progressive", "prediction": "v"}
    configs = {"model": TINY_JOINT_MODEL, "dataset_info": joint_dataset_info().to_dict()}
    module = DiffusionModule(optim={"lr": 1e-3}, distill=distill, diffusion=v_diffusion, **configs)
    assert isinstance(module.denoiser, JointVelocityDenoiser) and module.diffusion.process.prediction == "v"
    assert not isinstance(module.diffusion.teacher, JointVelocityDenoiser)
    weights = torch.load(teacher, weights_only=True)["state_dict"]
    for name, value in module.denoiser.net.state_dict().items():
        assert torch.equal(value, weights[f"denoiser.{name}"])
        assert torch.equal(module.diffusion.teacher.state_dict()[name], value)
    # the student's diffusion must be the teacher's with the requested prediction, no other change
    with pytest.raises(ValueError, match="but for distill.prediction"):
        DiffusionModule(optim={"lr": 1e-3}, distill=distill, diffusion=JOINT_DIFFUSION, **configs)

    cfg = OmegaConf.create(
        {"teacher": str(teacher), "init_from": None, "data": {"name": "qm9_bonds"}}
        | {"distill": {**DISTILL, "prediction": "v"}, "model": {}, "diffusion": {}}
    )
    assert teacher_configs(cfg, joint_dataset_info())["diffusion"] == v_diffusion
    assert OmegaConf.to_container(cfg.diffusion) == v_diffusion


def test_the_method_chooses_the_objective(tmp_path):
    teacher = save_tiny_joint_checkpoint(tmp_path / "teacher.ckpt", seed=3)
    configs = {"model": TINY_JOINT_MODEL, "diffusion": JOINT_DIFFUSION, "dataset_info": joint_dataset_info().to_dict()}

    def module(method):
        distill = {"teacher": str(teacher), **DISTILL, "method": method}
        return DiffusionModule(optim={"lr": 1e-3}, distill=distill, **configs)

    progressive = module("progressive").diffusion
    assert (
        isinstance(progressive, ProgressiveDistillation) and progressive.solver.num_steps == 2 * DISTILL["solver_steps"]
    )
    assert isinstance(module("consistency").diffusion, ConsistencyDistillation)
    with pytest.raises(ValueError, match="distill.method must be one of"):
        module("magic")


def test_resuming_refuses_another_distillation():
    saved = {"model": TINY_JOINT_MODEL, "diffusion": JOINT_DIFFUSION, "distill": {"teacher": "qm9", **DISTILL}}
    check_resumable(saved, TINY_JOINT_MODEL, JOINT_DIFFUSION, distill={"teacher": "qm9", **DISTILL})
    with pytest.raises(ValueError, match="distill.teacher='qm9' there, 'other.ckpt' here"):
        check_resumable(saved, TINY_JOINT_MODEL, JOINT_DIFFUSION, distill={"teacher": "other.ckpt", **DISTILL})
    with pytest.raises(ValueError, match="distill.teacher='qm9' there, unset here"):
        check_resumable(saved, TINY_JOINT_MODEL, JOINT_DIFFUSION)


def test_teacher_configs_take_the_teachers_and_check_the_data(tmp_path):
    teacher = save_tiny_joint_checkpoint(tmp_path / "teacher.ckpt")
    cfg = OmegaConf.create(
        {"teacher": str(teacher), "init_from": None, "data": {"name": "qm9_bonds"}, "distill": DISTILL}
        | {"model": {"name": "egnn_bonds", "hidden_dim": 256}, "diffusion": {"kind": "joint"}}
    )
    # the data's statistics (histogram, marginals) may differ from the teacher's; what a node means may not
    data = MoleculeInfo(**{**vars(joint_dataset_info()), "size_histogram": [0, 1], "dataset": "subset"})
    configs = teacher_configs(cfg, data)
    assert configs["model"] == TINY_JOINT_MODEL and configs["dataset_info"] == joint_dataset_info().to_dict()
    assert configs["distill"] == {"teacher": str(teacher), **DISTILL}
    assert OmegaConf.to_container(cfg.model) == TINY_JOINT_MODEL  # what config_resolved.yaml records
    coordinates_only = MoleculeInfo(**{**vars(joint_dataset_info()), "categorical": None})
    with pytest.raises(ValueError, match="nodes and pairs mean something else"):
        teacher_configs(cfg, coordinates_only)
    cfg.init_from = str(teacher)
    with pytest.raises(ValueError, match="teacher and init_from exclude each other"):
        teacher_configs(cfg, data)


def molgen(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "molgen.cli", *args], capture_output=True, text=True)


@pytest.mark.slow
def test_distil_resume_and_sample_with_the_consistency_sampler_end_to_end(tmp_path):
    """Real configs and a QM9 subset (the bonds cache is built on first use, ~1-2 min): a tiny teacher made in
    code, `molgen train experiment=distill`, a resumed run, then 2-call consistency sampling of the student."""
    teacher, run_dir = save_tiny_joint_checkpoint(tmp_path / "teacher.ckpt"), tmp_path / "run"
    common = [
        "train", "experiment=distill", f"teacher={teacher}", "data.subset=64", "data.val_subset=32",
        "data.batch_size=16", "distill.solver_steps=10", "trainer.val_check_interval=2",
        "trainer.checkpoint_every_n_steps=2", "trainer.progress_bar=false", f"hydra.run.dir={run_dir}",
    ]  # fmt: skip
    first = molgen(*common, "trainer.max_steps=4")
    assert first.returncode == 0, first.stderr[-3000:]
    last = run_dir / "checkpoints" / "last.ckpt"
    hparams = torch.load(last, weights_only=True)["hyper_parameters"]
    assert hparams["model"] == TINY_JOINT_MODEL and hparams["dataset_info"] == joint_dataset_info().to_dict()
    assert hparams["distill"]["teacher"] == str(teacher)

    second = molgen(*common, "trainer.max_steps=6")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Restored all states" in second.stderr + second.stdout
    assert torch.load(last, weights_only=True)["global_step"] == 6

    out = tmp_path / "samples.sdf"
    sample = molgen(
        "sample", "--ckpt", str(last), "--sampler", "consistency", "--steps", "2", "--num-samples", "4",
        "--out", str(out), "--device", "cpu", "--no-progress",
    )  # fmt: skip
    assert sample.returncode == 0, sample.stderr[-3000:]
    mols = list(Chem.SDMolSupplier(str(out), removeHs=False, sanitize=False))
    assert len(mols) == 4 and all(m.GetProp("sampler") == "consistency" and m.GetProp("steps") == "2" for m in mols)
    assert all(m.GetProp("bonds_generated") == "1" for m in mols)
