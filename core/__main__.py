"""``python -m core``: the command line (core/cli/)."""

import sys

from .cli import main

sys.exit(main())
