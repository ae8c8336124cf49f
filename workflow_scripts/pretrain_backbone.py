"""Rule pretrain_backbone: contrastive pretraining of a demo backbone on the pretraining twin."""

from _log import redirect_to_log

redirect_to_log(snakemake)  # noqa: F821 - injected by Snakemake

from centerclip.training.demo_pretrain import PretrainSettings, pretrain_to  # noqa: E402

sm = snakemake  # noqa: F821
pretrain_to(PretrainSettings(**dict(sm.params.settings), threads=sm.threads), sm.output.weights, sm.output.summary)
