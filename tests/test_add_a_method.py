"""docs/add-a-method.md, run as written: its module (the ```python title="my_methods.py"``` blocks), its
quick check (the other Python block), its config line and experiment row (the titled YAML blocks) and its
command (the bash block), the last through a real Snakemake on a tiny demo config."""

import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from demo_config import tiny_demo_config
from model_inputs import TINY
from workflow_runner import run_snakemake

from centerclip.model import methods
from centerclip.model.clip import CLIP
from centerclip.model.methods import import_plugins
from centerclip.model.video_encoder import TokenReduction, encode_segments

REPO = Path(__file__).resolve().parent.parent
PAGE = REPO / "docs" / "add-a-method.md"
sys.path.insert(0, str(REPO / "rules"))  # the workflow's config code lives beside its rules
from workflow_config import (  # noqa: E402
    SCHEMA_PATH, experiment_schema, load_experiments, method_params, run_yaml_contents, validate_config)

FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```$", re.S | re.M)


def page_blocks(lang: str) -> list[tuple[str | None, str]]:
    """(title or None, code) of every fenced ``lang`` block of the page, in page order."""
    out = []
    for found, info, code in FENCE.findall(PAGE.read_text(encoding="utf-8")):
        if found == lang:
            title = re.search(r'title="([^"]+)"', info)
            out.append((title.group(1) if title else None, code))
    return out


def titled(lang: str, title: str) -> str:
    """The ``lang`` blocks titled ``title``, joined in page order (a later block is appended to the file)."""
    blocks = [code for t, code in page_blocks(lang) if t == title]
    assert blocks, f"{PAGE.name} has no ```{lang} title=\"{title}\"``` block"
    return "\n\n".join(blocks)


MODULE = titled("python", "my_methods.py")
ROW_NAME, ROW = next(iter(yaml.safe_load(titled("yaml", "config/experiments.yaml"))["experiments"].items()))
PLUGINS = yaml.safe_load(titled("yaml", "config/config.yaml"))["plugins"]


def test_every_code_block_of_the_page_is_run_by_these_tests():
    python = page_blocks("python")
    untitled = [code for title, code in python if title is None]
    assert {title for title, _ in python} == {"my_methods.py", None} and len(untitled) == 1  # the quick check
    assert {title for title, _ in page_blocks("yaml")} == {"config/config.yaml", "config/experiments.yaml"}
    assert [line for _, code in page_blocks("bash") for line in code.splitlines()] == [
        ".venv/bin/snakemake --cores all results/demo/tables/beyond.md"]
    assert {lang for lang, _, _ in FENCE.findall(PAGE.read_text(encoding="utf-8"))} == {"python", "yaml", "bash"}
    assert PLUGINS == ["my_methods"] and ROW["method"] == "random_drop"
    assert ROW["rows"] == {"beyond": "random drop (B6 − 4, 49)"}


