"""Rule run_yaml: write the run's complete config (run.yaml) for the train and evaluate jobs.

Deliberately imports nothing heavy: it runs once per experiment (dozens of times in the demo).
"""

from centerclip.util import atomic

sm = snakemake  # noqa: F821 - injected by Snakemake
atomic.write_yaml(dict(sm.params.run), sm.output[0])
with open(sm.log[0], "w") as log:
    log.write(f"wrote {sm.output[0]}\n")
