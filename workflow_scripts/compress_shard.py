"""Rule compress_shard: ffmpeg-compress every n-th video of the manifest; list the bad ones."""

import os

import pandas as pd

from _log import redirect_to_log

redirect_to_log(snakemake)  # noqa: F821 - injected by Snakemake

from centerclip.util import atomic  # noqa: E402
from centerclip.data.annotations import read_manifest  # noqa: E402
from centerclip.data.compress import compress_many  # noqa: E402

sm = snakemake  # noqa: F821
shard, shards = int(sm.wildcards.shard), int(sm.params.shards)
videos = read_manifest(sm.input.manifest).drop_duplicates("video_id").sort_values("video_id")
mine = videos.iloc[shard::shards]
items = [(row.source, os.path.join(sm.params.out_dir, f"{row.video_id}.mp4")) for row in mine.itertuples()]
results, bad = compress_many(items, fps=sm.params.fps, short_side=sm.params.short_side, threads=sm.threads,
                             compression=sm.params.compression)

by_src = {row.source: row for row in mine.itertuples()}
rows = [{"video_id": by_src[r["src"]].video_id, "split": by_src[r["src"]].split, "status": "ok", "path": r["dst"],
         "width": r["width"], "height": r["height"], "frames": r["frames"], "reason": ""} for r in results]
rows += [{"video_id": by_src[src].video_id, "split": by_src[src].split, "status": "bad", "path": "",
          "width": "", "height": "", "frames": "", "reason": reason} for src, reason in bad]
table = pd.DataFrame(rows, columns=["video_id", "split", "status", "path", "width", "height", "frames", "reason"])
atomic.write_text(table.to_csv(sep="\t", index=False), sm.output[0])
print(f"shard {shard}/{shards}: {len(results)} compressed, {len(bad)} bad")
