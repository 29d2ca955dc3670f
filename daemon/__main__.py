"""``python -m daemon``: the same as the ``dupe-scanner`` command."""

import sys

from daemon.cli import main

sys.exit(main())
