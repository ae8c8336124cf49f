"""Rule download_clip: fetch a released CLIP archive (sha256 from its URL)."""

from _log import redirect_to_log

redirect_to_log(snakemake)  # noqa: F821 - injected by Snakemake

from centerclip.data.sources import acquire  # noqa: E402

acquire(snakemake.params.source, snakemake.params.root)  # noqa: F821
