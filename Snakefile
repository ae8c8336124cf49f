# CenterCLIP reproduction workflow. Default config = the demo (synthetic data, tiny model).
# Full reproduction: snakemake --profile cluster (its profile names config/paper.yaml)
import os
import sys

from snakemake.utils import min_version

min_version("9.0")


# The demo config unless one is given: `--configfile config/paper.yaml` must replace it, not be
# merged into it (a merge would carry the demo's synthetic datasets into the paper run).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


# The workflow's own Python (config validation, run.yaml contents) sits beside its rules, importable by tests.
sys.path.insert(0, os.path.join(workflow.basedir, "rules"))
from workflow_config import ConfigError, load_experiments, load_released_list, validate_config

try:
    validate_config(config, schema_path=workflow.source_path("config/schema.yaml"))
    EXPERIMENTS, DATASET_DEFAULTS, LEFT_OUT = load_experiments(config)
    RELEASED_LIST = load_released_list(config)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

# Jobs run the interpreter Snakemake runs under (on SLURM too: the executor starts each job's Snakemake with
# it, which sets this again), so a job finds torch and centerclip without an activated environment. An
# environment variable, not a param: moving the environment must not count as changed settings.
os.environ.update(CENTERCLIP_PYTHON=sys.executable)


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/demo.smk"
include: "rules/search.smk"
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


onsuccess:
    print(f"\nTables:  {os.path.abspath(os.path.join(RESULTS, 'tables'))}")
    print(f"Figures: {os.path.abspath(os.path.join(RESULTS, 'figures'))}")
