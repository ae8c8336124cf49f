# One training job per (dataset, experiment, seed).


localrules:
    run_config,


rule run_config:
    """Write the run's complete config; it changes only when the experiment's settings do."""
    output:
        os.path.join(RESULTS, "runs", "{dataset}", "{experiment}", "seed{seed}", "run.yaml"),
    params:
        run=lambda wc: run_config(config, EXPERIMENTS, DATASET_DEFAULTS, wc.experiment, wc.seed),
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
        coverage=coverage_gate,
        manifest=lambda wc: manifest_path(wc.dataset, EXPERIMENTS[wc.experiment].get("train_split")),
        backbone=backbone_inputs,
    output:
        # protected (read-only once written): days of GPU work are not overwritten by accident; to
        # retrain on purpose, delete the checkpoint (or `chmod u+w` it) and rerun
        checkpoint=protected(
            os.path.join(RESULTS, "runs", "{dataset}", "{experiment}", "seed{seed}", "checkpoint.pt")
        ),
        summary=os.path.join(RESULTS, "runs", "{dataset}", "{experiment}", "seed{seed}", "train_summary.json"),
    params:
        out_dir=lambda wc: run_dir(wc.dataset, wc.experiment, wc.seed),
    threads: config.get("job_threads", 2)
    resources:
        gpu=0,
        mem_mb=8000,
        runtime=24 * 60,
    log:
        os.path.join(LOGS, "train", "{dataset}", "{experiment}", "seed{seed}.log"),
    benchmark:
        os.path.join(BENCH, "train", "{dataset}", "{experiment}", "seed{seed}.tsv")
    conda:
        ENV
    shell:
        # one process per GPU (torchrun's --standalone picks a free port), else one process; not a param,
        # so a different GPU count does not count as a changed run
        "if [ {resources.gpu} -gt 1 ]; then launch='python -m torch.distributed.run --standalone"
        " --nproc_per_node={resources.gpu}'; else launch=python; fi; "
        "OMP_NUM_THREADS={threads} $launch -m centerclip.train --run-config {input.run} --out-dir {params.out_dir}"
        " > {log} 2>&1"
