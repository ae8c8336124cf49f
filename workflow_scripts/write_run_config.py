"""Rule run_config: write the run's complete config (run.yaml) for the train and evaluate jobs.

Deliberately imports nothing heavy: it runs once per experiment (dozens of times in the demo).
"""

import os

import yaml

sm = snakemake  # noqa: F821 - injected by Snakemake
tmp = sm.output[0] + ".tmp"
with open(tmp, "w") as f:
    yaml.safe_dump(dict(sm.params.run), f, sort_keys=False)
os.replace(tmp, sm.output[0])
with open(sm.log[0], "w") as log:
    log.write(f"wrote {sm.output[0]}\n")
