"""``python -m jinit``: the same as the ``jinit`` command (see :mod:`jinit._cli`)."""

import sys

from jinit._cli import main as main

if __name__ == "__main__":
    sys.exit(main(prog="python -m jinit"))
