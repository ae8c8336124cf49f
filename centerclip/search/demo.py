"""The demo's search check: index a run's test videos from their raw files, query their test captions,
and compare the search's text->video recall with the run's own evaluation (``metrics.json``).

The index decodes each raw video as the data stage does (3 fps, centre crop) and encodes it with the
run's own frames, token reduction and evaluation batch size, so its embeddings are those the evaluation
computed from the frame cache; the captions are tokenised as the evaluation tokenises them. The recall
is computed with the evaluation's own rank function (:func:`centerclip.training.metrics.ranks_of_truth`,
ties ranked pessimistically) on the same kind of similarity matrix
(:func:`centerclip.training.evaluate.block_similarity`), so it equals the run's T->V R@1 / R@5.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from centerclip.search.errors import SearchError
from centerclip.training.metrics import ranks_of_truth, summarise_ranks
from centerclip.util import atomic

#: Ranks the search's recall is compared at (the run's metrics.json has R1, R5, R10).
RECALL_KS = (1, 5)
#: Scores this close to the truth's count as a near-tie: float noise may order them either way.
NEAR_TIE = 1e-5


@dataclass(frozen=True)
class TestSet:
    """The test split of a manifest: each video once (manifest order) with its raw file, and every caption
    with the index of its video."""

    video_ids: list[str]
    raw_paths: list[str]
    captions: list[str]
    caption_video: list[int]  # captions[i] describes video_ids[caption_video[i]]


def read_test_set(manifest: str | os.PathLike, leave_out: list[str] = ()) -> TestSet:
    """The ``test`` rows of ``manifest`` (:func:`centerclip.data.layouts.read_manifest`), without the
    videos ``leave_out`` and their captions (test videos the evaluation left out as missing)."""
    from centerclip.data.layouts import read_manifest

    frame = read_manifest(manifest)
    test = frame[(frame.split == "test") & ~frame.video_id.isin(list(leave_out))]
    if test.empty:
        raise SearchError(f"{manifest}: no test rows")
    raw = dict(zip(test.video_id, test.raw_path))
    video_ids = list(dict.fromkeys(test.video_id))
    where = {v: i for i, v in enumerate(video_ids)}
    return TestSet(video_ids, [raw[v] for v in video_ids], list(test.caption), [where[v] for v in test.video_id])


def link_videos(test: TestSet, folder: str | os.PathLike) -> list[str]:
    """A fresh ``folder`` of one symlink per test video, ``<video_id><ext>`` -> its raw file (absolute);
    returns the links' names in the order of ``test.video_ids``."""
    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    names = []
    for video_id, raw in zip(test.video_ids, test.raw_paths):
        raw = Path(raw)
        if not raw.is_file():
            raise SearchError(f"test video {video_id}: its raw file {raw} does not exist")
        name = f"{video_id}{raw.suffix}"
        (folder / name).symlink_to(raw.resolve())
        names.append(name)
    return names


def recall(scores: torch.Tensor, truth: torch.Tensor, tolerance: float = 0.0) -> dict[str, float]:
    """T->V R@1 / R@5 (%) of ``scores`` [Q, N] with ``truth`` [Q] (the video of each query), ranked by the
    evaluation's function. ``tolerance`` > 0: the best and worst a near-tie allows instead, as
    ``{"R1": (worst, best), ...}``."""
    if tolerance == 0:
        summary = summarise_ranks(ranks_of_truth(scores, truth))
        return {f"R{k}": summary[f"R{k}"] for k in RECALL_KS}
    true_score = scores.gather(1, truth.view(-1, 1))
    worst = (scores >= true_score - tolerance).sum(dim=1)
    best = (scores > true_score + tolerance).sum(dim=1) + 1
    w, b = summarise_ranks(worst.long()), summarise_ranks(best.long())
    return {f"R{k}": (w[f"R{k}"], b[f"R{k}"]) for k in RECALL_KS}


def compare_with_run(scores: torch.Tensor, truth: torch.Tensor, run_t2v: dict, n_videos: int) -> dict:
    """recall.json's contents: the search's R@1 / R@5 beside the run's, ``equal`` when all match exactly;
    ``ties_only`` when they differ but every difference lies within what near-ties (scores within
    :data:`NEAR_TIE` of the truth's) allow."""
    ours = recall(scores, truth)
    out = {f"t2v_R{k}": ours[f"R{k}"] for k in RECALL_KS}
    out |= {f"run_t2v_R{k}": float(run_t2v[f"R{k}"]) for k in RECALL_KS}
    out |= {"n_queries": int(len(truth)), "n_videos": int(n_videos)}
    out["equal"] = all(out[f"t2v_R{k}"] == out[f"run_t2v_R{k}"] for k in RECALL_KS)
    if not out["equal"]:
        bounds = recall(scores, truth, tolerance=NEAR_TIE)
        out["ties_only"] = all(bounds[f"R{k}"][0] <= out[f"run_t2v_R{k}"] <= bounds[f"R{k}"][1] for k in RECALL_KS)
    return out


