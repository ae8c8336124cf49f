"""The bad-video list: every video that could not be compressed or cached, with the reason.

A broken video is never dropped silently: it is written to ``bad_videos.tsv``, training
proceeds without it, and a bad *test* video stops the run unless the config names it in
``allow_missing_test_videos`` (test-set coverage decides comparability with the paper).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import pandas as pd

from centerclip import atomic

COLUMNS = ["video_id", "split", "stage", "reason"]


class BadTestVideos(RuntimeError):
    pass


def write_bad_videos(rows: Iterable[Sequence[str]], path: str | os.PathLike) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows), columns=COLUMNS)
    atomic.write_text(frame.to_csv(sep="\t", index=False), path)
    return frame


def read_bad_videos(path: str | os.PathLike) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def check_test_coverage(bad: pd.DataFrame, allowed: Iterable[str], bad_list_path: str, dataset: str) -> None:
    """Raise BadTestVideos when a test video is bad and not explicitly allowed to be missing."""
    allowed = set(allowed)
    lost = bad[(bad.split == "test") & ~bad.video_id.isin(allowed)]
    if not lost.empty:
        examples = "; ".join(f"{r.video_id}: {r.reason}" for r in lost.head(5).itertuples())
        raise BadTestVideos(
            f"{len(lost)} test videos of {dataset} are broken (listed in {bad_list_path}), e.g. {examples}. "
            f"Replace them, or accept losing them by naming them under "
            f"datasets.{dataset}.allow_missing_test_videos (results are then not comparable with the paper)."
        )
