"""Rule keep_finished_checkpoint: set a superseded run aside, or stop before a finished checkpoint is replaced."""

from _log import redirect_to_log

redirect_to_log(snakemake)  # noqa: F821 - injected by Snakemake

from centerclip.util import atomic  # noqa: E402
from centerclip.training.run_folder import keep_finished_checkpoint  # noqa: E402

sm = snakemake  # noqa: F821
moved = keep_finished_checkpoint(sm.params.out_dir, sm.input.run)
if moved is not None:
    print(f"settings changed since {sm.params.out_dir}/checkpoint.pt was trained: the old run is kept in {moved}")
atomic.write_text(f"{moved or 'no finished checkpoint'}\n", sm.output[0])
