"""Rule synthesize_msrvtt: generate the demo's synthetic MSR-VTT twin."""

from _log import redirect_to_log

redirect_to_log(snakemake)  # noqa: F821 - injected by Snakemake

from centerclip.data.synthetic import make_msrvtt_twin  # noqa: E402

spec = dict(snakemake.params.synthetic)  # noqa: F821
counts = make_msrvtt_twin(snakemake.params.root, threads=snakemake.threads, **spec)  # noqa: F821
print(f"wrote {counts}")
