"""Entry point: python run.py [run|demo|status|dead-letters|verify|tracos|bench] [--help].

Without a command it runs the worker (run); python run.py COMMAND --help says more.
"""

import signal
import sys

# Until the worker installs its own handlers, SIGTERM means "stop": nothing has started yet, so
# exiting is a clean stop (a supervisor stopping us during start-up must not see a crash).
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))

from integration.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
