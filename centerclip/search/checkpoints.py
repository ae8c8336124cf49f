"""Which model a ``--checkpoint`` names, its identity, and the model itself.

Accepted: a run folder of this package (holding ``checkpoint.pt``), a ``checkpoint.pt`` / ``last.pt``
of this package, or one of the authors' released checkpoints (``<id>.zip``, its extracted folder, or
its ``ckpt.best.pth.tar`` with ``hparams_train.json`` beside it). The identity is the sha256 of the
file that holds the weights plus the settings an index depends on (frames, words, token reduction):
an index records it and refuses another model's embeddings.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import torch

from centerclip.data.digests import file_sha256, stream_sha256
from centerclip.model.retrieval import RetrievalModel
from centerclip.paper import released
from centerclip.search.errors import SearchError

RUN_CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True)
class ModelIdentity:
    """What an index records about the model that made it (the HDF5 attributes of the same names)."""

    model_path: str  # absolute path of --checkpoint as given (not resolved: a symlinked run stays named)
    model_kind: str  # "run" (this package's training) or "released" (the authors')
    model_sha256: str  # hex sha256 of the weights file (checkpoint.pt, the zip, or ckpt.best.pth.tar)
    num_frames: int  # frames per video at evaluation
    context_length: int  # tokens per text at evaluation
    reduction: str  # human-readable token reduction, e.g. "k-medoids++ (B1 − 2, 20)"
    size: int  # input resolution (side of the square frames)
    embed_dim: int  # E, the joint embedding width
    # sha256 of the weights themselves: model_sha256 but for a released zip, whose ckpt.best.pth.tar it is, so
    # that the zip and its extracted folder are recognised as one model
    weights_sha256: str = ""

    def same_weights(self, model_sha256: str | None, weights_sha256: str | None) -> bool:
        """Whether a model recorded as (``model_sha256``, ``weights_sha256``) has these weights."""
        return model_sha256 == self.model_sha256 or bool(weights_sha256) and weights_sha256 == self.weights_sha256

    @property
    def short(self) -> str:
        """``<path> (sha256 1234abcd)``: how messages name the model."""
        return f"{self.model_path} (sha256 {self.model_sha256[:12]})"

    def settings(self) -> dict[str, object]:
        """The settings two models must share for one's index to be read with the other."""
        return {"num_frames": self.num_frames, "context_length": self.context_length, "reduction": self.reduction}


@dataclass(frozen=True)
class _Located:
    kind: str  # "run" | "released"
    weights: Path  # the file whose sha256 names the model
    load_from: Path  # what the loader of that kind reads
    zipped: bool = False  # a released <id>.zip: the weights are a member of ``weights``


def _locate(path: Path) -> _Located:
    """Which kind of checkpoint ``path`` is, by its layout (no weights are read yet)."""
    if not path.exists():
        raise SearchError(f"--checkpoint {path}: no such file or folder")
    if path.is_dir():
        if (path / RUN_CHECKPOINT).is_file():
            return _Located("run", path / RUN_CHECKPOINT, path / RUN_CHECKPOINT)
        found = sorted(p for p in path.rglob(released.CHECKPOINT) if "__MACOSX" not in p.parts)
        if len(found) == 1:
            return _Located("released", found[0], path)
        raise SearchError(f"--checkpoint {path}: a folder without {RUN_CHECKPOINT} (a training run of this package) "
                          f"or one {released.CHECKPOINT} (an extracted released checkpoint)"
                          + (f"; it holds {len(found)} of the latter" if found else ""))
    if path.name == released.CHECKPOINT:
        return _Located("released", path, path)
    if zipfile.is_zipfile(path) and not released.is_torch_zip(path):
        return _Located("released", path, path, zipped=True)
    return _Located("run", path, path)


def identity_of(model: RetrievalModel, model_path: Path, kind: str, sha256: str, num_frames: int,
                context_length: int, weights_sha256: str | None = None) -> ModelIdentity:
    """The identity of a loaded ``model`` (resolution and width read from its CLIP)."""
    cfg = model.clip.config
    return ModelIdentity(model_path=os.fspath(model_path), model_kind=kind, model_sha256=sha256,
                         num_frames=int(num_frames), context_length=int(context_length),
                         reduction=released.describe(model.reduction), size=int(cfg.image_resolution),
                         embed_dim=int(cfg.embed_dim), weights_sha256=weights_sha256 or sha256)


