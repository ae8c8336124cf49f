"""``python -m centerclip.search``: the ``centerclip-search`` command."""

import sys

from centerclip.search.cli import main

sys.exit(main())
