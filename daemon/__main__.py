"""``python -m dupe_scanner``: the same as the ``dupe-scanner`` command."""

import sys

from dupe_scanner.cli import main

if __name__ == "__main__":  # analysis worker processes import this module too
    sys.exit(main())
