"""Rule figure5: kept centre-token patches of one test video, for 1, 2, 3 and 4 frames per segment."""

from _log import redirect_to_log

redirect_to_log(snakemake)  # noqa: F821 - injected by Snakemake

from centerclip.data.layouts import read_manifest  # noqa: E402
from centerclip.paper.figures import figure5_from_checkpoint  # noqa: E402

sm = snakemake  # noqa: F821
manifest = read_manifest(sm.input.manifest)
video_id = manifest[manifest.split == "test"].video_id.iloc[0]
figure5_from_checkpoint(sm.input.checkpoint, sm.input.cache, video_id, sm.output.png, sm.output.pdf, sm.params.label)
