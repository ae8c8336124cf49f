"""A resume state (last.pt) is continued only by the settings it was written for; the weights a run
started from are recorded in its summary and metrics."""

import copy
import json
import logging
import os

import pytest
import torch
import yaml
from run_settings import TINY_MODEL, run_dict

from centerclip.data.digests import file_sha256
from centerclip.data.upstreams import UPSTREAMS, openai_release
from centerclip.training.attempts import read_attempts
from centerclip.training.evaluate import main as evaluate_main
from centerclip.training.settings import RunConfig
from centerclip.training.identity import checkpoint_identity, run_identity, weights_record
from centerclip.training.run_folder import FinishedCheckpointError, keep_finished_checkpoint
from centerclip.training.train import run

# 16 training pairs: batch 8 -> 2 steps per epoch; no per-epoch evaluation unless a test asks
FAST = {"epochs": 1, "batch_size": 8, "eval_every_epoch": False}


def _log_lines(out):
    return [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]


def _only_set_aside(out):
    dirs = list((out / "superseded").iterdir())
    assert len(dirs) == 1
    return dirs[0]


def test_changed_lr_starts_over_and_sets_the_old_state_aside(tiny_dataset, tmp_path, caplog):
    d = run_dict(tiny_dataset, **{**FAST, "eval_every_epoch": True})
    first = run(RunConfig.from_dict(d), tmp_path)
    assert first["resumed_at_step"] == 0 and first["resume_state_set_aside"] is None
    old_last = torch.load(tmp_path / "last.pt", weights_only=False)
    assert old_last["run_identity"] == first["run_identity"] == run_identity(d)
    assert checkpoint_identity(tmp_path / "checkpoint.pt") == checkpoint_identity(tmp_path / "last.pt") \
        == run_identity(d)

    d2 = copy.deepcopy(d)
    d2["train"]["lr"] = 5e-4
    with caplog.at_level(logging.WARNING, logger="centerclip.training"):
        summary = run(RunConfig.from_dict(d2), tmp_path, settings_file="runs/x/run.yaml")
    assert summary["resumed_at_step"] == 0 and summary["steps"] == 2
    assert summary["run_identity"] == run_identity(d2) != first["run_identity"]

    aside = _only_set_aside(tmp_path)
    assert len(aside.name) == len("20261202T110512Z") and aside.name.endswith("Z") and aside.name[8] == "T"
    assert summary["resume_state_set_aside"] == str(aside)
    assert {p.name for p in aside.iterdir()} == {"last.pt", "train_log.jsonl", "metrics_epoch1.json",
                                                 "train_summary.json", "checkpoint.pt", "attempts.jsonl"}
    assert [a["resumed_at_step"] for a in read_attempts(tmp_path)] == [0]  # this run's attempt only
    moved = torch.load(aside / "last.pt", weights_only=False)
    for k, v in old_last["model"].items():
        torch.testing.assert_close(moved["model"][k], v, rtol=0, atol=0)
    assert all(x["lr"] <= 1e-3 + 1e-12 for x in _log_lines(aside))  # the old run's log went with it

    lines = _log_lines(tmp_path)
    assert [x["step"] for x in lines] == [0, 1]
    assert all(0 < x["lr"] <= 5e-4 for x in lines)
    assert (tmp_path / "metrics_epoch1.json").is_file()  # this run's own evaluation
    saved = json.loads((tmp_path / "train_summary.json").read_text())
    assert saved["resume_state_set_aside"] == str(aside)
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert ckpt["summary"]["resume_state_set_aside"] == str(aside) and ckpt["run_config"]["train"]["lr"] == 5e-4

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "superseded" in
                r.getMessage()]
    assert len(warnings) == 1 and "runs/x/run.yaml" in warnings[0] and str(aside) in warnings[0]


def test_changed_architecture_starts_over_without_a_size_mismatch(tiny_dataset, tmp_path):
    d = run_dict(tiny_dataset, **FAST)
    run(RunConfig.from_dict(d), tmp_path)
    d2 = copy.deepcopy(d)
    d2["model"] = {**TINY_MODEL, "random": {**TINY_MODEL["random"], "embed_dim": 16, "vision_width": 128}}
    d2["reduction"] = {"method": "meanP"}
    summary = run(RunConfig.from_dict(d2), tmp_path)
    assert summary["resumed_at_step"] == 0 and summary["steps"] == 2 and summary["resume_state_set_aside"]
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert ckpt["model"]["clip.text_projection"].shape[-1] == 16
    assert (_only_set_aside(tmp_path) / "last.pt").is_file()


