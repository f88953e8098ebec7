"""How long each stand-in takes from launch to its first answer (median of several launches).

    python scripts/startup_time.py [--runs 7]

BigChat is started with an hour of history (``--history 1h``): its world is generated lazily,
so start-up must not grow with it. 127.0.0.1 only; every wait bounded.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(argv: list[str], probe: str) -> tuple[float, int]:
    """Seconds from launch to the first 200 on ``probe``, and the exit status after SIGTERM."""
    began = time.monotonic()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.monotonic() - began < 10:
            try:
                with urllib.request.urlopen(probe, timeout=1) as answer:
                    if answer.status == 200:
                        took = time.monotonic() - began
                        break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.01)
        else:
            raise SystemExit(f"no answer from {argv[2]} within 10 s")
        proc.send_signal(signal.SIGTERM)
        return took, proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as folder:
        for name in ("big_chat", "our_api"):
            times, codes = [], []
            for n in range(min(args.runs, 50)):
                port = free_port()
                if name == "big_chat":
                    argv = [py, "-m", "big_chat", "--port", str(port), "--history", "1h"]
                    probe = f"http://127.0.0.1:{port}/events?start_at=2000-01-01T00:00:00%2B00:00"
                else:
                    db = str(Path(folder) / f"o{n}.db")
                    argv = [py, "-m", "our_api", "--port", str(port), "--db", db]
                    probe = f"http://127.0.0.1:{port}/agents"
                took, code = launch(argv, probe)
                times.append(took)
                codes.append(code)
            print(
                f"{name:<9} first answer after {statistics.median(times):.2f} s median "
                f"({min(times):.2f}-{max(times):.2f} s over {len(times)} launches); "
                f"exit status after SIGTERM: {sorted(set(codes))}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
