# ffmpeg 3 fps / shorter side 224, in shards; then every frame into one HDF5 cache per dataset; then the
# test-set coverage check that gates training and evaluation.


localrules:
    check_test_videos,


rule compress_shard:
    """Compress one shard of the dataset's videos (every n-th video) with a thread pool."""
    input:
        manifest=data_path("{dataset}", "manifest.csv"),
    output:
        data_path("{dataset}", "compressed", "shard{shard}.tsv"),
    params:
        out_dir=lambda wc: data_path(wc.dataset, "videos_3fps"),
        shards=config["preprocess"]["shards"],
        fps=config["preprocess"]["fps"],
        short_side=config["preprocess"]["short_side"],
        compression=config["preprocess"]["compression"],
    threads: config["preprocess"]["threads"]
    resources:
        mem_mb=2000,
        runtime=120,
    log:
        os.path.join(LOGS, "compress", "{dataset}", "shard{shard}.log"),
    benchmark:
        os.path.join(BENCH, "compress", "{dataset}", "shard{shard}.tsv")
    conda:
        ENV
    script:
        "../workflow_scripts/compress_shard.py"


rule frame_cache:
    """Cache every 3-fps frame, centre-cropped, in one HDF5 file; list every bad video with its reason."""
    input:
        manifest=data_path("{dataset}", "manifest.csv"),
        shards=shard_inputs,
    output:
        cache=cache_path("{dataset}"),
        bad=data_path("{dataset}", "bad_videos.tsv"),
    params:
        crop=config["preprocess"]["crop"],
        fps=config["preprocess"]["fps"],
        storage=lambda wc: cache_storage(wc.dataset),
        jpeg_quality=config["preprocess"]["jpeg_quality"],
    resources:
        mem_mb=4000,
        # one process, ~2 ms per frame measured (decode + crop + store, bench/README.md "Data"):
        # MSR-VTT's ~0.45 M frames ~15 min, ActivityNet's ~7 M frames ~4 h; slower nodes get headroom
        runtime=12 * 60,
    log:
        os.path.join(LOGS, "frame_cache", "{dataset}.log"),
    benchmark:
        os.path.join(BENCH, "frame_cache", "{dataset}.tsv")
    conda:
        ENV
    script:
        "../workflow_scripts/frame_cache.py"


rule check_test_videos:
    """Stop when a test video is bad and the config does not allow it to be missing; the cache and the
    bad-video list stay, so allowing it (or replacing the video) reruns only what depends on it."""
    input:
        bad=data_path("{dataset}", "bad_videos.tsv"),
    output:
        data_path("{dataset}", "test_coverage.json"),
    params:
        allowed=lambda wc: dataset_cfg(wc.dataset)["allow_missing_test_videos"],
    log:
        os.path.join(LOGS, "check_test_videos", "{dataset}.log"),
    conda:
        ENV
    script:
        "../workflow_scripts/check_test_videos.py"
