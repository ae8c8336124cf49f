"""Rule manifest: parse the annotation files into the dataset manifest."""

import os

from _log import redirect_to_log

redirect_to_log(snakemake)  # noqa: F821 - injected by Snakemake

from centerclip.data.annotations import msrvtt_manifest, write_manifest  # noqa: E402

sm = snakemake  # noqa: F821
frame = msrvtt_manifest(os.path.dirname(sm.input.data_json), sm.params.video_dir, sm.params.train_split)
write_manifest(frame, sm.output[0])
print(frame.groupby("split").agg(videos=("video_id", "nunique"), captions=("caption", "size")))
