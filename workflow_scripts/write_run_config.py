"""Rule run_config: write the run's complete config (run.yaml) for the train and evaluate jobs."""

from _log import redirect_to_log

redirect_to_log(snakemake)  # noqa: F821 - injected by Snakemake

from centerclip.run_config import write_yaml_atomic  # noqa: E402

write_yaml_atomic(dict(snakemake.params.run), snakemake.output[0])  # noqa: F821
