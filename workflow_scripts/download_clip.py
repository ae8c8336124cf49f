"""Rule download_clip: fetch a pretrained CLIP archive (resumable), verified by its sha256."""

from _log import redirect_to_log

redirect_to_log(snakemake)  # noqa: F821 - injected by Snakemake

from centerclip.data.fetch import download  # noqa: E402

upstream = snakemake.params.upstream  # noqa: F821
download(upstream["url"], snakemake.output[0], sha256=upstream["sha256"], progress=False)  # noqa: F821
