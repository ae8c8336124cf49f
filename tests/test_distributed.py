"""The global batch is split over ranks and accumulation steps without changing a step's result:
same loss, same updated weights (paper Eqs. 2-4: the loss sees the whole mini-batch)."""

import copy
import json
import subprocess
import sys

import pytest
import torch
from run_settings import run_dict

from centerclip.util import atomic
from centerclip.training.settings import RunConfig
from centerclip.model.clip import CLIP, CLIPConfig
from centerclip.model.retrieval import RetrievalModel
from centerclip.model.video_encoder import ClusterStage, TokenReduction
from centerclip.training.distributed import World
from centerclip.training.objective import contrastive_loss
from centerclip.training.step import TrainingError, TrainStep, micro_batch_size
from centerclip.training.train import run

SPLIT = {"epochs": 1, "batch_size": 8, "eval_every_epoch": False, "lr": 1e-3}  # 2 steps of 8 videos


def _losses(out_dir):
    return [json.loads(x)["loss"] for x in (out_dir / "train_log.jsonl").read_text().splitlines()]


def _weights(out_dir):
    return torch.load(out_dir / "checkpoint.pt", weights_only=False)["model"]


def _assert_same_run(a, b, atol=1e-5):
    assert _losses(a) == pytest.approx(_losses(b), abs=atol)
    wa, wb = _weights(a), _weights(b)
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=atol, msg=k)


@pytest.fixture(scope="module")
def single_process_run(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    run(RunConfig.from_dict(run_dict(tiny_dataset, **SPLIT)), out)
    return out


def test_micro_batch_must_divide_the_global_batch():
    assert micro_batch_size(128, 4, 2) == 16
    with pytest.raises(TrainingError, match="batch_size = 12 does not split over 2 ranks x train.grad_accum = 4"):
        micro_batch_size(12, 2, 4)


def _step_gradients(model, batch, grad_accum):
    """Parameter gradients of one TrainStep on ``batch`` (a copy of ``model``; SGD with lr 0 leaves the
    weights as they were and the gradients in ``.grad``; no clipping at this bound)."""
    model = copy.deepcopy(model)
    step = TrainStep(model, torch.optim.SGD(model.parameters(), lr=0.0), World(), seed=0, grad_accum=grad_accum,
                     grad_clip=1e9, amp_dtype=None)
    loss = step(batch, step=0)
    return loss, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_accumulated_step_has_the_gradient_of_the_global_batch():
    """GradCache (train.grad_accum > 1) must give the gradient of the global-batch loss itself, not a
    multiple of it. AdamW's update hardly changes when every gradient is scaled by a constant, so the
    weights after a run (test below) barely show such a factor; but train.grad_clip clips the scaled
    norm, and then the steps differ. So the gradients are compared before any optimiser step, with
    each other and with the loss of the whole batch written out (symmetric InfoNCE over the batch)."""
    torch.manual_seed(0)
    config = CLIPConfig(embed_dim=16, image_resolution=32, vision_layers=2, vision_width=64, vision_patch_size=8,
                        context_length=8, vocab_size=100, transformer_width=32, transformer_heads=1,
                        transformer_layers=1)  # 16 patches a frame; small enough for the fast tier
    model = RetrievalModel(CLIP(config), TokenReduction("centerclip", (ClusterStage(1, 2, 8),))).train()
    g = torch.Generator().manual_seed(3)
    n = 4
    tokens = torch.randint(1, 99, (n, 8), generator=g)
    tokens[:, -1] = 99  # the largest id ends the text: CLIP reads the text feature there
    batch = {"tokens": tokens, "video": torch.randn(n, 4, 3, 32, 32, generator=g),
             "video_mask": torch.ones(n, 4, dtype=torch.bool), "video_id": [f"v{i}" for i in range(n)]}

    reference = copy.deepcopy(model)
    t = reference.encode_text(batch["tokens"]).float()
    v = reference.encode_video(batch["video"], batch["video_mask"]).float()
    expected_loss = contrastive_loss(reference.clip.logit_scale.exp() * t @ v.t())
    expected_loss.backward()
    expected = {n: p.grad for n, p in reference.named_parameters() if p.grad is not None}
    assert expected["clip.visual.conv1.weight"].abs().max() > 0 and expected["clip.logit_scale"].abs() > 0

    for grad_accum in (1, 2, 4):
        loss, grads = _step_gradients(model, batch, grad_accum)
        assert loss == pytest.approx(expected_loss.item(), rel=1e-5), grad_accum
        assert grads.keys() == expected.keys()
        for name, grad in expected.items():
            torch.testing.assert_close(grads[name], grad, rtol=1e-4, atol=1e-5,
                                       msg=lambda m, name=name: f"grad_accum={grad_accum}, {name}: {m}")


def test_gradient_accumulation_keeps_the_global_batch_loss(tiny_dataset, single_process_run, tmp_path):
    summary = run(RunConfig.from_dict(run_dict(tiny_dataset, grad_accum=4, **SPLIT)), tmp_path)
    assert summary["micro_batch_per_device"] == 2 and summary["grad_accum"] == 4
    _assert_same_run(single_process_run, tmp_path)


@pytest.mark.slow  # ~20 s: two fresh interpreters importing torch on 2 cores
def test_two_gloo_ranks_equal_one_process(tiny_dataset, single_process_run, tmp_path, venv_env):
    atomic.write_yaml(run_dict(tiny_dataset, **SPLIT), tmp_path / "run.yaml")
    env = {**venv_env, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "centerclip.training.train", "--run-config", str(tmp_path / "run.yaml"),
                           "--out-dir", str(tmp_path / "ddp")], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "ddp" / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["micro_batch_per_device"] == 4
    assert len(summary["peak_memory_mb_per_device"]) == 2
    _assert_same_run(single_process_run, tmp_path / "ddp")
