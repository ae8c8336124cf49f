"""Rules figure3 / figure4: plot our runs against the clustering place B, or the cluster number K and segments S."""

import json

from _log import redirect_to_log

redirect_to_log(snakemake)  # noqa: F821 - injected by Snakemake

from centerclip.paper.figures import figure_points, plot_figure3, plot_figure4  # noqa: E402

sm = snakemake  # noqa: F821
experiments = dict(sm.params.experiments)
metrics = {e: json.load(open(paths[0])) for e, paths in sm.params.metrics_by_experiment.items()}


def points(key):
    return [(x, metrics.get(run)) for x, run in figure_points(experiments, key)]  # None = not run


if sm.rule == "figure3":
    plot_figure3(points("figure3"), sm.output.png, sm.output.pdf, sm.params.label)
else:
    groups = {g: points(f"figure4_{g}") for g in ("lsmdc_K", "lsmdc_S", "activitynet_K", "activitynet_S")}
    plot_figure4(groups, sm.output.png, sm.output.pdf, sm.params.label)
