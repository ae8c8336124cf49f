# The demo's search check (config key search_demo): centerclip-search indexes one run's test videos from
# their raw files and answers the test captions; its text->video recall must be the run's own.


rule search_demo:
    """Index the run's raw test videos, query every test caption, write the page and recall.json; fails
    when the recall is not the run's T->V R@1 / R@5."""
    input:
        unpack(search_demo_inputs),
    output:
        index=os.path.join(SEARCH, "index.h5"),
        page=os.path.join(SEARCH, "queries.html"),
        recall=os.path.join(SEARCH, "recall.json"),
        videos=directory(os.path.join(SEARCH, "videos")),
    threads: config["job_threads"]
    resources:
        mem_mb=4000,
        runtime=30,
    log:
        os.path.join(LOGS, "search_demo.log"),
    benchmark:
        os.path.join(BENCH, "search_demo.tsv")
    conda:
        ENV
    script:
        "../workflow_scripts/search_demo.py"
