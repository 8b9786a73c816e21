"""``python -m core``: the command line (core/cli/). One job a process, so large freed blocks
are kept for reuse (``allocator``: fewer page faults, less system time)."""

import sys

from .allocator import keep_large_blocks
from .cli import main

keep_large_blocks()
sys.exit(main())
