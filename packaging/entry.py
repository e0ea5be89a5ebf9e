"""Entry point of the standalone bundle: the same CLI as ``python -m app``."""

import multiprocessing
import sys

from app.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()
    sys.exit(main())
