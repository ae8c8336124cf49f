# CenterCLIP reproduction workflow. Default config = the demo (synthetic data, tiny model).
# Full reproduction: snakemake --profile cluster (its profile names config/paper.yaml)
from snakemake.utils import min_version

min_version("9.0")


# The demo config unless one is given: `--configfile config/paper.yaml` must replace it, not be
# merged into it (a merge would carry the demo's synthetic datasets into the paper run).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/demo.smk"
include: "rules/preprocess.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/paper.smk"
include: "rules/released.smk"


rule all:
    input:
        # a function: whether Figure 5's run can run is decided when `all` is planned, not when any target parses
        lambda wc: all_outputs(),
    default_target: True
