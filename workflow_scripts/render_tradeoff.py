"""Rule tradeoff: T->V R@1 against GFLOPs per video of the training-free budget sweeps, meanP the reference."""

from _log import redirect_to_log

redirect_to_log(snakemake)  # noqa: F821 - injected by Snakemake

from centerclip.paper.tradeoff import render_tradeoff  # noqa: E402

sm = snakemake  # noqa: F821
render_tradeoff(dict(sm.params.experiments), dict(sm.params.metrics_by_experiment), sm.output.png, sm.output.pdf,
                sm.params.label)
