# Acquisition: synthetic twins (demo), a copy already on disk (`source:`), downloads (MSR-VTT, MSVD,
# CLIP weights) or user-placed licence-gated files (LSMDC, ActivityNet) with ActivityNet's split lists of
# the original code (downloaded). Then one manifest per dataset.
from centerclip.data.activitynet import ACTIVITYNET_LISTS, ACTIVITYNET_LISTS_DIR

# <data_dir>/<dataset>/original_splits/<file>: the workflow's own copy, never inside a `source:` copy
ACTIVITYNET_LIST_FILES = [
    data_path("{dataset}", ACTIVITYNET_LISTS_DIR, name) for name in ACTIVITYNET_LISTS.values()
]


rule acquire:
    """Make the dataset's raw files complete (generate / check / download) and mark them ready."""
    output:
        data_path("{dataset}", "raw.ready"),
    params:
        mode=lambda wc: acquisition(wc.dataset),
        dataset=lambda wc: acquisition_cfg(wc.dataset),
        root=lambda wc: raw_root_path(wc.dataset),
        digest_manifest=DIGESTS,
    threads: 2
    resources:
        mem_mb=2000,
        runtime=24 * 60,
    log:
        os.path.join(LOGS, "acquire", "{dataset}.log"),
    benchmark:
        os.path.join(BENCH, "acquire", "{dataset}.tsv")
    conda:
        ENV
    script:
        "../workflow_scripts/acquire.py"


rule download_clip:
    """Download a pretrained CLIP archive (OpenAI's, or the backbone's `mirror:`), verified by its sha256."""
    output:
        clip_path("{name}"),
    params:
        upstream=lambda wc: clip_download(wc.name),
    wildcard_constraints:
        name="|".join(CLIP_FILES),
    resources:
        runtime=60,
    log:
        os.path.join(LOGS, "download_clip", "{name}.log"),
    conda:
        ENV
    script:
        "../workflow_scripts/download_clip.py"


rule download_lists:
    """The original code's ActivityNet split lists (train_ids.json, val_ids.json, video_path.json), downloaded and
    verified by their sha256 (`mirror:` / `sha256:` of the dataset apply); a synthetic twin's own lists instead."""
    input:
        data_path("{dataset}", "raw.ready"),
    output:
        ACTIVITYNET_LIST_FILES,
    params:
        mode=lambda wc: acquisition(wc.dataset),
        dataset=lambda wc: acquisition_cfg(wc.dataset),
        root=lambda wc: raw_root_path(wc.dataset),
    resources:
        runtime=30,
    log:
        os.path.join(LOGS, "download_lists", "{dataset}.log"),
    conda:
        ENV
    script:
        "../workflow_scripts/download_lists.py"


rule manifest:
    """Parse the dataset's own annotation files into one manifest (video, split, caption, raw_path); ActivityNet's
    membership is the original code's (its split lists), and what that leaves out is recorded beside the manifest."""
    input:
        data_path("{dataset}", "raw.ready"),
        lists=lambda wc: (
            expand(ACTIVITYNET_LIST_FILES, dataset=wc.dataset)
            if dataset_cfg(wc.dataset)["format"] == "activitynet"
            else []
        ),
    output:
        data_path("{dataset}", "manifest.csv"),
    params:
        format=lambda wc: dataset_cfg(wc.dataset)["format"],
        root=lambda wc: raw_root_path(wc.dataset),
        options=lambda wc: (
            {"train_split": default_train_split(dataset_cfg(wc.dataset))}
            if dataset_cfg(wc.dataset).get("train_splits")
            else {}
        ),
    log:
        os.path.join(LOGS, "manifest", "{dataset}.log"),
        # a record, not an input of anything: which videos of ActivityNet's lists the membership left out, and why
        left_out=data_path("{dataset}", "manifest_left_out.json"),
    conda:
        ENV
    script:
        "../workflow_scripts/manifest.py"


use rule manifest as manifest_split with:
    output:
        data_path("{dataset}", "manifest_{split}.csv"),
    params:
        format=lambda wc: dataset_cfg(wc.dataset)["format"],
        root=lambda wc: raw_root_path(wc.dataset),
        options=lambda wc: {"train_split": wc.split},
    log:
        os.path.join(LOGS, "manifest", "{dataset}_{split}.log"),
