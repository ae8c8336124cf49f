# CenterCLIP reproduction workflow. Default config = the demo (synthetic data, tiny model).
# Full reproduction: snakemake --profile cluster --configfile config/paper.yaml
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/preprocess.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/paper.smk"


rule all:
    input:
        all_outputs(),
    default_target: True
