"""The global batch is split over ranks and accumulation steps without changing a step's result:
same loss, same updated weights (paper Eqs. 2-4: the loss sees the whole mini-batch)."""

import json
import subprocess
import sys

import pytest
import torch
from run_settings import run_dict

from centerclip.util import atomic
from centerclip.training.settings import RunConfig
from centerclip.training.step import TrainingError, micro_batch_size
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
