"""The authors' released CenterCLIP checkpoints as this package's model, and their evaluation.

The original code (github.com/mzhaoshuai/CenterCLIP, commit 886fe7342956f361c9c7b93f82d05c7ec5ed677b,
README "Checkpoints") released eight trained models as ``<id>.zip``, each holding

- ``ckpt.best.pth.tar``: ``{epoch, global_step, arch, state_dict, best_acc1, optimizer[, scaler]}``;
  ``state_dict`` is the DDP-wrapped CLIP4Clip's, so every key starts with ``module.`` and CLIP's
  weights sit under ``clip.``, together with the persistent buffer ``clip.visual.position_ids``;
- ``hparams_train.json``: the training run's argparse namespace (``params.py``): frames
  (``max_frames``), words (``max_words``), the dataset (``datatype``) and the token clustering
  (``cluster_algo``, ``cluster_num_blocks``, ``target_frames_blocks``, ``minkowski_norm_p``, ...);
- ``log.txt`` and a tensorboard folder (not read).

:func:`load` rebuilds the model from those two files: CLIP's weights strictly (every weight of
CLIP present, no other weight accepted; only the position-id buffer and the training state are
dropped) and the video encoder from the hparams (:func:`reduction_from_hparams`). Settings this
package does not implement (a ``seqTransf`` head, cluster embeddings, ...) are refused with the
key named, never ignored. ``python -m centerclip.paper.released`` evaluates one checkpoint on a test split.
"""

from __future__ import annotations

import argparse
import json
import logging
import pickle
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, Mapping

import torch

from centerclip.util import atomic
from centerclip.model.clip import CLIP
from centerclip.model.retrieval import RetrievalModel
from centerclip.model.video_encoder import ClusterStage, TokenReduction

log = logging.getLogger("centerclip.paper.released")

CHECKPOINT = "ckpt.best.pth.tar"
HPARAMS = "hparams_train.json"

#: The original's ``--datatype`` -> the dataset format of this package.
DATATYPES = {"msrvtt": "msrvtt", "msvd": "msvd", "lsmdc": "lsmdc", "activity": "activitynet"}

#: Buffers of the original's CLIP that are not weights: dropped by name, nothing else is.
NON_WEIGHT_KEYS = ("visual.position_ids",)

#: Settings of the original's ``params.py`` that change the model, with the only value this package
#: implements (None: unset). The original's own default applies where a file lacks a key.
REQUIRED_SETTINGS: dict[str, tuple[Any, Any]] = {
    # key: (the original's default, the value we implement)
    "sim_header": ("meanP", "meanP"),
    "linear_patch": ("2d", "2d"),
    "loose_type": (False, True),
    "slice_framepos": (0, 2),           # 2: frames taken uniformly over the video (ours)
    "eval_frame_order": (0, 0),
    "cluster_embedding": (0, 0),
    "cluster_frame_embedding": (0, 0),
    "adaptive_cls": (0, 0),
    "time_embedding": (0, 0),
    "deep_cluster": (0, 0),
    "spectral_spg": (0, 0),
    "cluster_distance": ("euclidean", "euclidean"),
    "aggregation": (None, None),
}

#: ``cluster_algo`` -> (our method, our clustering algorithm). Token and temporal shift are not
#: here: where the original applies them is not read from the hparams, and no release uses them.
ALGORITHMS = {"kmediods++": ("centerclip", "kmedoids"), "spectral": ("centerclip", "spectral"),
              "pooling": ("pooling", "kmedoids"), "sparse_sampling": ("sparse", "kmedoids")}


class ReleasedCheckpointError(ValueError):
    """A released checkpoint that cannot be read or whose settings this package does not implement."""


def stage_starts(max_frames: int, target_frames_blocks: list[int], cluster_num_blocks: list[int]
                 ) -> list[tuple[int, int, int]]:
    """Where the original puts its reduction stages: ``(block, segments, clusters)`` per stage.

    Blocks are numbered from 1 with ``F = [max_frames] + target_frames_blocks`` and
    ``C = cluster_num_blocks``: block i starts with a reduction when ``C[i−1] > 1`` and
    (``F[i−1] > F[i]`` or ``C[max(i−2, 0)] > C[i−1]``), to ``F[i]`` segments and ``C[i−1]``
    clusters. The returned ``block`` is the number of blocks before the stage (B_a of the paper),
    e.g. frames ``12×6 + 4×6`` with 49 clusters give ``[(6, 4, 49)]``, i.e. (B6 − 4, 49).
    """
    frames = [max_frames, *target_frames_blocks]
    clusters = list(cluster_num_blocks)
    if len(frames) != len(clusters) + 1:
        raise ReleasedCheckpointError(f"target_frames_blocks has {len(target_frames_blocks)} entries but "
                                      f"cluster_num_blocks {len(clusters)}: one per transformer block each")
    return [(i - 1, frames[i], clusters[i - 1]) for i in range(1, len(clusters) + 1)
            if clusters[i - 1] > 1 and (frames[i - 1] > frames[i] or clusters[max(i - 2, 0)] > clusters[i - 1])]


