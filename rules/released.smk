# The authors' released checkpoints: download, evaluate on the test split alone, and one table of their
# R@1 beside ours. Only the test videos are compressed and cached (into <data_dir>/<dataset>/test_only/;
# compressed videos are shared with the full pipeline's, so neither redoes the other's).


localrules:
    test_manifest,


rule download_released:
    """Download one released <id>.zip (resumable), its sha256 recorded on first download and checked
    after; the zip's own CRCs are checked too."""
    output:
        released_zip_path("{checkpoint}"),
    params:
        url=lambda wc: released_url(wc.checkpoint),
        digest_manifest=DIGESTS,
    wildcard_constraints:
        checkpoint="[A-Za-z0-9_.-]+",
    resources:
        runtime=120,
    log:
        os.path.join(LOGS, "download_released", "{checkpoint}.log"),
    conda:
        ENV
    script:
        "../workflow_scripts/download_released.py"


rule test_manifest:
    """The test rows of the dataset's manifest: all a released checkpoint is evaluated on."""
    input:
        lambda wc: manifest_path(wc.dataset),
    output:
        test_only_path("{dataset}", "manifest.csv"),
    log:
        os.path.join(LOGS, "test_manifest", "{dataset}.log"),
    conda:
        ENV
    script:
        "../workflow_scripts/test_manifest.py"


use rule compress_shard as compress_test_shard with:
    input:
        manifest=test_only_path("{dataset}", "manifest.csv"),
    output:
        test_only_path("{dataset}", os.path.join("compressed", "shard{shard}.tsv")),
    log:
        os.path.join(LOGS, "compress_test_only", "{dataset}", "shard{shard}.log"),
    benchmark:
        os.path.join(BENCH, "compress_test_only", "{dataset}", "shard{shard}.tsv")


use rule frame_cache as test_frame_cache with:
    input:
        manifest=test_only_path("{dataset}", "manifest.csv"),
        shards=lambda wc: [test_only_path(wc.dataset, os.path.join("compressed", f"shard{s}.tsv"))
                           for s in range(config["preprocess"]["shards"])],
    output:
        cache=test_only_path("{dataset}", CACHE_NAME),
        bad=test_only_path("{dataset}", "bad_videos.tsv"),
    log:
        os.path.join(LOGS, "frame_cache_test_only", "{dataset}.log"),
    benchmark:
        os.path.join(BENCH, "frame_cache_test_only", "{dataset}.tsv")


use rule check_test_videos as check_test_only_videos with:
    input:
        bad=test_only_path("{dataset}", "bad_videos.tsv"),
    output:
        test_only_path("{dataset}", "test_coverage.json"),
    log:
        os.path.join(LOGS, "check_test_videos_test_only", "{dataset}.log"),


rule evaluate_released:
    """One released checkpoint on its dataset's test split, with the frames and words of its hparams."""
    input:
        unpack(released_inputs),
    output:
        os.path.join(RESULTS, "released", "{checkpoint}", "metrics.json"),
    params:
        batch_size=config["eval"]["batch_size"],
    threads: config["job_threads"]
    resources:
        mem_mb=12000,
        runtime=120,
    log:
        os.path.join(LOGS, "evaluate_released", "{checkpoint}.log"),
    benchmark:
        os.path.join(BENCH, "evaluate_released", "{checkpoint}.tsv")
    conda:
        ENV
    shell:
        "OMP_NUM_THREADS={threads} \"$CENTERCLIP_PYTHON\" -m centerclip.paper.released --checkpoint {input.checkpoint}"
        " --manifest {input.manifest} --cache {input.cache} --batch-size {params.batch_size} --out {output}"
        " > {log} 2>&1"


rule released_table:
    """The authors' R@1 of each released checkpoint beside ours (Markdown, CSV, LaTeX)."""
    input:
        metrics=lambda wc: [released_metrics_path(c) for c, reason in released_reasons().items() if reason is None],
        checkpoints=released_list_path,
    output:
        md=report(os.path.join(RESULTS, "tables", "released.md"), category="Tables", caption="../report/table.rst"),
        csv=os.path.join(RESULTS, "tables", "released.csv"),
        tex=os.path.join(RESULTS, "tables", "released.tex"),
    params:
        metrics=lambda wc: {c: released_metrics_path(c) for c, reason in released_reasons().items() if reason is None},
        not_run=lambda wc: {c: reason for c, reason in released_reasons().items() if reason is not None},
        datasets={c: released_dataset(c) for c in RELEASED},
        label=config["label"],
    log:
        os.path.join(LOGS, "table", "released.log"),
    conda:
        ENV
    script:
        "../workflow_scripts/render_released_table.py"
