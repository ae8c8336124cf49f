"""Rule download_lists: the original code's ActivityNet split lists, downloaded and verified by sha256; for a
synthetic twin, its own lists (not the original's bytes, so there is no published digest to check)."""

import os

from _log import redirect_to_log

redirect_to_log(snakemake)  # noqa: F821 - injected by Snakemake

from centerclip.data.activitynet import ACTIVITYNET_LISTS_DIR  # noqa: E402
from centerclip.data.fetch import download  # noqa: E402
from centerclip.data.upstreams import download_lists  # noqa: E402

sm = snakemake  # noqa: F821
cfg, mode = dict(sm.params.dataset), sm.params.mode
dest = os.path.dirname(sm.output[0])
if mode == "synthetic":
    print(f"synthetic twin: its own lists, from {os.path.join(sm.params.root, ACTIVITYNET_LISTS_DIR)}")
    for out in sm.output:
        download(os.path.join(sm.params.root, ACTIVITYNET_LISTS_DIR, os.path.basename(out)), out, progress=False)
else:  # placed or source: the lists are never part of the user's files
    download_lists(cfg["format"], dest, cfg, progress=False)
