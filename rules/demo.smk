# The demo's pretraining: each tiny backbone with `pretrain:` is trained contrastively (CLIP's image-text
# objective) on frames and captions of the synthetic pretraining twin, never on a demo dataset, and written
# where its `pretrained:` names it; every demo run then fine-tunes from it through clip.load, as the full
# reproduction fine-tunes OpenAI's weights.


rule pretrain_backbone:
    """Pretrain a tiny CLIP on the pretraining twin; write its state dict (OpenAI key names) and a summary."""
    input:
        lambda wc: pretrain_start_paths(wc.name),
    output:
        weights=clip_path("{name}"),
        summary=models_path(config, "{name}.pretrain.json"),
    params:
        settings=lambda wc: {**config["backbones"][PRETRAINED_HERE[wc.name]]["pretrain"],
                             "init_from": (pretrain_start_paths(wc.name) or [None])[0]},
    wildcard_constraints:
        name="|".join(PRETRAINED_HERE) or "(?!)",
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    log:
        os.path.join(LOGS, "pretrain_backbone", "{name}.log"),
    benchmark:
        os.path.join(BENCH, "pretrain_backbone", "{name}.tsv")
    conda:
        ENV
    script:
        "../workflow_scripts/pretrain_backbone.py"
