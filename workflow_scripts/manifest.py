"""Rule manifest: parse the annotation files into the dataset manifest."""

from _log import redirect_to_log

redirect_to_log(snakemake)  # noqa: F821 - injected by Snakemake

from centerclip.data.annotations import build_manifest, write_manifest  # noqa: E402

sm = snakemake  # noqa: F821
frame = build_manifest(sm.params.format, sm.params.root, **sm.params.options)
write_manifest(frame, sm.output[0])
print(frame.groupby("split").agg(videos=("video_id", "nunique"), captions=("caption", "size")))
