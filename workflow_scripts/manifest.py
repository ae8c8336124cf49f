"""Rule manifest: parse the annotation files into the dataset manifest (ActivityNet: the original code's
membership, from the lists of rule download_lists, with what it leaves out recorded and said in one line)."""

import os

from _log import redirect_to_log

redirect_to_log(snakemake)  # noqa: F821 - injected by Snakemake

from centerclip.util import atomic  # noqa: E402
from centerclip.data.activitynet import activitynet_membership  # noqa: E402
from centerclip.data.layouts import LAYOUTS, write_manifest  # noqa: E402
from centerclip.data.parsers import build_manifest  # noqa: E402

sm = snakemake  # noqa: F821
options = dict(sm.params.options)
lists = list(sm.input.get("lists") or [])
if lists:
    options["lists_dir"] = os.path.dirname(lists[0])
frame = build_manifest(sm.params.format, sm.params.root, **options)
write_manifest(frame, sm.output[0])
print(frame.groupby("split").agg(videos=("video_id", "nunique"), captions=("caption", "size")))
if sm.params.format == "activitynet":
    membership = activitynet_membership(os.path.join(sm.params.root, LAYOUTS["activitynet"].annotation_dir),
                                        options["lists_dir"])
    atomic.write_json(membership.record(), sm.log.left_out)
    print(membership.summary())
