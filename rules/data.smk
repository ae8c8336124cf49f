# Acquisition: the demo's synthetic twins (the real downloads and user-placed datasets come with issue 4).


rule synthesize_msrvtt:
    """Generate the synthetic MSR-VTT twin (videos + annotations in the real layout)."""
    output:
        videos=directory(os.path.join(DATA, "raw", "{dataset}", "MSRVTT", "videos", "all")),
        data_json=os.path.join(DATA, "raw", "{dataset}", "msrvtt_data", "MSRVTT_data.json"),
        train_7k=os.path.join(DATA, "raw", "{dataset}", "msrvtt_data", "MSRVTT_train.7k.csv"),
        train_9k=os.path.join(DATA, "raw", "{dataset}", "msrvtt_data", "MSRVTT_train.9k.csv"),
        test=os.path.join(DATA, "raw", "{dataset}", "msrvtt_data", "MSRVTT_JSFUSION_test.csv"),
    params:
        root=lambda wc: os.path.join(DATA, "raw", wc.dataset),
        synthetic=lambda wc: config["datasets"][wc.dataset]["synthetic"],
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
    log:
        os.path.join(LOGS, "synthesize", "{dataset}.log"),
    benchmark:
        os.path.join(BENCH, "synthesize", "{dataset}.tsv")
    conda:
        ENV
    script:
        "../workflow_scripts/synthesize_msrvtt.py"


rule manifest:
    """Parse the dataset's own annotation files into one manifest (video, split, caption, source)."""
    input:
        data_json=lambda wc: os.path.join(raw_dir(wc.dataset), "msrvtt_data", "MSRVTT_data.json"),
        train_7k=lambda wc: os.path.join(raw_dir(wc.dataset), "msrvtt_data", "MSRVTT_train.7k.csv"),
        train_9k=lambda wc: os.path.join(raw_dir(wc.dataset), "msrvtt_data", "MSRVTT_train.9k.csv"),
        test=lambda wc: os.path.join(raw_dir(wc.dataset), "msrvtt_data", "MSRVTT_JSFUSION_test.csv"),
    output:
        os.path.join(DATA, "{dataset}", "manifest.csv"),
    params:
        video_dir=lambda wc: os.path.join(raw_dir(wc.dataset), "MSRVTT", "videos", "all"),
        train_split=lambda wc: config["datasets"][wc.dataset].get("train_split", "9k"),
    log:
        os.path.join(LOGS, "manifest", "{dataset}.log"),
    conda:
        ENV
    script:
        "../workflow_scripts/manifest.py"