def _member_sha256(zip_path: Path) -> str:
    """sha256 of the zip's ``ckpt.best.pth.tar`` (streamed): the same digest its extracted file has."""
    with zipfile.ZipFile(zip_path) as archive:
        name = next(n for n in archive.namelist()
                    if PurePosixPath(n).name == released.CHECKPOINT and "__MACOSX" not in n)
        with archive.open(name) as member:
            return stream_sha256(member)


NOT_A_CHECKPOINT = ("expected a run folder or checkpoint.pt / last.pt of this package, "
                    "or a released <id>.zip / its folder")


def _run_config_beside(weights: Path, identity: str | None) -> dict | None:
    """The run config of a resume state (``last.pt`` records the run's identity, not its config): that of
    ``checkpoint.pt`` or ``run.yaml`` in the same folder, when it belongs to the same run identity."""
    import yaml

    from centerclip.training.identity import config_identity

    if not identity:
        return None
    final = weights.with_name(RUN_CHECKPOINT)
    if final.is_file() and final != weights:
        try:
            ckpt = torch.load(final, map_location="cpu", weights_only=False, mmap=True)
        except Exception:  # an unreadable neighbour: only a missed chance, not an error
            ckpt = None
        if isinstance(ckpt, dict) and "run_config" in ckpt and \
                ckpt.get("summary", {}).get("run_identity") == identity:
            return ckpt["run_config"]
    run_yaml = weights.with_name("run.yaml")
    if run_yaml.is_file():
        try:
            raw = yaml.safe_load(run_yaml.read_text())
        except (OSError, yaml.YAMLError):
            return None
        if isinstance(raw, dict) and config_identity(raw) == identity:
            return raw
    return None


def _read_run_checkpoint(weights: Path) -> dict:
    """:func:`~centerclip.training.checkpoint.read_checkpoint`, also for a resume state whose run config
    sits beside it."""
    from centerclip.training.checkpoint import read_checkpoint

    try:
        return read_checkpoint(weights)
    except ValueError as exc:
        message = str(exc)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=False, mmap=True)
    except Exception:
        state = None
    if isinstance(state, dict) and "model" in state and "run_identity" in state:
        raw = _run_config_beside(weights, state["run_identity"])
        if raw is None:
            raise SearchError(f"--checkpoint {weights}: a resume state without its run config, and no "
                              f"{RUN_CHECKPOINT} or run.yaml of the same run beside it; give the run folder "
                              f"or its {RUN_CHECKPOINT}")
        return {**state, "run_config": raw, "path": str(weights)}
    raise SearchError(f"--checkpoint {message}; {NOT_A_CHECKPOINT}")


def _load_run(weights: Path) -> tuple[RetrievalModel, int, int]:
    """(model, eval frames, eval words) of this package's ``checkpoint.pt`` / ``last.pt``."""
    from centerclip.training.checkpoint import from_checkpoint

    ckpt = _read_run_checkpoint(weights)
    try:
        model, cfg = from_checkpoint(ckpt)
    except (ValueError, RuntimeError, KeyError) as exc:
        raise SearchError(f"--checkpoint {weights}: cannot rebuild its model ({exc})") from None
    return model, cfg.eval.num_frames, cfg.eval.context_length


def _load_released(path: Path) -> tuple[RetrievalModel, int, int]:
    """(model, frames, words) of a released zip / folder / ckpt.best.pth.tar, as its hparams give them."""
    try:
        model, info = released.load(path)
    except (OSError, released.ReleasedCheckpointError) as exc:
        raise SearchError(f"--checkpoint {exc}") from None
    return model, info["max_frames"], info["max_words"]


def load_model(checkpoint: str | os.PathLike) -> tuple[RetrievalModel, ModelIdentity]:
    """The model a ``--checkpoint`` names, in eval mode on the CPU, and its identity.

    Raises :class:`SearchError` (naming the path) for a missing path or a file that is none of the
    accepted kinds.
    """
    path = Path(os.path.abspath(checkpoint))
    where = _locate(path)
    if where.kind == "run":
        model, frames, words = _load_run(where.load_from)
    else:
        model, frames, words = _load_released(where.load_from)
    try:
        sha = file_sha256(where.weights)
        inner = _member_sha256(where.weights) if where.zipped else sha
    except (OSError, zipfile.BadZipFile, StopIteration) as exc:
        raise SearchError(f"--checkpoint {where.weights}: cannot be read ({exc})") from None
    model.eval()
    return model, identity_of(model, path, where.kind, sha, frames, words, inner)
