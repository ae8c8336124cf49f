"""Rule frame_cache: every compressed video's frames into one HDF5 file; the full bad-video list."""

from _log import redirect_to_log

redirect_to_log(snakemake)  # noqa: F821 - injected by Snakemake

from centerclip.data.bad_videos import write_bad_videos  # noqa: E402
from centerclip.data.frame_cache import build_frame_cache  # noqa: E402
from centerclip.data.shards import read_shards  # noqa: E402

sm = snakemake  # noqa: F821
shards = read_shards(sm.input.shards)
ok, failed = shards[shards.status == "ok"], shards[shards.status == "bad"]
split_of = dict(zip(shards.video_id, shards.split))
undecodable = build_frame_cache(zip(ok.video_id, ok.path), sm.output.cache, size=sm.params.crop, fps=sm.params.fps,
                                storage=sm.params.storage, jpeg_quality=sm.params.jpeg_quality,
                                missing=[(r.video_id, f"compress: {r.reason}") for r in failed.itertuples()],
                                progress=True)
bad_rows = [(r.video_id, r.split, "compress", r.reason) for r in failed.itertuples()]
bad_rows += [(vid, split_of[vid], "cache", reason) for vid, reason in undecodable]
bad = write_bad_videos(bad_rows, sm.output.bad)
print(f"cached {len(ok) - len(undecodable)} videos ({sm.params.storage}); {len(bad)} bad videos listed in "
      f"{sm.output.bad}")
