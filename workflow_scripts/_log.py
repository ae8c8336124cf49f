"""Shared start of every workflow script: send stdout/stderr and logging to the rule's log."""

import logging
import sys
import traceback


def _report(exc_type, exc, tb) -> None:
    """An error raised on purpose by centerclip (bad input, missing file, broken test video) is a message
    for the user: print it alone. Anything else is a bug: print the traceback."""
    if exc_type.__module__.startswith("centerclip"):
        print(f"ERROR: {exc}", file=sys.stderr)
    else:
        traceback.print_exception(exc_type, exc, tb, file=sys.stderr)


def redirect_to_log(snakemake) -> None:
    if snakemake.log:
        stream = open(snakemake.log[0], "w", buffering=1)
        sys.stdout = sys.stderr = stream
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr,
                        force=True)
    sys.excepthook = _report
