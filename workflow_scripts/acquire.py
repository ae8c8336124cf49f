"""Rule acquire: generate the synthetic twin, or check / download the real dataset; then mark it ready."""

import os

from _log import redirect_to_log

redirect_to_log(snakemake)  # noqa: F821 - injected by Snakemake

from centerclip.util import atomic  # noqa: E402
from centerclip.data.synthetic import twins  # noqa: E402
from centerclip.data.upstreams import acquire, check_placed_files  # noqa: E402

sm = snakemake  # noqa: F821
cfg, root, mode = dict(sm.params.dataset), sm.params.root, sm.params.mode
fmt = cfg["format"]
if mode == "synthetic":
    make_twin = {"msrvtt": twins.make_msrvtt_twin, "msvd": twins.make_msvd_twin,
                 "lsmdc": twins.make_lsmdc_twin, "activitynet": twins.make_activitynet_twin}[fmt]
    print(make_twin(root, threads=sm.threads, **cfg["synthetic"]))
elif mode == "source":  # a `source:` copy already on disk: checked, never modified
    check_placed_files(fmt, root)
else:  # download (public) or placed (gated: acquire only checks and explains)
    acquire(fmt, root, cfg, digest_manifest=sm.params.digest_manifest)
atomic.write_text(f"format: {fmt}\nmode: {mode}\nroot: {os.path.abspath(root)}\n", sm.output[0])
