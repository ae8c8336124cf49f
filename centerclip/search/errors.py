"""The one exception the command line turns into a message and exit code 1."""

from __future__ import annotations


class SearchError(Exception):
    """A user error (bad path, wrong file, another model's index, ...); ``str(exc)`` is the whole message,
    one line that names the file or option and says what to do."""
