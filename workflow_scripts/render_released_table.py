"""Rule released_table: the authors' R@1 of their released checkpoints beside ours -> Markdown, CSV, LaTeX."""

import json

from _log import redirect_to_log

redirect_to_log(snakemake)  # noqa: F821 - injected by Snakemake

from centerclip.util import atomic  # noqa: E402
from centerclip.paper.released_table import read_checkpoint_list, render_released_table  # noqa: E402

sm = snakemake  # noqa: F821
listed = read_checkpoint_list(sm.input.checkpoints)
metrics = {c: json.load(open(p)) for c, p in sm.params.metrics.items()}
table = render_released_table(listed, metrics, dict(sm.params.not_run), dict(sm.params.datasets), sm.params.label)
atomic.write_text(table.markdown, sm.output.md)
atomic.write_text(table.csv, sm.output.csv)
atomic.write_text(table.latex, sm.output.tex)
