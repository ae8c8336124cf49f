"""`pip install centerclip` without extras gives a working model core and none of the pipeline.

A fresh venv (no system site-packages) gets torch==2.13.0 (the Makefile's pin), then this repository,
non-editable and without extras: what a user of the model core installs. In that venv none of the
[workflow] extra's modules may be importable, and a tiny CLIP in OpenAI's state-dict layout, written
with torch alone, must load with ``centerclip.model.load`` and encode a video through CenterCLIP's
token clustering and a caption through the tokenizer.

The venv is made ``--without-pip`` and driven by this interpreter's pip (``pip --python``), which
saves the ~5-10 s of ensurepip. Wheels come from pip's usual sources and cache (nothing is forced to
download again); the build of this repository fetches setuptools into pip's isolated build environment,
as a user's install does. ~25 s on 2 cores: unpacking torch and its first import take most of it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TORCH_PIN = "torch==2.13.0"  # the Makefile's pin (tests/test_packaging.py checks the Makefile has it)
# modules of the [workflow] extra (and tqdm/yaml, which the pipeline uses everywhere)
PIPELINE_MODULES = ["snakemake", "pandas", "h5py", "matplotlib", "decord", "ffmpeg", "simplejpeg", "jsonschema",
                    "yaml", "tqdm", "PIL", "imageio_ffmpeg"]

pytestmark = pytest.mark.slow

# Self-contained: runs in the fresh venv, where tests/ is not importable. Builds the tiny CLIP's state
# dict in OpenAI's key layout with torch alone: 7 vision blocks (the stage runs after block 6, at the
# input of block 7) and a 7 x 7 patch grid (49 patches per frame, so 4 segments of 3 frames hold
# 147 tokens for 49 clusters).
CORE_SCRIPT = textwrap.dedent("""
    import json, sys
    import torch

    torch.manual_seed(0)
    WIDTH, PATCH, GRID, VISION_LAYERS, TEXT_LAYERS, EMBED, CONTEXT, VOCAB = 64, 4, 7, 7, 1, 32, 77, 49408

    def block(prefix, width):
        return {
            f"{prefix}.attn.in_proj_weight": torch.randn(3 * width, width) * width**-0.5,
            f"{prefix}.attn.in_proj_bias": torch.zeros(3 * width),
            f"{prefix}.attn.out_proj.weight": torch.randn(width, width) * width**-0.5,
            f"{prefix}.attn.out_proj.bias": torch.zeros(width),
            f"{prefix}.ln_1.weight": torch.ones(width), f"{prefix}.ln_1.bias": torch.zeros(width),
            f"{prefix}.mlp.c_fc.weight": torch.randn(4 * width, width) * width**-0.5,
            f"{prefix}.mlp.c_fc.bias": torch.zeros(4 * width),
            f"{prefix}.mlp.c_proj.weight": torch.randn(width, 4 * width) * (4 * width) ** -0.5,
            f"{prefix}.mlp.c_proj.bias": torch.zeros(width),
            f"{prefix}.ln_2.weight": torch.ones(width), f"{prefix}.ln_2.bias": torch.zeros(width),
        }

    sd = {
        "visual.conv1.weight": torch.randn(WIDTH, 3, PATCH, PATCH) * 0.1,
        "visual.class_embedding": torch.randn(WIDTH) * WIDTH**-0.5,
        "visual.positional_embedding": torch.randn(GRID * GRID + 1, WIDTH) * 0.01,
        "visual.ln_pre.weight": torch.ones(WIDTH), "visual.ln_pre.bias": torch.zeros(WIDTH),
        "visual.ln_post.weight": torch.ones(WIDTH), "visual.ln_post.bias": torch.zeros(WIDTH),
        "visual.proj": torch.randn(WIDTH, EMBED) * WIDTH**-0.5,
        "token_embedding.weight": torch.randn(VOCAB, WIDTH) * 0.02,
        "positional_embedding": torch.randn(CONTEXT, WIDTH) * 0.01,
        "ln_final.weight": torch.ones(WIDTH), "ln_final.bias": torch.zeros(WIDTH),
        "text_projection": torch.randn(WIDTH, EMBED) * WIDTH**-0.5,
        "logit_scale": torch.tensor(4.6052),
        # the non-weight entries OpenAI's archives carry
        "input_resolution": torch.tensor(GRID * PATCH), "context_length": torch.tensor(CONTEXT),
        "vocab_size": torch.tensor(VOCAB),
    }
    for i in range(VISION_LAYERS):
        sd.update(block(f"visual.transformer.resblocks.{i}", WIDTH))
    for i in range(TEXT_LAYERS):
        sd.update(block(f"transformer.resblocks.{i}", WIDTH))
    torch.save(sd, sys.argv[1])

    import centerclip
    from centerclip.model import ClusterStage, RetrievalModel, TokenReduction, load, tokenize

    clip = load(sys.argv[1])
    model = RetrievalModel(clip, TokenReduction("centerclip", (ClusterStage(block=6, segments=4, clusters=49),)))
    model.eval()
    video = torch.randn(2, 12, 3, GRID * PATCH, GRID * PATCH)
    mask = torch.ones(2, 12, dtype=torch.bool)
    with torch.no_grad():
        v = model.encode_video(video, mask)
        t = model.encode_text(tokenize(["a dog runs on the beach", "someone is cooking"]))
    print(json.dumps({
        "centerclip_file": centerclip.__file__,
        "torch": torch.__version__,
        "video_shape": list(v.shape), "video_norms": v.norm(dim=-1).tolist(), "video_finite": bool(v.isfinite().all()),
        "text_shape": list(t.shape), "text_norms": t.norm(dim=-1).tolist(),
        "modules": sorted(m for m in sys.modules if m.split(".")[0] not in sys.stdlib_module_names),
    }))
