"""Entry point: ``python run.py [run|demo|status|dead-letters|verify] [--help]``."""

import sys

from integration.cli import main

if __name__ == "__main__":
    sys.exit(main())
