# Tables and figures: our numbers beside the paper's.


rule table:
    """Render one table (Markdown + CSV) and its figure from the runs it shows."""
    input:
        metrics=table_inputs,
        paper=os.path.join(workflow.basedir, "config", "paper_numbers.yaml"),
    output:
        md=os.path.join(RESULTS, "tables", "{table}.md"),
        csv=os.path.join(RESULTS, "tables", "{table}.csv"),
        png=os.path.join(RESULTS, "figures", "{table}.png"),
    params:
        table=lambda wc: config["tables"][wc.table],
        experiments=lambda wc: {e: config["experiments"][e] for e in config["tables"][wc.table]["experiments"]},
        label=config["label"],
        metrics_by_experiment=lambda wc: {
            e: experiment_metrics(e) for e in config["tables"][wc.table]["experiments"]
        },
    log:
        os.path.join(LOGS, "table", "{table}.log"),
    conda:
        ENV
    script:
        "../workflow_scripts/render_table.py"
