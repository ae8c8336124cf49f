"""Rule check_test_videos: stop when a bad test video is not allowed to be missing; else record the coverage."""

from _log import redirect_to_log

redirect_to_log(snakemake)  # noqa: F821 - injected by Snakemake

from centerclip.data.bad_videos import check_test_coverage, read_bad_videos  # noqa: E402
from centerclip.util import atomic  # noqa: E402

sm = snakemake  # noqa: F821
coverage = check_test_coverage(read_bad_videos(sm.input.bad), sm.params.allowed, sm.input.bad, sm.wildcards.dataset)
atomic.write_json(coverage, sm.output[0])
print(coverage)
