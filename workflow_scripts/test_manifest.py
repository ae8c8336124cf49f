"""Rule test_manifest: the test rows of a dataset's manifest (released checkpoints need nothing else)."""

from _log import redirect_to_log

redirect_to_log(snakemake)  # noqa: F821 - injected by Snakemake

from centerclip.data.layouts import read_manifest, write_manifest  # noqa: E402

sm = snakemake  # noqa: F821
frame = read_manifest(sm.input[0])
test = frame[frame.split == "test"]
if test.empty:
    raise SystemExit(f"{sm.input[0]}: no test rows")
write_manifest(test, sm.output[0])
print(f"{test.video_id.nunique()} test videos, {len(test)} captions (of {frame.video_id.nunique()} videos)")
