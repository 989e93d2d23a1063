"""``python -m facelandmarks_smt``: the ``facelandmarks-smt`` command (see `cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
