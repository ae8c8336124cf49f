# Tables 1-9 and Figures 3-5: our numbers beside the paper's, and the Snakemake report; beyond the paper, the
# `beyond` table and the trade-off figure (our runs only).


rule table:
    """Render one paper table (Markdown, CSV, LaTeX) from exactly the runs it shows."""
    input:
        metrics=lambda wc: metrics_inputs(wc.table),
        paper=PAPER_NUMBERS,
    output:
        md=report(os.path.join(RESULTS, "tables", "{table}.md"), category="Tables", caption="../report/table.rst"),
        csv=os.path.join(RESULTS, "tables", "{table}.csv"),
        tex=os.path.join(RESULTS, "tables", "{table}.tex"),
    params:
        metrics_by_experiment=lambda wc: metrics_by_experiment(wc.table),
        # only the experiments this table shows: editing another one leaves this table alone
        experiments=lambda wc: table_experiments(wc.table),
        not_run=lambda wc: {**not_run(runs_showing(wc.table)), **left_out_showing(wc.table)},
        # the paper's settings of each run (its epochs), to mark runs trained otherwise
        dataset_defaults=lambda wc: {EXPERIMENTS[e]["dataset"]: DATASET_DEFAULTS[EXPERIMENTS[e]["dataset"]]
                                     for e in runs_showing(wc.table)},
        parts=lambda wc: TABLE_PARTS[wc.table],
        label=config["label"],
    log:
        os.path.join(LOGS, "table", "{table}.log"),
    conda:
        ENV
    script:
        "../workflow_scripts/render_table.py"


rule figure3:
    """Figure 3: R@1 and training memory against the clustering block B (LSMDC)."""
    input:
        # lambdas: which runs exist is decided when the figure is planned, not when any target parses
        metrics=lambda wc: metrics_inputs("figure3"),
    output:
        png=report(os.path.join(RESULTS, "figures", "figure3.png"), category="Figures", caption="../report/figure.rst"),
        pdf=os.path.join(RESULTS, "figures", "figure3.pdf"),
    params:
        metrics_by_experiment=lambda wc: metrics_by_experiment("figure3"),
        experiments={e: EXPERIMENTS[e] for e in runs_showing("figure3")},
        label=config["label"],
    log:
        os.path.join(LOGS, "figure", "figure3.log"),
    conda:
        ENV
    script:
        "../workflow_scripts/render_figure.py"


use rule figure3 as figure4 with:
    input:
        metrics=lambda wc: metrics_inputs("figure4"),
    output:
        png=report(os.path.join(RESULTS, "figures", "figure4.png"), category="Figures", caption="../report/figure.rst"),
        pdf=os.path.join(RESULTS, "figures", "figure4.pdf"),
    params:
        metrics_by_experiment=lambda wc: metrics_by_experiment("figure4"),
        experiments={e: EXPERIMENTS[e] for e in runs_showing("figure4")},
        label=config["label"],
    log:
        os.path.join(LOGS, "figure", "figure4.log"),


rule figure5:
    """Figure 5: the patches of the kept centre tokens for 1, 2, 3 and 4 frames per segment."""
    input:
        unpack(figure5_inputs),
    output:
        png=report(os.path.join(RESULTS, "figures", "figure5.png"), category="Figures", caption="../report/figure.rst"),
        pdf=os.path.join(RESULTS, "figures", "figure5.pdf"),
    params:
        label=config["label"],
    log:
        os.path.join(LOGS, "figure", "figure5.log"),
    conda:
        ENV
    script:
        "../workflow_scripts/render_figure5.py"


rule tradeoff:
    """Beyond the paper: T->V R@1 against the video encoder's GFLOPs per video of each method's training-free
    budget sweep (rows tradeoff_<series>), the fine-tuned meanP run as the reference (row tradeoff)."""
    input:
        # lambdas: which runs exist is decided when the figure is planned, not when any target parses
        metrics=lambda wc: metrics_inputs("tradeoff"),
    output:
        png=report(os.path.join(RESULTS, "figures", "tradeoff.png"), category="Figures", caption="../report/tradeoff.rst"),
        pdf=os.path.join(RESULTS, "figures", "tradeoff.pdf"),
    params:
        metrics_by_experiment=lambda wc: metrics_by_experiment("tradeoff"),
        # every run the figure shows, those only_experiments leaves out included (listed as not run)
        experiments=lambda wc: table_experiments("tradeoff"),
        label=config["label"],
    log:
        os.path.join(LOGS, "figure", "tradeoff.log"),
    conda:
        ENV
    script:
        "../workflow_scripts/render_tradeoff.py"
