"""A real training job on real (tiny) data: loss, schedule, checkpoints, resume after kill -9."""

import json
import math
import signal
import subprocess
import sys
import time

import pytest
import torch
from run_settings import TINY_MODEL, run_dict

from centerclip.training.evaluate import main as evaluate_main
from centerclip.util import atomic
from centerclip.training.settings import RunConfig
from centerclip.training.objective import contrastive_loss, lr_factor, make_optimizer
from centerclip.training.step import TrainingError
from centerclip.training.train import run

def test_contrastive_loss_is_symmetric_infonce():
    logits = torch.tensor([[5.0, 1.0], [0.0, 3.0]])
    expected = (torch.nn.functional.cross_entropy(logits, torch.arange(2))
                + torch.nn.functional.cross_entropy(logits.t(), torch.arange(2))) / 2
    torch.testing.assert_close(contrastive_loss(logits), expected)


def test_schedule_warms_up_then_decays_to_zero():
    total = 100
    f = [lr_factor(s, total, 0.1) for s in range(total)]
    assert f[0] < 0.2 and max(f) == pytest.approx(1.0, abs=0.01)
    assert all(a <= b for a, b in zip(f[:10], f[1:11]))  # warm-up rises
    assert all(a >= b for a, b in zip(f[10:], f[11:]))  # cosine falls
    assert f[-1] < 0.01


def test_weight_decay_spares_biases():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.LayerNorm(2))
    decay, no_decay = make_optimizer(model, 1e-3, 0.2).param_groups
    assert decay["weight_decay"] == 0.2 and no_decay["weight_decay"] == 0.0
    assert len(no_decay["params"]) == 2 and len(decay["params"]) == 2


def test_training_updates_weights_and_writes_everything(tiny_dataset, tmp_path):
    cfg = RunConfig.from_dict(run_dict(tiny_dataset))
    summary = run(cfg, tmp_path)
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    from centerclip.training.checkpoint import build_clip

    init = build_clip(TINY_MODEL).state_dict()
    changed = [k for k, v in ckpt["model"].items() if not torch.equal(v, init[k.removeprefix("clip.")])]
    assert "clip.visual.conv1.weight" in changed and "clip.token_embedding.weight" in changed
    assert 0.1 <= ckpt["model"]["clip.logit_scale"].item() <= math.log(100)
    lines = [json.loads(x) for x in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert len(lines) == summary["steps"] == 2 * (16 // 4)  # 8 videos x 2 captions, drop_last
    assert all(math.isfinite(x["loss"]) for x in lines)
    assert summary["peak_memory_mb"] > 0 and summary["provenance"]["git_commit"]

    out = tmp_path / "metrics.json"
    assert evaluate_main(["--checkpoint", str(tmp_path / "checkpoint.pt"), "--out", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert set(metrics["t2v"]) == {"R1", "R5", "R10", "MdR", "MnR"}
    assert metrics["efficiency"]["n_test_videos"] == 4 and metrics["efficiency"]["eval_ms_per_video"] > 0
    # the encoder's GFLOPs at the run's evaluation shapes, as model.flops counts them
    from centerclip.model.flops import video_encoder_flops
    from centerclip.training.checkpoint import from_checkpoint

    model, _ = from_checkpoint(tmp_path / "checkpoint.pt")
    counted = video_encoder_flops(model.clip.visual, model.reduction, cfg.eval.num_frames)
    assert metrics["efficiency"]["gflops_per_video"] == round(counted.gflops, 6) > 0
    assert metrics["run_config"]["run_id"] == "tiny/test/seed42"
    # per-epoch evaluation by the training job; last epoch on top, the original's selection beside it
    epochs = [json.loads((tmp_path / f"metrics_epoch{n}.json").read_text()) for n in (1, 2)]
    assert [m["epoch"] for m in epochs] == [1, 2] and metrics["epoch"] == 2
    assert metrics["t2v"] == epochs[1]["t2v"]
    best = metrics["best_epoch_on_test"]
    assert best["epoch"] in (1, 2) and best["t2v"] == epochs[best["epoch"] - 1]["t2v"]
    assert best["t2v"]["R1"] == max(m["t2v"]["R1"] for m in epochs) and "test split" in best["selection"]
    training = metrics["provenance"]["training"]
    assert training["world_size"] == 1 and training["global_batch"] == 4 and training["grad_accum"] == 1
    assert training["precision"] == "fp32" and training["seed"] == 42 and training["git_commit"]


def test_batch_larger_than_data_is_explained(tiny_dataset, tmp_path):
    with pytest.raises(TrainingError, match="batch_size"):
        run(RunConfig.from_dict(run_dict(tiny_dataset, batch_size=64)), tmp_path)


def test_crash_mid_epoch_resumes_from_the_step_checkpoint(tiny_dataset, tmp_path, monkeypatch):
    """Random token selection (sparse), frame sampling and data order all resume exactly."""
    import centerclip.training.train as train

    d = run_dict(tiny_dataset, epochs=2, batch_size=8, checkpoint_every_steps=1, eval_every_epoch=False)
    d["reduction"] = {"method": "sparse", "stages": [{"block": 1, "segments": 2, "clusters": 20}]}
    run(RunConfig.from_dict(d), tmp_path / "straight")

    real = train.lr_factor

    def crash_at_step_3(step, *args):
        if step == 3:  # second step of epoch 2; last.pt holds step 3's start
            raise KeyboardInterrupt
        return real(step, *args)

    monkeypatch.setattr(train, "lr_factor", crash_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        run(RunConfig.from_dict(d), tmp_path / "crashed")
    state = torch.load(tmp_path / "crashed" / "last.pt", weights_only=False)
    assert (state["epoch"], state["step_in_epoch"], state["step"]) == (1, 1, 3)
    monkeypatch.setattr(train, "lr_factor", real)
    summary = run(RunConfig.from_dict(d), tmp_path / "crashed")
    assert summary["resumed_at_step"] == 3

    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "crashed" / "checkpoint.pt", weights_only=False)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    steps = [json.loads(x)["step"] for x in (tmp_path / "crashed" / "train_log.jsonl").read_text().splitlines()]
    assert steps == [0, 1, 2, 3]


@pytest.mark.slow
def test_kill_9_then_resume_gives_the_same_weights(tiny_dataset, tmp_path, venv_env):
    # the first last.pt is a step checkpoint in the middle of epoch 1 (4 steps per epoch)
    cfg = run_dict(tiny_dataset, epochs=3, checkpoint_every_steps=3, eval_every_epoch=False)
    atomic.write_yaml(cfg, tmp_path / "run.yaml")
    cmd = [sys.executable, "-m", "centerclip.training.train", "--run-config", str(tmp_path / "run.yaml")]
    subprocess.run(cmd + ["--out-dir", str(tmp_path / "straight")], check=True, env=venv_env,
                   capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(cmd + ["--out-dir", str(killed)], env=venv_env, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (killed / "last.pt").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (killed / "last.pt").exists() and not (killed / "checkpoint.pt").exists()
    subprocess.run(cmd + ["--out-dir", str(killed)], check=True, env=venv_env, capture_output=True)

    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(killed / "checkpoint.pt", weights_only=False)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
