"""Rule table: one paper table, our metrics beside the paper's numbers -> Markdown, CSV, LaTeX."""

import json

import pandas as pd
import yaml

from _log import redirect_to_log

redirect_to_log(snakemake)  # noqa: F821 - injected by Snakemake

from centerclip.util import atomic  # noqa: E402
from centerclip.paper.tables import render_table  # noqa: E402

sm = snakemake  # noqa: F821
paper = yaml.safe_load(open(sm.input.paper))
experiments = dict(sm.params.experiments)
metrics = {e: [json.load(open(p)) for p in paths] for e, paths in sm.params.metrics_by_experiment.items()}
# one paper table, or its sub-tables one after the other (Table 3: training on 7K, then 9K)
parts = [render_table(t, paper, experiments, metrics, sm.params.label, dict(sm.params.not_run),
                      dict(sm.params.dataset_defaults)) for t in sm.params.parts]
atomic.write_text("\n".join(p.markdown for p in parts), sm.output.md)
atomic.write_text(pd.concat([p.frame.assign(table=t) for p, t in zip(parts, sm.params.parts)]).to_csv(index=False),
                  sm.output.csv)
atomic.write_text("\n".join(p.latex for p in parts), sm.output.tex)
