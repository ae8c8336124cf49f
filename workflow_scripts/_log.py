"""Shared start of every workflow script: send stdout/stderr and logging to the rule's log."""

import logging
import sys


def redirect_to_log(snakemake) -> None:
    if snakemake.log:
        stream = open(snakemake.log[0], "w", buffering=1)
        sys.stdout = sys.stderr = stream
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr,
                        force=True)
