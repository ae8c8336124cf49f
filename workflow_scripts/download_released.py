"""Rule download_released: fetch one released <id>.zip (resumable), digest recorded/verified, CRCs tested."""

from _log import redirect_to_log

redirect_to_log(snakemake)  # noqa: F821 - injected by Snakemake

from centerclip.paper.released_table import download_checkpoint  # noqa: E402

sm = snakemake  # noqa: F821
download_checkpoint(sm.params.url, sm.output[0], digest_manifest=sm.params.digest_manifest)