def test_settings_that_do_not_change_the_weights_keep_the_identity(tiny_dataset):
    d = run_dict(tiny_dataset)
    same = copy.deepcopy(d)
    same["label"] = "another table title"
    same["eval"]["batch_size"] = 2
    same["train"].update(num_workers=3, checkpoint_every_steps=7, eval_every_epoch=False)
    same["cache"], same["manifest"] = "/moved/data/frames.h5", "/moved/data/" + os.path.basename(d["manifest"])
    assert run_identity(same) == run_identity(d)
    for change in (lambda x: x["train"].update(lr=2e-3), lambda x: x["train"].update(grad_clip=0.5),
                   lambda x: x["train"].update(grad_accum=2), lambda x: x["reduction"].update(method="meanP"),
                   lambda x: x["model"]["random"].update(embed_dim=16), lambda x: x.update(manifest="other.csv")):
        other = copy.deepcopy(d)
        change(other)
        assert run_identity(other) != run_identity(d)
    assert run_identity(d, "a" * 64) != run_identity(d, "b" * 64) != run_identity(d)  # the weights file's bytes


def _finished_run_folder(out, raw):
    """A run folder as a finished training leaves it (checkpoint.pt in the layout train.py writes:
    the run config and a summary naming the run's identity), plus a file that is not a run result."""
    out.mkdir()
    torch.save({"model": {}, "run_config": raw, "summary": {"run_identity": run_identity(raw)}}, out / "checkpoint.pt")
    files = {"train_summary.json": "{}", "metrics.json": "{}", "metrics_epoch1.json": "{}", "train_log.jsonl": "",
             "run.yaml": "kept in place"}
    for name, text in files.items():
        (out / name).write_text(text)
    return sorted(p.name for p in out.iterdir())


def test_a_finished_checkpoint_of_the_same_settings_is_never_replaced(tmp_path):
    """The workflow calls keep_finished_checkpoint before any training that would overwrite a
    checkpoint.pt. Same settings (a newer input, --forcerun): it stops, and moves or deletes nothing,
    even with result-neutral settings changed (the identity ignores them)."""
    raw = {"run_id": "tiny/test/seed42", "model": TINY_MODEL, "train": {"lr": 1e-3, "num_workers": 2}}
    out = tmp_path / "run"
    before = _finished_run_folder(out, raw)
    run_yaml = tmp_path / "run.yaml"
    run_yaml.write_text(yaml.safe_dump({**raw, "train": {"lr": 1e-3, "num_workers": 8}}))
    with pytest.raises(FinishedCheckpointError, match="exactly the settings of .*Nothing was deleted"):
        keep_finished_checkpoint(out, run_yaml)
    assert sorted(p.name for p in out.iterdir()) == before and not (out / "superseded").exists()
    assert checkpoint_identity(out / "checkpoint.pt") == run_identity(raw)


def test_a_finished_checkpoint_of_other_settings_is_set_aside(tmp_path):
    """Edited settings (another lr): the old run's checkpoint and results move to superseded/<time>/
    untouched, the function returns that folder, and training may go on; other files stay."""
    raw = {"run_id": "tiny/test/seed42", "model": TINY_MODEL, "train": {"lr": 1e-3}}
    out = tmp_path / "run"
    _finished_run_folder(out, raw)
    old = (out / "checkpoint.pt").read_bytes()
    run_yaml = tmp_path / "run.yaml"
    run_yaml.write_text(yaml.safe_dump({**raw, "train": {"lr": 5e-4}}))
    moved = keep_finished_checkpoint(out, run_yaml)
    assert moved is not None and moved.parent == out / "superseded"
    assert sorted(p.name for p in moved.iterdir()) == ["checkpoint.pt", "metrics.json", "metrics_epoch1.json",
                                                       "train_log.jsonl", "train_summary.json"]
    assert (moved / "checkpoint.pt").read_bytes() == old
    assert sorted(p.name for p in out.iterdir()) == ["run.yaml", "superseded"]
    assert keep_finished_checkpoint(out, run_yaml) is None  # no checkpoint left: nothing to guard


