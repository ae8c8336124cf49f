"""The bad-video list: every video that could not be compressed or cached, with the reason.

A broken video is never dropped silently: it is written to ``bad_videos.tsv`` (and recorded in
the frame cache itself), training proceeds without it, and a bad *test* video stops the run
unless the config names it in ``allow_missing_test_videos`` (test-set coverage decides
comparability with the paper).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import pandas as pd

from centerclip.util import atomic

COLUMNS = ["video_id", "split", "stage", "reason"]


class BadTestVideos(RuntimeError):
    """Test videos are bad and the config does not allow them to be missing."""


def write_bad_videos(rows: Iterable[Sequence[str]], path: str | os.PathLike) -> pd.DataFrame:
    """Write (video_id, split, stage, reason) rows as a TSV (atomically); returns them as a frame."""
    frame = pd.DataFrame(list(rows), columns=COLUMNS)
    atomic.write_text(frame.to_csv(sep="\t", index=False), path)
    return frame


def read_bad_videos(path: str | os.PathLike) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def check_test_coverage(bad: pd.DataFrame, allowed: Iterable[str], bad_list_path: str | os.PathLike,
                        dataset: str) -> dict:
    """The test-set coverage of a dataset, or BadTestVideos when a bad test video is not allowed.

    Args:
        bad: the bad-video list (``read_bad_videos``).
        allowed: ``datasets.<dataset>.allow_missing_test_videos`` of the config.
        bad_list_path, dataset: named in the message.

    Returns:
        ``{"dataset", "complete", "missing_test_videos", "bad_train_videos", "allowed_but_not_bad"}``.
    """
    allowed = list(allowed)
    test_bad = bad[bad.split == "test"]
    lost = test_bad[~test_bad.video_id.isin(allowed)]
    if not lost.empty:
        listing = "\n".join(f"  {r.video_id} ({r.stage}): {r.reason}" for r in lost.itertuples())
        cache = os.path.join(os.path.dirname(str(bad_list_path)), "frames.h5")
        raise BadTestVideos(
            f"{len(lost)} test video(s) of {dataset} are broken (all bad videos: {bad_list_path}):\n{listing}\n"
            f"Replace the source files and rebuild (`snakemake --forcerun compress_shard {cache}`), "
            "or accept losing them by adding their ids to "
            f"datasets.{dataset}.allow_missing_test_videos in the config (the numbers are then computed on an "
            "incomplete test set, not comparable with the paper, and the tables say so)."
        )
    return {
        "dataset": dataset,
        "complete": test_bad.empty,
        "missing_test_videos": sorted(test_bad.video_id),
        "bad_train_videos": sorted(bad.video_id[bad.split != "test"]),
        "allowed_but_not_bad": sorted(set(allowed) - set(test_bad.video_id)),
    }
