"""Rule frame_cache: every compressed video's frames into one HDF5 file; the full bad-video list."""

import pandas as pd

from _log import redirect_to_log

redirect_to_log(snakemake)  # noqa: F821 - injected by Snakemake

from centerclip.data.bad_videos import check_test_coverage, write_bad_videos  # noqa: E402
from centerclip.data.frame_cache import build_frame_cache  # noqa: E402

sm = snakemake  # noqa: F821
shards = pd.concat([pd.read_csv(p, sep="\t", dtype=str, keep_default_na=False) for p in sm.input.shards])
ok = shards[shards.status == "ok"]
split_of = dict(zip(shards.video_id, shards.split))
bad_rows = [(r.video_id, r.split, "compress", r.reason) for r in shards[shards.status == "bad"].itertuples()]
undecodable = build_frame_cache(zip(ok.video_id, ok.path), sm.output.cache, size=sm.params.crop, fps=sm.params.fps)
bad_rows += [(vid, split_of[vid], "cache", reason) for vid, reason in undecodable]
bad = write_bad_videos(bad_rows, sm.output.bad)
print(f"cached {len(ok) - len(undecodable)} videos; {len(bad)} bad videos listed in {sm.output.bad}")
check_test_coverage(bad, sm.params.allowed, sm.output.bad, sm.wildcards.dataset)
