"""Where each dataset's files sit on disk, and the manifest table the parsers make of them.

A manifest has one row per (video, caption) with columns ``video_id``, ``split``
(``train``/``test``, MSVD and LSMDC also ``val``), ``caption`` and ``raw_path`` (path of the raw
video); :func:`read_manifest` / :func:`write_manifest` are its one reader and writer. A caption is
never empty (:func:`check_caption`): it would silently become a start+end token pair that matches
nothing.

Each dataset format has one root, laid out as the real downloads unpack (each sub-path can be
overridden by an option of :func:`centerclip.data.parsers.build_manifest`). :data:`LAYOUTS` states
that layout once, per format; the parsers (:mod:`centerclip.data.parsers`) read exactly these paths,
the placement check and its message (:mod:`centerclip.data.upstreams`) and the synthetic twins
(:mod:`centerclip.data.synthetic`) are built from it:

- msrvtt: ``<root>/msrvtt_data/{MSRVTT_data.json, MSRVTT_train.{7k,9k}.csv, MSRVTT_JSFUSION_test.csv}``
  (CLIP4Clip's msrvtt_data.zip) and ``<root>/MSRVTT/videos/all/videoN.mp4`` (MSRVTT.zip);
- msvd: ``<root>/msvd_data/{raw-captions.pkl, train_list.txt, val_list.txt, test_list.txt}``
  (CLIP4Clip's msvd_data.zip) and ``<root>/YouTubeClips/<id>.avi`` (YouTubeClips.tar);
- lsmdc: ``<root>/annotations/{LSMDC16_annos_training.csv, LSMDC16_annos_val.csv,
  LSMDC16_challenge_1000_publictect.csv}`` and ``<root>/videos/<movie>/<clip_id>.avi``, where
  ``<movie>`` is the clip id up to its last ``_`` (as the MPII per-movie archives unpack);
- activitynet: ``<root>/annotations/{train.json, val_1.json}`` and
  ``<root>/videos/v_<id>.{mp4,mkv,webm}``. The official captions.zip unpacks to ``captions/``:
  its ``train.json`` and ``val_1.json`` go into ``annotations/`` (one layout only, no fallback).
  The original code's lists (:data:`centerclip.data.activitynet.ACTIVITYNET_LISTS`) are not placed but
  downloaded (:func:`centerclip.data.upstreams.download_lists`), by default into ``<root>/original_splits/``.

LSMDC's ``LSMDC16_annos_val.csv`` is optional (read when present; it is never used for training or
the reported test numbers); every other file listed here is required.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

from centerclip.util import atomic

if TYPE_CHECKING:
    import pandas as pd
# pandas is imported where a table is read or written, so that importing the layouts (upstreams.py,
# hence the Snakefile) stays light.

MANIFEST_COLUMNS = ["video_id", "split", "caption", "raw_path"]
# Manifests written before the raw video's column was called raw_path name it "source"; finished runs'
# manifests are not rebuilt, so read_manifest renames that column.
_OLD_RAW_PATH_COLUMN = "source"


class AnnotationError(ValueError):
    """A malformed or missing annotation file; the message names the file (and line)."""


def check_caption(caption: str, where: str) -> str:
    """``caption``, or :class:`AnnotationError` "<where>: empty caption ..." when it is empty or blank."""
    if not caption.strip():
        raise AnnotationError(f"{where}: empty caption; fix or remove it (an empty caption matches nothing)")
    return caption


# ---------------------------------------------------------------------------------- layouts
# The one statement of where each dataset's files sit under its root. The parsers read exactly these
# paths; upstreams.py builds its placement check (and the message telling the user where to put gated
# files) from them; the synthetic twins are written to them.

#: MSR-VTT annotation files (CLIP4Clip's msrvtt_data.zip), by role.
MSRVTT_FILES = {"captions": "MSRVTT_data.json", "train_7k": "MSRVTT_train.7k.csv",
                "train_9k": "MSRVTT_train.9k.csv", "test": "MSRVTT_JSFUSION_test.csv"}
#: MSVD annotation files (CLIP4Clip's msvd_data.zip), by role (the split lists by split name).
MSVD_FILES = {"captions": "raw-captions.pkl", "train": "train_list.txt", "val": "val_list.txt",
              "test": "test_list.txt"}
#: LSMDC annotation files, by split (``val`` optional).
LSMDC_FILES = {"train": "LSMDC16_annos_training.csv", "val": "LSMDC16_annos_val.csv",
               "test": "LSMDC16_challenge_1000_publictect.csv"}
#: ActivityNet Captions annotation files, by split (``val_1.json`` is the retrieval test split).
ACTIVITYNET_FILES = {"train": "train.json", "test": "val_1.json"}
#: Where ActivityNet's caption files come from (the message of a missing one says so).
ACTIVITYNET_CAPTIONS_ZIP = ("captions.zip from https://cs.stanford.edu/people/ranjaykrishna/densevid/, "
                            "which unpacks to captions/")
#: The video file extensions of ActivityNet, in the order a video's file is looked for.
ACTIVITYNET_EXTENSIONS = (".mp4", ".mkv", ".webm")


@dataclass(frozen=True)
class Layout:
    """Where one dataset's files sit under its root, as :func:`centerclip.data.parsers.build_manifest`
    reads them.

    ``annotation_dir`` and ``video_dir`` are ``/``-separated paths relative to the root; ``files``
    maps a role (split, ...) to a file name in ``annotation_dir``; the roles in ``optional`` are
    read when present and skipped otherwise; ``videos`` describes the video files inside
    ``video_dir`` (for messages).
    """

    annotation_dir: str
    files: Mapping[str, str]
    video_dir: str
    videos: str
    optional: frozenset[str] = field(default_factory=frozenset)

    def annotation_path(self, role: str) -> str:
        """Path of the ``role`` file relative to the root."""
        return f"{self.annotation_dir}/{self.files[role]}"


#: Per dataset format: the layout its parser reads.
LAYOUTS: dict[str, Layout] = {
    "msrvtt": Layout("msrvtt_data", MSRVTT_FILES, "MSRVTT/videos/all", "videoN.mp4"),
    "msvd": Layout("msvd_data", MSVD_FILES, "YouTubeClips", "<id>.avi"),
    "lsmdc": Layout("annotations", LSMDC_FILES, "videos",
                    "<movie>/<clip_id>.avi, <movie> being the clip id up to its last '_'",
                    optional=frozenset({"val"})),
    "activitynet": Layout("annotations", ACTIVITYNET_FILES, "videos", "v_<id>.mp4 (.mkv and .webm too)"),
}
#: The dataset formats, in the order of :data:`LAYOUTS`.
FORMATS = tuple(LAYOUTS)


def lsmdc_movie(clip_id: str) -> str:
    """The movie folder of an LSMDC clip: the clip id up to its last ``_``."""
    return clip_id.rsplit("_", 1)[0]


# --------------------------------------------------------------------------------- manifest file

def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Read a manifest written by :func:`write_manifest` (captions stay strings, even empty)."""
    import pandas as pd

    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    # A manifest of a finished run, written when the raw video's column was still "source": read as is
    # (rebuilding it would rerun everything downstream).
    if _OLD_RAW_PATH_COLUMN in frame.columns and "raw_path" not in frame.columns:
        frame = frame.rename(columns={_OLD_RAW_PATH_COLUMN: "raw_path"})
    missing = set(MANIFEST_COLUMNS) - set(frame.columns)
    if missing:
        raise AnnotationError(f"{path}: not a manifest, missing columns {sorted(missing)}")
    return frame


def write_manifest(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write the manifest columns of ``frame`` as CSV, atomically (read back by :func:`read_manifest`)."""
    with atomic.path(path) as tmp:
        frame[MANIFEST_COLUMNS].to_csv(tmp, index=False)
