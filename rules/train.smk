# One training job per (dataset, experiment, seed).


rule run_config:
    """Write the run's complete config; it changes only when the experiment's settings do."""
    output:
        os.path.join(RESULTS, "runs", "{dataset}", "{experiment}", "seed{seed}", "run.yaml"),
    params:
        run=lambda wc: run_config(config, wc.dataset, wc.experiment, wc.seed),
    log:
        os.path.join(LOGS, "run_config", "{dataset}", "{experiment}", "seed{seed}.log"),
    conda:
        ENV
    script:
        "../workflow_scripts/write_run_config.py"


rule train:
    """Train one configuration (resumes from the run's last.pt after an interruption)."""
    input:
        run=os.path.join(RESULTS, "runs", "{dataset}", "{experiment}", "seed{seed}", "run.yaml"),
        cache=os.path.join(DATA, "{dataset}", "frames.h5"),
        manifest=os.path.join(DATA, "{dataset}", "manifest.csv"),
    output:
        checkpoint=os.path.join(RESULTS, "runs", "{dataset}", "{experiment}", "seed{seed}", "checkpoint.pt"),
        summary=os.path.join(RESULTS, "runs", "{dataset}", "{experiment}", "seed{seed}", "train_summary.json"),
    params:
        out_dir=lambda wc: run_dir(wc.dataset, wc.experiment, wc.seed),
        # one process per GPU (torchrun picks a free port with --standalone); one process otherwise
        launcher=lambda wc, resources: (
            f"python -m torch.distributed.run --standalone --nproc_per_node={int(resources.get('gpu', 0))}"
            if int(resources.get("gpu", 0) or 0) > 1
            else "python"
        ),
    threads: workflow.cores
    resources:
        mem_mb=8000,
        runtime=24 * 60,
    log:
        os.path.join(LOGS, "train", "{dataset}", "{experiment}", "seed{seed}.log"),
    benchmark:
        os.path.join(BENCH, "train", "{dataset}", "{experiment}", "seed{seed}.tsv")
    conda:
        ENV
    shell:
        "{params.launcher} -m centerclip.train --run-config {input.run} --out-dir {params.out_dir} > {log} 2>&1"