def test_partial_state_resumes_after_a_result_neutral_change(tiny_dataset, tmp_path, monkeypatch):
    import centerclip.training.train as train

    d = run_dict(tiny_dataset, epochs=2, batch_size=8, checkpoint_every_steps=1, eval_every_epoch=False)
    real = train.lr_factor

    def crash_at_step_3(step, *args):
        if step == 3:
            raise KeyboardInterrupt
        return real(step, *args)

    monkeypatch.setattr(train, "lr_factor", crash_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        run(RunConfig.from_dict(d), tmp_path)
    monkeypatch.setattr(train, "lr_factor", real)

    d2 = copy.deepcopy(d)
    d2["train"].update(num_workers=0, checkpoint_every_steps=2)
    d2["eval"]["batch_size"] = 2
    summary = run(RunConfig.from_dict(d2), tmp_path)
    assert summary["resumed_at_step"] == 3 and summary["steps"] == 4
    assert summary["resume_state_set_aside"] is None and not (tmp_path / "superseded").exists()
    assert [x["step"] for x in _log_lines(tmp_path)] == [0, 1, 2, 3]


def test_state_without_identity_is_set_aside(tiny_dataset, tmp_path, caplog):
    d = run_dict(tiny_dataset, **FAST)
    run(RunConfig.from_dict(d), tmp_path)
    state = torch.load(tmp_path / "last.pt", weights_only=False)
    del state["run_identity"]  # as written before run identities existed
    torch.save(state, tmp_path / "last.pt")
    assert checkpoint_identity(tmp_path / "last.pt") is None
    with caplog.at_level(logging.WARNING, logger="centerclip.training"):
        summary = run(RunConfig.from_dict(d), tmp_path)
    assert summary["resumed_at_step"] == 0 and summary["steps"] == 2
    aside = _only_set_aside(tmp_path)
    assert summary["resume_state_set_aside"] == str(aside) and "run_identity" not in torch.load(
        aside / "last.pt", weights_only=False)
    assert [x["step"] for x in _log_lines(tmp_path)] == [0, 1]
    assert any("no run identity" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_pretrained_weights_are_recorded_in_summary_and_metrics(tiny_dataset, tmp_path):
    from centerclip.training.checkpoint import build_clip

    weights_file = tmp_path / "weights" / "tiny_clip.pt"
    weights_file.parent.mkdir()
    torch.save(build_clip(TINY_MODEL).state_dict(), weights_file)
    d = run_dict(tiny_dataset, **FAST)
    d["model"] = {"pretrained": str(weights_file)}
    out = tmp_path / "run"
    summary = run(RunConfig.from_dict(d), out)
    expected = {"path": str(weights_file.resolve()), "sha256": file_sha256(weights_file), "openai": None}
    assert summary["weights"] == expected
    assert summary["run_identity"] == run_identity(d, expected["sha256"])
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    assert ckpt["summary"]["weights"] == expected
    assert checkpoint_identity(out / "checkpoint.pt") == summary["run_identity"]
    del ckpt["summary"]["run_identity"]  # a checkpoint.pt from before identities: its config + the file now
    torch.save(ckpt, tmp_path / "old_checkpoint.pt")
    assert checkpoint_identity(tmp_path / "old_checkpoint.pt") == summary["run_identity"]

    assert evaluate_main(["--checkpoint", str(out / "checkpoint.pt"), "--out", str(out / "metrics.json")]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["weights"] == expected
    assert metrics["global_batch"] == 8 and metrics["epochs"] == 1

    # other bytes under the same path: another run, not a resume
    torch.save(build_clip({**TINY_MODEL, "init_seed": 1}).state_dict(), weights_file)
    again = run(RunConfig.from_dict(d), out)
    assert again["resumed_at_step"] == 0 and again["resume_state_set_aside"]
    assert again["weights"]["sha256"] == file_sha256(weights_file) != expected["sha256"]


def test_weights_record_names_the_openai_release():
    b32 = UPSTREAMS["clip_vit_b32"].downloads["weights"].sha256
    b16 = UPSTREAMS["clip_vit_b16"].downloads["weights"].sha256
    assert openai_release(b32) == "ViT-B/32" and openai_release(b16.upper()) == "ViT-B/16"
    assert openai_release("0" * 64) is None
    assert weights_record({"pretrained": "ViT-B-32.pt"}, b32)["openai"] == "ViT-B/32"
    assert weights_record(TINY_MODEL, None) == {"random": True, "init_seed": 0}