def _check_supported(hp: Mapping[str, Any]) -> None:
    for key, (default, ours) in REQUIRED_SETTINGS.items():
        value = hp.get(key, default)
        if value in ("None", "none"):  # argparse keeps a string default as written
            value = None
        if value != ours:
            raise ReleasedCheckpointError(f"{HPARAMS}: {key} = {value!r} is not implemented here "
                                          f"(supported: {ours!r})")


def _spectral_knn(hp: Mapping[str, Any], frames_per_segment: int, patch_size: int) -> int | None:
    """The original's graph: dense for HeatKernel; for KNN, ``spectral_knn_k`` when >= 5, else its
    automatic k = 5 × frames per segment (+5 for ViT-B/16)."""
    graph = hp.get("spectral_graph", "HeatKernel")
    if graph == "HeatKernel":
        return None
    if graph != "KNN":
        raise ReleasedCheckpointError(f"{HPARAMS}: spectral_graph = {graph!r} is not implemented here "
                                      "(supported: 'HeatKernel', 'KNN')")
    k = int(hp.get("spectral_knn_k", 1))
    return k if k >= 5 else 5 * frames_per_segment + (5 if patch_size == 16 else 0)


def reduction_from_hparams(hp: Mapping[str, Any], patch_size: int) -> TokenReduction:
    """The video encoder a released run trained with, from its ``hparams_train.json``.

    ``patch_size``: the CLIP's (from its weights), which the original's spectral k depends on.
    Raises :class:`ReleasedCheckpointError` naming the key of any setting not implemented here.
    """
    _check_supported(hp)
    if not hp.get("cluster_inter", 0):
        return TokenReduction()  # CLIP4Clip meanP
    algo = hp.get("cluster_algo", "kmediods++")
    if algo not in ALGORITHMS:
        raise ReleasedCheckpointError(f"{HPARAMS}: cluster_algo = {algo!r} is not implemented here "
                                      f"(supported: {', '.join(ALGORITHMS)})")
    method, algorithm = ALGORITHMS[algo]
    p = float(hp.get("minkowski_norm_p", 2.0))
    if p != 2.0 and algorithm != "kmedoids":
        raise ReleasedCheckpointError(f"{HPARAMS}: minkowski_norm_p = {p} with cluster_algo = {algo!r} "
                                      "is not implemented here (only k-medoids takes another distance)")
    if algorithm == "spectral" and float(hp.get("spectral_sigma", 2.0)) != 2.0:
        raise ReleasedCheckpointError(f"{HPARAMS}: spectral_sigma = {hp['spectral_sigma']} is not implemented "
                                      "here (supported: 2.0, the paper's)")
    pre_norm = bool(hp.get("pre_norm", 0))
    if pre_norm and algorithm != "kmedoids":
        raise ReleasedCheckpointError(f"{HPARAMS}: pre_norm = 1 with cluster_algo = {algo!r} is not "
                                      "implemented here (only k-medoids clusters L2-normalised tokens)")
    frames = int(hp["max_frames"])
    starts = stage_starts(frames, list(hp["target_frames_blocks"]), list(hp["cluster_num_blocks"]))
    if not starts:
        raise ReleasedCheckpointError(f"{HPARAMS}: cluster_inter = 1 but cluster_num_blocks / "
                                      "target_frames_blocks place no reduction stage")
    stages, segments_before = [], frames
    for block, segments, clusters in starts:
        stages.append(ClusterStage(
            block=block, segments=segments, clusters=clusters, algorithm=algorithm, l2_normalize=pre_norm,
            knn=_spectral_knn(hp, segments_before // segments, patch_size) if algorithm == "spectral" else None,
            distance_p=p if method == "centerclip" else 2.0))
        segments_before = segments
    return TokenReduction(method, tuple(stages))


def describe(reduction: TokenReduction) -> str:
    """A table cell: ``meanP`` or e.g. ``k-medoids++ (B6 − 4, 49)``, with any non-paper setting (the method's
    own :meth:`~centerclip.model.methods.ReductionMethod.describe`)."""
    return reduction.describe()


def _member(names: list[str], wanted: str, where: Path) -> str:
    found = [n for n in names if PurePosixPath(n).name == wanted and "__MACOSX" not in n]
    if len(found) != 1:
        raise ReleasedCheckpointError(f"{where}: expected one {wanted}, found {len(found)}"
                                      + (f" ({', '.join(found)})" if found else "")
                                      + "; a released CenterCLIP zip holds ckpt.best.pth.tar and hparams_train.json")
    return found[0]


def _read_checkpoint(path: Path) -> Mapping[str, Any]:
    # mmap (torch's zip format only): the optimizer state, twice CLIP's size, is never read into memory
    mmap = zipfile.is_zipfile(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError:
        # Not only tensors and containers (e.g. a numpy scalar best_acc1): the file was chosen by
        # the user and its digest recorded at download; read it fully.
        log.warning("%s: holds Python objects beyond tensors; loading it with weights_only=False", path)
        return torch.load(path, map_location="cpu", weights_only=False, mmap=mmap)
    except Exception as exc:  # torch raises RuntimeError, EOFError, ... for truncated or foreign files
        raise ReleasedCheckpointError(f"{path}: cannot be read as a PyTorch checkpoint "
                                      f"({type(exc).__name__}: {exc})") from None


def _clip_weights(ckpt: Mapping[str, Any], where: Path) -> dict[str, torch.Tensor]:
    """CLIP's weights from the DDP state dict: ``module.clip.<name>`` -> ``<name>``."""
    sd = ckpt.get("state_dict") if isinstance(ckpt, Mapping) else None
    if not isinstance(sd, Mapping):
        raise ReleasedCheckpointError(f"{where}: no 'state_dict' (keys: {list(ckpt)[:8] if isinstance(ckpt, Mapping) else type(ckpt).__name__})")
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    others = sorted(k for k in sd if not k.startswith("clip."))
    if others:
        # e.g. frame_position_embeddings / transformerClip of a seqTransf head: weights we would drop
        raise ReleasedCheckpointError(f"{where}: weights outside CLIP ({', '.join(others[:6])}"
                                      f"{', ...' if len(others) > 6 else ''}) belong to a head this package "
                                      "does not implement (meanP only)")
    clip = {k.removeprefix("clip."): v for k, v in sd.items()}
    return {k: v for k, v in clip.items() if k not in NON_WEIGHT_KEYS}


def _extract(zip_path: Path, into: Path) -> tuple[Path, Path]:
    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
        members = (_member(names, CHECKPOINT, zip_path), _member(names, HPARAMS, zip_path))
        out = []
        for name in members:
            target = into / PurePosixPath(name).name
            with archive.open(name) as src, open(target, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            out.append(target)
    return out[0], out[1]


def _files(path: Path) -> tuple[Path, Path]:
    """``ckpt.best.pth.tar`` and ``hparams_train.json`` of an extracted release folder."""
    if path.is_file():  # the checkpoint itself, hparams beside it
        return path, path.with_name(HPARAMS)
    names = [p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()]
    return path / _member(names, CHECKPOINT, path), path / _member(names, HPARAMS, path)


def _read_release(ckpt_path: Path, hp_path: Path) -> tuple[dict, CLIP, dict]:
    """(hparams, CLIP with the checkpoint's weights, its epoch / global_step / best_acc1)."""
    try:
        hp = json.loads(hp_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ReleasedCheckpointError(f"{hp_path}: not readable as the run's hparams ({exc})") from None
    for key in ("max_frames", "max_words"):
        if key not in hp:
            raise ReleasedCheckpointError(f"{hp_path}: no {key!r}; a released run's {HPARAMS} has it")
    ckpt = _read_checkpoint(ckpt_path)
    weights = _clip_weights(ckpt, ckpt_path)
    try:
        clip = CLIP.from_state_dict(weights)
    except ValueError as exc:
        raise ReleasedCheckpointError(f"{ckpt_path}: {exc}") from None
    info = {k: (v.item() if isinstance(v, torch.Tensor) else v)
            for k, v in ckpt.items() if k in ("epoch", "global_step", "best_acc1")}
    return hp, clip, info  # the optimizer state and the mmap of the file go with ckpt


def load(path: str | Path) -> tuple[RetrievalModel, dict[str, Any]]:
    """One of the authors' released checkpoints as a :class:`RetrievalModel` (fp32, CPU, eval mode).

    ``path``: the released ``<id>.zip``, its extracted folder, or its ``ckpt.best.pth.tar`` with
    ``hparams_train.json`` beside it. Returns the model and a dict with ``id``, ``dataset`` (the
    hparams' ``datatype``), ``format`` (this package's name for it, or None), ``max_frames``,
    ``max_words``, ``pretrained_clip_name``, ``reduction`` (as in a run config), ``setting``
    (:func:`describe`), ``epoch``, ``global_step``, ``best_acc1`` and ``hparams`` (all of them).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ReleasedCheckpointError: not a released checkpoint, or a setting not implemented here
            (the message names the file and key).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"released checkpoint {path} does not exist")
    if zipfile.is_zipfile(path) and not is_torch_zip(path):
        # the two members extracted beside the zip (same disk as the data, not /tmp), deleted after reading
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            hp, clip, info = _read_release(*_extract(path, Path(tmp)))
    else:
        hp, clip, info = _read_release(*_files(path))
    patch = clip.config.vision_patch_size
    named = hp.get("pretrained_clip_name")
    if named in ("ViT-B/32", "ViT-B/16") and int(named[-2:]) != patch:
        raise ReleasedCheckpointError(f"{path}: {HPARAMS} names {named} but the weights have {patch}-pixel patches")
    try:
        reduction = reduction_from_hparams(hp, patch)
    except ReleasedCheckpointError as exc:
        raise ReleasedCheckpointError(f"{path}: {exc}") from None
    model = RetrievalModel(clip, reduction).eval()
    datatype = hp.get("datatype")
    return model, {
        "id": path.stem if path.is_file() and path.suffix == ".zip" else path.name,
        "dataset": datatype, "format": DATATYPES.get(datatype),
        "max_frames": int(hp["max_frames"]), "max_words": int(hp["max_words"]),
        "pretrained_clip_name": named, "reduction": reduction_to_dict(reduction),
        "setting": describe(reduction), **info, "hparams": hp,
    }


def is_torch_zip(path: Path) -> bool:
    """Whether the zip ``path`` is a ``torch.save`` file (``<name>/data.pkl``, no ``hparams_train.json``), not a
    released ``<id>.zip``: a bare ``ckpt.best.pth.tar`` or a ``checkpoint.pt`` saved by torch >= 1.6."""
    with zipfile.ZipFile(path) as archive:
        return any(n.endswith("/data.pkl") for n in archive.namelist()) and \
            not any(PurePosixPath(n).name == HPARAMS for n in archive.namelist())


def reduction_to_dict(reduction: TokenReduction) -> dict[str, Any]:
    """The ``reduction`` section of a run config (:meth:`TokenReduction.from_dict` reads it back)."""
    return {"method": reduction.method, "segment_valid": reduction.segment_valid,
            "stages": [dict(vars(s)) for s in reduction.stages]}


def main(argv: list[str] | None = None) -> int:
    from centerclip.training.evaluate import evaluate_test_split
    from centerclip.util.provenance import provenance
    from centerclip.data.digests import file_sha256
    from centerclip.training.settings import EvalSettings

    parser = argparse.ArgumentParser(description="Evaluate one of the authors' released CenterCLIP checkpoints "
                                                 "on a test split, with its own frames and words.")
    parser.add_argument("--checkpoint", required=True, help="<id>.zip as released (or its extracted folder)")
    parser.add_argument("--manifest", required=True, help="manifest whose 'test' rows are the test split")
    parser.add_argument("--cache", required=True, help="frames.h5 holding those test videos")
    parser.add_argument("--out", required=True, help="metrics.json to write")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    try:
        model, info = load(args.checkpoint)
    except (OSError, ReleasedCheckpointError) as exc:
        log.error("%s", exc)
        return 1
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    settings = EvalSettings(num_frames=info["max_frames"], context_length=info["max_words"],
                            batch_size=args.batch_size)
    metrics = evaluate_test_split(model.to(device), args.manifest, args.cache, settings, device)
    metrics["checkpoint"] = {k: v for k, v in info.items() if k != "hparams"}
    metrics["checkpoint"]["sha256"] = file_sha256(args.checkpoint) if Path(args.checkpoint).is_file() else None
    metrics["hparams"] = info["hparams"]
    metrics["provenance"] = provenance(device)
    atomic.write_json(metrics, args.out)
    log.info("%s: t2v %s | v2t %s", info["id"], json.dumps(metrics["t2v"]), json.dumps(metrics["v2t"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
