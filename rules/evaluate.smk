# Evaluation of each trained run: retrieval metrics and efficiency columns.


rule evaluate:
    """Encode all test videos and captions once; write metrics.json with provenance."""
    input:
        checkpoint=run_file_path("checkpoint.pt"),
        cache=cache_path("{dataset}"),
        coverage=coverage_inputs,
    output:
        run_file_path("metrics.json"),
    params:
        # what metrics.json holds; a metrics.json written before the encoder's GFLOPs were counted is redone
        records="retrieval, efficiency incl. gflops_per_video",
        out_dir=lambda wc: run_path(wc.dataset, wc.experiment, wc.seed),
    threads: config["job_threads"]
    resources:
        mem_mb=8000,
        runtime=120,
    log:
        os.path.join(LOGS, "evaluate", "{dataset}", "{experiment}", "seed{seed}.log"),
    benchmark:
        os.path.join(BENCH, "evaluate", "{dataset}", "{experiment}", "seed{seed}.tsv")
    conda:
        ENV
    shell:
        "OMP_NUM_THREADS={threads} \"$CENTERCLIP_PYTHON\" -m centerclip.training.run_lock {params.out_dir} --"
        " \"$CENTERCLIP_PYTHON\" -m centerclip.training.evaluate --checkpoint {input.checkpoint} --out {output}"
        " > {log} 2>&1"
