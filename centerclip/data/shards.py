"""The shard table: what one compression shard did with each of its videos (``shard<N>.tsv``).

Rule ``compress_shard`` writes one per shard (:func:`write_shard`), rule ``frame_cache`` reads them all
(:func:`read_shards`). One row per video, tab-separated with a header, columns :data:`SHARD_COLUMNS`:
``status`` is ``ok`` (``path``, ``width``, ``height``, ``frames`` of the compressed file; ``reason``
empty) or ``bad`` (``reason`` says why; the other four empty).

The bytes are pandas' ``to_csv(sep="\\t", index=False)``: a field holding a tab, a newline or a
``"`` is quoted, so such paths and ids read back as written. A carriage return is not quoted and would
end the row when read back, so :func:`write_shard` refuses it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Iterable, Mapping

from centerclip.util import atomic

if TYPE_CHECKING:
    import pandas as pd

SHARD_COLUMNS = ("video_id", "split", "status", "path", "width", "height", "frames", "reason")


def compressed_row(video_id: str, split: str, path: str, width: int, height: int, frames: int) -> dict[str, object]:
    """The row of a video compressed into ``path`` (``width`` x ``height``, ``frames`` frames)."""
    return {"video_id": video_id, "split": split, "status": "ok", "path": path, "width": width, "height": height,
            "frames": frames, "reason": ""}


def bad_row(video_id: str, split: str, reason: str) -> dict[str, object]:
    """The row of a video that could not be compressed, and why."""
    return {"video_id": video_id, "split": split, "status": "bad", "path": "", "width": "", "height": "",
            "frames": "", "reason": reason}


def write_shard(rows: Iterable[Mapping[str, object]], path: str | os.PathLike) -> None:
    """Write the shard table of ``rows`` (made by :func:`compressed_row` / :func:`bad_row`) to ``path``,
    atomically. ValueError when a field holds a carriage return (it would not read back)."""
    import pandas as pd

    rows = list(rows)
    for row in rows:
        for column in SHARD_COLUMNS:
            if "\r" in str(row[column]):
                raise ValueError(f"{path}: video {row['video_id']!r}: its {column} {row[column]!r} holds a "
                                 f"carriage return, which a shard table cannot hold")
    table = pd.DataFrame(rows, columns=list(SHARD_COLUMNS))
    atomic.write_text(table.to_csv(sep="\t", index=False), path)


def read_shard(path: str | os.PathLike) -> pd.DataFrame:
    """One shard table as written by :func:`write_shard`, every field a string (empty where unset)."""
    import pandas as pd

    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = [c for c in SHARD_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: not a shard table, missing columns {missing}")
    return table


def read_shards(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """All the shard tables of ``paths``, one after another (a dataset's videos, every one once)."""
    import pandas as pd

    return pd.concat([read_shard(p) for p in paths])