""")


def _pip(venv_python: Path, *args: str, tmp: Path, timeout: int = 600) -> str:
    """This interpreter's pip, acting on the venv (``pip --python``); its temporary files under ``tmp``."""
    cmd = [sys.executable, "-m", "pip", "--python", str(venv_python), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**_env(), "TMPDIR": str(tmp)})
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _installed(venv_python: Path) -> set[str]:
    """Normalised names of the distributions in the venv (asked of its own interpreter: faster than pip list)."""
    code = "import importlib.metadata as m, json; print(json.dumps([d.metadata['Name'] for d in m.distributions()]))"
    proc = subprocess.run([str(venv_python), "-I", "-c", code], capture_output=True, text=True, env=_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    return {re.sub(r"[-_.]+", "-", name.lower()) for name in json.loads(proc.stdout)}


def _source_copy(dst: Path) -> Path:
    """What the build reads (pyproject.toml, README.md, the package), so that pip's in-tree build
    writes nothing into the checkout."""
    dst.mkdir()
    for name in ["pyproject.toml", "README.md", *(p.name for p in REPO.glob("LICEN[CS]E*"))]:
        shutil.copy2(REPO / name, dst / name)
    shutil.copytree(REPO / "centerclip", dst / "centerclip", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dst


@pytest.fixture
def scratch(tmp_path):
    """Where the venv (~0.9 GB, ~20k files, mostly torch) and pip's temporary files go; removed
    afterwards, pass or fail. In RAM (/dev/shm) when there is room: on a disk mounted with online
    discard (as on this project's 2-core machines) deleting the 20k files alone took ~30 s."""
    shm = Path("/dev/shm")
    root = tmp_path
    if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 4 * 2**30:
        root = Path(tempfile.mkdtemp(prefix="centerclip-core-install-", dir=shm))
    (root / "tmp").mkdir(exist_ok=True)
    yield root
    shutil.rmtree(root / "venv", ignore_errors=True)
    shutil.rmtree(root / "tmp", ignore_errors=True)
    if root != tmp_path:
        shutil.rmtree(root, ignore_errors=True)


def test_bare_install_has_a_working_model_core_and_no_pipeline(tmp_path, scratch):
    clock = [time.perf_counter()]

    def lap(what: str) -> None:  # phase timings, shown with -s or on failure
        clock.append(time.perf_counter())
        print(f"{what}: {clock[-1] - clock[-2]:.1f} s")

    venv = scratch / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()

    lap("venv")
    # --no-compile: no .pyc for torch's thousands of modules (the slowest part of the install)
    _pip(py, "install", "--quiet", "--no-compile", TORCH_PIN, tmp=scratch / "tmp")
    lap(f"pip install {TORCH_PIN}")
    with_torch = _installed(py)
    _pip(py, "install", "--quiet", "--no-compile", str(_source_copy(tmp_path / "src")), tmp=scratch / "tmp")
    lap("pip install . (no extras)")
    added = _installed(py) - with_torch
    print(f"pip install . (no extras) added: {sorted(added)}")

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    workflow = {re.sub(r"[-_.]+", "-", re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0].strip().lower())
                for r in project["optional-dependencies"]["workflow"]}
    assert "centerclip" in added
    assert not added & workflow, f"the bare install pulled in [workflow] packages: {sorted(added & workflow)}"

    # -I: no PYTHONPATH, no user site, no current directory on sys.path; only the venv is visible
    probe = ("import importlib.util, json; "
             f"print(json.dumps([m for m in {PIPELINE_MODULES!r} if importlib.util.find_spec(m) is not None]))")
    proc = subprocess.run([str(py), "-I", "-c", probe], capture_output=True, text=True, cwd=tmp_path, env=_env(),
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [], f"importable in the bare install: {proc.stdout}"
    lap("import probe")

    proc = subprocess.run([str(py), "-I", "-c", CORE_SCRIPT, str(tmp_path / "tiny_clip.pt")], capture_output=True,
                          text=True, cwd=tmp_path, env=_env(), timeout=300)
    assert proc.returncode == 0, (
        f"the model core failed in the bare install:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    lap("model core script")
    assert Path(out["centerclip_file"]).is_relative_to(venv), out["centerclip_file"]  # the installed copy
    assert out["torch"].startswith("2.13.0"), f"installing centerclip replaced torch: {out['torch']}"
    assert out["video_shape"] == [2, 32] and out["video_finite"]
    assert out["video_norms"] == pytest.approx([1.0, 1.0], abs=1e-5)
    assert out["text_shape"] == [2, 32]
    assert out["text_norms"] == pytest.approx([1.0, 1.0], abs=1e-5)
    loaded = {m.split(".")[0] for m in out["modules"]}
    assert not loaded & set(PIPELINE_MODULES), sorted(loaded & set(PIPELINE_MODULES))
    assert not any(m.startswith(("centerclip.data", "centerclip.training", "centerclip.paper", "centerclip.util"))
                   for m in out["modules"])
