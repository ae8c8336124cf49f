"""Rule compress_shard: ffmpeg-compress every n-th video of the manifest; list the bad ones."""

import os

from _log import redirect_to_log

redirect_to_log(snakemake)  # noqa: F821 - injected by Snakemake

from centerclip.data.compress import compress_many  # noqa: E402
from centerclip.data.layouts import read_manifest  # noqa: E402
from centerclip.data.shards import bad_row, compressed_row, write_shard  # noqa: E402

sm = snakemake  # noqa: F821
shard, shards = int(sm.wildcards.shard), int(sm.params.shards)
videos = read_manifest(sm.input.manifest).drop_duplicates("video_id").sort_values("video_id")
mine = videos.iloc[shard::shards]
items = [(row.raw_path, os.path.join(sm.params.out_dir, f"{row.video_id}.mp4")) for row in mine.itertuples()]
results, bad = compress_many(items, fps=sm.params.fps, short_side=sm.params.short_side, threads=sm.threads,
                             compression=sm.params.compression)

by_src = {row.raw_path: row for row in mine.itertuples()}
rows = [compressed_row(by_src[r["src"]].video_id, by_src[r["src"]].split, r["dst"], r["width"], r["height"],
                       r["frames"]) for r in results]
rows += [bad_row(by_src[src].video_id, by_src[src].split, reason) for src, reason in bad]
write_shard(rows, sm.output[0])
print(f"shard {shard}/{shards}: {len(results)} compressed, {len(bad)} bad")
