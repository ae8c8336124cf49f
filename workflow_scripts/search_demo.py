"""Rule search_demo: index the run's test videos from their raw files, query the test captions, and check
that the search's text->video R@1 / R@5 are the run's own (centerclip.search.demo)."""

from _log import redirect_to_log

redirect_to_log(snakemake)  # noqa: F821 - injected by Snakemake

import json  # noqa: E402
import os  # noqa: E402

from centerclip.search.demo import search_test_set  # noqa: E402

sm = snakemake  # noqa: F821
result = search_test_set(os.path.dirname(sm.input.checkpoint), sm.input.manifest, sm.input.metrics,
                         os.path.dirname(sm.output.recall), threads=sm.threads)
print(json.dumps(result, indent=2))