def test_the_pages_quick_check_runs_beside_the_module(tmp_path):
    """The page's module saved as my_methods.py, and its quick check run from that directory (a fresh
    interpreter: what a reader does)."""
    (tmp_path / "my_methods.py").write_text(MODULE)
    (tmp_path / "check.py").write_text(next(code for title, code in page_blocks("python") if title is None))
    proc = subprocess.run([sys.executable, "check.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "random drop (B6 − 4, 49) {'method': 'random_drop', 'block': 6, 'segments': 4, 'keep': 49}",
        "torch.Size([2, 64])"]


@pytest.fixture
def page_module(tmp_path, monkeypatch):
    """The page's module imported as a plug-in (by its file path); its methods unregistered afterwards."""
    before, modules = set(methods._REGISTRY), set(sys.modules)
    (tmp_path / "my_methods.py").write_text(MODULE)
    import_plugins(["my_methods.py"], base=tmp_path)
    yield
    for name in set(methods._REGISTRY) - before:
        methods._REGISTRY.pop(name)
    for module in set(sys.modules) - modules:
        sys.modules.pop(module)


@pytest.fixture(scope="module")
def visual():
    torch.manual_seed(0)
    return CLIP(TINY).eval().visual  # 4 blocks, 4 x 4 patches per frame


def test_random_drop_keeps_k_random_tokens_per_segment_and_is_deterministic_in_evaluation(page_module, visual):
    video = torch.randn(2, 4, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    mask = torch.ones(2, 4, dtype=torch.bool)
    reduction = TokenReduction("random_drop", block=1, segments=2, keep=5)

    def kept(training):
        trace = []
        with torch.no_grad():
            encode_segments(visual, video, mask, reduction, training=training, trace=trace)
        (stage, positions), = trace
        return positions

    first, again = kept(False), kept(False)
    assert first.shape == (2, 2, 5) and torch.equal(first, again)
    per_segment = first - torch.tensor([0, 32]).view(1, 2, 1)  # positions within each 2-frame segment
    assert torch.equal(per_segment, per_segment[:1, :1].expand(2, 2, 5))  # the same in every segment
    assert per_segment.min() >= 0 and per_segment.max() < 32
    torch.manual_seed(3)
    drawn = kept(True)
    assert (drawn.diff(dim=-1) > 0).all() and not torch.equal(drawn, first)
    within = (drawn - torch.tensor([0, 32]).view(1, 2, 1)).flatten(0, 1)
    assert len({tuple(k.tolist()) for k in within}) > 1  # training: other positions in each segment
    torch.manual_seed(3)
    assert torch.equal(kept(True), drawn)  # training draws follow torch's seed
    with torch.no_grad():
        a, _ = encode_segments(visual, video, mask, reduction)
        b, _ = encode_segments(visual, video, mask, reduction, trace=[])
    assert torch.equal(a, b)


def test_figure5_shows_random_drops_kept_patches(page_module, visual):
    from centerclip.paper.figure5 import kept_patches, with_segments

    frames = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    reduction = TokenReduction("random_drop", block=1, segments=2, keep=5)
    for segments in (4, 2, 1):
        kept = kept_patches(visual, frames, with_segments(reduction, segments))
        assert len(kept) == segments and all(k.shape == (5,) for k in kept)
        assert all(k.max() < 16 * 4 // segments for k in kept)


def test_random_drop_in_blocks_runs_fewer_tokens_in_later_blocks(page_module, visual):
    video = torch.randn(2, 4, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    mask = torch.ones(2, 4, dtype=torch.bool)
    reduction = TokenReduction("random_drop_in_blocks", block=2, drop=3)
    lengths = []
    hooks = [block.register_forward_pre_hook(lambda module, args: lengths.append(args[0].shape[1]))
             for block in visual.transformer.resblocks]
    try:
        with torch.no_grad():
            a, seg_mask = encode_segments(visual, video, mask, reduction)
            b, _ = encode_segments(visual, video, mask, reduction, trace=[])
    finally:
        for hook in hooks:
            hook.remove()
    assert lengths == [17, 17, 14, 11] * 2  # blocks 0, 1 on all 16 patches; 3 fewer before each later block
    assert torch.equal(a, b) and seg_mask.shape == (2, 4)  # deterministic, tracing followed; frames stay separate
    assert reduction.to_dict() == {"method": "random_drop_in_blocks", "block": 2, "drop": 3}


def test_the_pages_row_is_checked_by_the_schema_and_becomes_the_runs_reduction(page_module):
    table = yaml.safe_load((REPO / "config" / "experiments.yaml").read_text(encoding="utf-8"))
    table["experiments"][ROW_NAME] = ROW
    import jsonschema

    schema = experiment_schema(yaml.safe_load(SCHEMA_PATH.read_text()))
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(table)) == []
    for bad in ({"keep": 0}, {"keep": "49"}, {"kepp": 49}):
        wrong = copy.deepcopy(table)
        wrong["experiments"][ROW_NAME].update(bad)
        assert list(jsonschema.Draft202012Validator(schema).iter_errors(wrong)), bad
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate_config(cfg)
    cfg["plugins"] = PLUGINS
    rc = run_yaml_contents(cfg, {ROW_NAME: ROW}, table["dataset_defaults"], ROW_NAME, 42)
    assert rc["reduction"] == {"method": "random_drop", **method_params(ROW)} == {
        "method": "random_drop", "block": 6, "segments": 4, "keep": 49}
    assert rc["plugins"] == ["my_methods"]
    assert TokenReduction.from_dict(rc["reduction"]).describe() == "random drop (B6 − 4, 49)"


def test_a_training_free_row_of_the_method_is_accepted(page_module, tmp_path):
    """The page's second row: the same keys plus training_free naming the fine-tuned meanP run."""
    table = yaml.safe_load((REPO / "config" / "experiments.yaml").read_text(encoding="utf-8"))
    source = "msrvtt7k_b32_meanP"
    free = {**ROW, "training_free": source, "rows": {"beyond": "random drop (B6 − 4, 49), training-free"}}
    table["experiments"].update({ROW_NAME: ROW, f"{ROW_NAME}_tf": free})
    (tmp_path / "experiments.yaml").write_text(yaml.safe_dump(table, allow_unicode=True))
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg.update(experiments=str(tmp_path / "experiments.yaml"), only_experiments=[source, ROW_NAME, f"{ROW_NAME}_tf"])
    validate_config(cfg)
    experiments, defaults, _ = load_experiments(cfg)
    rc = run_yaml_contents({**cfg, "plugins": PLUGINS}, experiments, defaults, f"{ROW_NAME}_tf", 42)
    assert rc["reduction"] == {"method": "random_drop", "block": 6, "segments": 4, "keep": 49}
    assert rc["training_free"] == {"from": source, "run_id": f"msrvtt/{source}/seed42"}


@pytest.mark.slow
def test_the_pages_method_through_the_workflow(tmp_path):
    """The page's steps in a project of its own: my_methods.py in the working directory, `plugins:` in the
    config, the row added to a copy of the experiment table, the page's command -> the beyond table with
    the run's numbers, and run.yaml naming the method, its parameters and the plug-in."""
    (tmp_path / "my_methods.py").write_text(MODULE)
    table = yaml.safe_load((REPO / "config" / "experiments.yaml").read_text(encoding="utf-8"))
    table["experiments"][ROW_NAME] = ROW
    (tmp_path / "experiments.yaml").write_text(yaml.safe_dump(table, allow_unicode=True))
    cfg = tiny_demo_config([ROW_NAME], n_train=8, n_test=4)
    cfg.update(plugins=PLUGINS, experiments=str(tmp_path / "experiments.yaml"))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    command, = (code.split() for _, code in page_blocks("bash"))
    assert command[:3] == [".venv/bin/snakemake", "--cores", "all"]
    target = command[3]
    # targets before --configfile, which takes several values
    run_snakemake(target, "--cores", "2", "-d", tmp_path, "--configfile", tmp_path / "config.yaml", timeout=600)

    rendered = (tmp_path / target).read_text(encoding="utf-8")
    cells = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in rendered.splitlines()
             if ln.startswith("|")]
    header, = [c for c in cells if c[0] == "Method"]
    row, = [dict(zip(header, c)) for c in cells if c[0] == ROW["rows"]["beyond"]]
    assert "not run" not in row["source"] and re.fullmatch(r"\d+\.\d", row["T→V R@1"]), row
    assert row["setting"] == "random drop (B6 − 4, 49)"  # as the method describes itself
    run = tmp_path / "results/demo/runs" / ROW["dataset"] / ROW_NAME / "seed42"
    written = yaml.safe_load((run / "run.yaml").read_text())
    assert written["reduction"] == {"method": "random_drop", "block": 6, "segments": 4, "keep": 49}
    assert written["plugins"] == ["my_methods"]
    assert (run / "metrics.json").exists() and (run / "checkpoint.pt").exists()
