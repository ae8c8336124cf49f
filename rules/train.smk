# One training job per (dataset, experiment, seed); a training-free run's checkpoint is another run's weights.
from workflow_config import run_yaml_contents


localrules:
    run_yaml,
    keep_finished_checkpoint,


rule run_yaml:
    """Write the run's complete config (run.yaml); it changes only when the experiment's settings do."""
    output:
        run_file_path("run.yaml"),
    params:
        run=lambda wc: run_yaml_contents(config, EXPERIMENTS, DATASET_DEFAULTS, wc.experiment, wc.seed),
    log:
        os.path.join(LOGS, "run_yaml", "{dataset}", "{experiment}", "seed{seed}.log"),
    conda:
        ENV
    script:
        "../workflow_scripts/write_run_yaml.py"


rule keep_finished_checkpoint:
    """Runs right before a training that would replace a finished checkpoint (its output is temporary, so it
    is planned only when the training is). Snakemake deletes a job's old outputs before the job starts, and
    its protected() check cannot stop root; this job can. Settings changed since the checkpoint was trained:
    the old run is moved to the run's superseded/ folder and training goes on. Same settings (a newer input,
    --forcerun): stop, delete nothing, and say how to keep it or retrain on purpose."""
    input:
        run=run_file_path("run.yaml"),
    output:
        temp(run_file_path(".checkpoint_kept")),
    params:
        out_dir=lambda wc: run_path(wc.dataset, wc.experiment, wc.seed),
    log:
        os.path.join(LOGS, "keep_finished_checkpoint", "{dataset}", "{experiment}", "seed{seed}.log"),
    conda:
        ENV
    script:
        "../workflow_scripts/keep_finished_checkpoint.py"


rule train:
    """Train one configuration (resumes from the run's last.pt after an interruption)."""
    input:
        run=run_file_path("run.yaml"),
        kept=run_file_path(".checkpoint_kept"),
        cache=cache_path("{dataset}"),
        coverage=coverage_inputs,
        manifest=lambda wc: manifest_path(wc.dataset, EXPERIMENTS[wc.experiment].get("train_split")),
        backbone=backbone_inputs,
    wildcard_constraints:
        experiment=experiments_pattern(TRAINED),  # training-free runs: rule training_free_checkpoint
    output:
        # protected (read-only once written) against accidents by other users; keep_finished_checkpoint
        # guards it for root as well
        checkpoint=protected(run_file_path("checkpoint.pt")),
        summary=run_file_path("train_summary.json"),
    params:
        out_dir=lambda wc: run_path(wc.dataset, wc.experiment, wc.seed),
    threads: config["job_threads"]
    resources:
        gpu=0,
        mem_mb=8000,
        runtime=24 * 60,
        # Snakemake's attempt number: a retry that starts where its previous attempt started stops
        # (centerclip.training.attempts), which bounds the retries a wall-time-limited run needs
        attempt=lambda wildcards, attempt: attempt,
    log:
        os.path.join(LOGS, "train", "{dataset}", "{experiment}", "seed{seed}.log"),
    benchmark:
        os.path.join(BENCH, "train", "{dataset}", "{experiment}", "seed{seed}.tsv")
    conda:
        ENV
    shell:
        # one process per GPU (torchrun's --standalone picks a free port), else one process; not a param,
        # so a different GPU count does not count as a changed run
        "if [ {resources.gpu} -gt 1 ]; then launch=\"$CENTERCLIP_PYTHON -m torch.distributed.run --standalone"
        " --nproc_per_node={resources.gpu}\"; else launch=$CENTERCLIP_PYTHON; fi; "
        # run_lock: one writer per run folder (a second job for it waits; a gone holder's lock is taken over).
        # exec: run_lock replaces this shell, so a SIGTERM that SLURM sends to every process of the job step
        # (its --signal warning, scancel, the wall time) leaves no shell to die and fail the job before the
        # training has written its resume state
        "OMP_NUM_THREADS={threads} exec \"$CENTERCLIP_PYTHON\" -m centerclip.training.run_lock {params.out_dir} --"
        " $launch -m centerclip.training.train --run-config {input.run} --out-dir {params.out_dir}"
        " --attempt {resources.attempt} > {log} 2>&1"


rule training_free_checkpoint:
    """A training-free run (training_free: <experiment>): the weights of that experiment's finished checkpoint
    (the same seed) with this run's config, so the evaluate job applies this run's method to them; not trained.
    Its summary names the source run and its checkpoint's sha256 and carries over how the weights were trained."""
    input:
        run=run_file_path("run.yaml"),
        source=training_free_source_path,
    output:
        # not protected: made again in seconds from the source, and whenever the source is retrained
        checkpoint=run_file_path("checkpoint.pt"),
        summary=run_file_path("train_summary.json"),
    wildcard_constraints:
        experiment=experiments_pattern(TRAINING_FREE),
    params:
        out_dir=lambda wc: run_path(wc.dataset, wc.experiment, wc.seed),
    resources:
        mem_mb=4000,
        runtime=15,
    log:
        os.path.join(LOGS, "training_free_checkpoint", "{dataset}", "{experiment}", "seed{seed}.log"),
    benchmark:
        os.path.join(BENCH, "training_free_checkpoint", "{dataset}", "{experiment}", "seed{seed}.tsv")
    conda:
        ENV
    shell:
        "\"$CENTERCLIP_PYTHON\" -m centerclip.training.run_lock {params.out_dir} --"
        " \"$CENTERCLIP_PYTHON\" -m centerclip.training.training_free --run-config {input.run} --source {input.source}"
        " --out-dir {params.out_dir} > {log} 2>&1"