def search_test_set(checkpoint: str | os.PathLike, manifest: str | os.PathLike, metrics: str | os.PathLike,
                    out_dir: str | os.PathLike, threads: int = 1, page_queries: int = 10, top: int = 5) -> dict:
    """Index the test videos of ``manifest`` (raw files, linked under ``out_dir``/videos) with the run at
    ``checkpoint`` (its folder or checkpoint.pt), query every test caption, and write ``out_dir``/index.h5,
    queries.html (the first ``page_queries`` captions, ``top`` videos each) and recall.json.

    Returns recall.json's contents. Raises :class:`SearchError` when a video cannot be indexed or when the
    recall differs from the run's own T->V R@1 / R@5 in ``metrics`` by more than near-ties allow.
    """
    import decord

    from centerclip.search.checkpoints import load_model
    from centerclip.search.index import read_index
    from centerclip.search.page import Hit, render_page
    from centerclip.search.ranking import top_k
    from centerclip.search.texts import encode_texts
    from centerclip.search.update import update_index
    from centerclip.training.checkpoint import read_checkpoint
    from centerclip.training.evaluate import block_similarity

    out_dir = Path(out_dir)
    index_path, page_path, recall_path = out_dir / "index.h5", out_dir / "queries.html", out_dir / "recall.json"
    run_metrics = json.loads(Path(metrics).read_text())
    # the test videos the evaluation left out (missing from the frame cache, allowed by the config)
    test = read_test_set(manifest, run_metrics.get("test_coverage", {}).get("missing_test_videos", []))
    names = link_videos(test, out_dir / "videos")
    run_file = Path(checkpoint)
    run_file = run_file / "checkpoint.pt" if run_file.is_dir() else run_file
    # the evaluation's batch size: batched float arithmetic may differ in its last bits with the batch shape
    batch_size = int(read_checkpoint(run_file)["run_config"]["eval"]["batch_size"])

    torch.set_num_threads(threads)
    decord.logging.set_level(decord.logging.QUIET)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # as the evaluation chooses
    model, identity = load_model(checkpoint)
    index_path.unlink(missing_ok=True)  # a fresh index: every video encoded in this run's batches
    skipped: list[str] = []
    update_index(model, identity, out_dir / "videos", index_path, device, threads=threads, batch_size=batch_size,
                 warn=skipped.append)
    idx = read_index(index_path)
    if idx.failed or len(idx.entries) != len(names):
        raise SearchError(f"{index_path}: {len(idx.entries)} of {len(names)} test videos indexed: "
                          + "; ".join(skipped))
    column = {e.path: i for i, e in enumerate(idx.entries)}
    truth = torch.tensor([column[names[v]] for v in test.caption_video])
    texts = encode_texts(model.to(device), test.captions, identity.context_length, device)
    scores = block_similarity(torch.from_numpy(texts), torch.from_numpy(idx.embeddings))

    result = compare_with_run(scores, truth, run_metrics["t2v"], len(idx.entries))
    result |= {"checkpoint": os.fspath(run_file), "eval_batch_size": batch_size}
    atomic.write_json(result, recall_path)

    ranked = top_k(scores[:page_queries].numpy(), min(top, len(idx.entries)))
    pages = [(f"{caption}  [truth: {names[v]}]",
              [Hit(r, idx.entries[i].path, s, idx.entries[i].duration, idx.entries[i].thumbnail)
               for r, (i, s) in enumerate(hits, 1)])
             for caption, v, hits in zip(test.captions, test.caption_video, ranked)]
    atomic.write_text(render_page(pages, page_path, index_path, idx.attrs), page_path)

    if not result["equal"] and not result["ties_only"]:
        ours = ", ".join(f"R@{k} {result[f't2v_R{k}']:.4f}" for k in RECALL_KS)
        theirs = ", ".join(f"R@{k} {result[f'run_t2v_R{k}']:.4f}" for k in RECALL_KS)
        raise SearchError(f"the search's text->video recall ({ours}) is not the run's own ({theirs}, {metrics}), "
                          f"and near-ties do not explain the difference: the index's embeddings are not the "
                          f"evaluation's (see {recall_path})")
    return result
