"""Rule table: our metrics beside the paper's numbers -> Markdown, CSV and a PNG figure."""

import json

import yaml

from _log import redirect_to_log

redirect_to_log(snakemake)  # noqa: F821 - injected by Snakemake

from centerclip import atomic  # noqa: E402
from centerclip.paper_tables import build_table, plot_table, to_markdown  # noqa: E402

sm = snakemake  # noqa: F821
table = sm.params.table
paper = yaml.safe_load(open(sm.input.paper))["tables"].get(table.get("paper_table"), {"rows": {}})["rows"]
ours = {e: [json.load(open(p)) for p in paths] for e, paths in sm.params.metrics_by_experiment.items()}
rows = [(e, sm.params.experiments[e].get("paper_row")) for e in table["experiments"]]
frame = build_table(rows, ours, paper)
atomic.write_text(to_markdown(frame, table["title"], sm.params.label), sm.output.md)
atomic.write_text(frame.to_csv(index=False), sm.output.csv)
n_videos = [m["efficiency"]["n_test_videos"] for runs in ours.values() for m in runs]
plot_table(frame, f"{table['title']} [{sm.params.label}]", sm.output.png,
           chance_r1=100.0 / n_videos[0] if n_videos else None)
