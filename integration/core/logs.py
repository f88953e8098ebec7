"""Logging set-up: one line per record, as text for a terminal or JSON for a log pipeline."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from rich.console import Console
from rich.text import Text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def setup_logging(level: str = "INFO", fmt: Literal["text", "json"] = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        formatter = logging.Formatter(
            "%(asctime)s.%(msecs)03dZ %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"
        )
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Third-party chatter (aiohttp's access log, its client) is not the worker's story.
    logging.getLogger("aiohttp").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("backoff").setLevel(logging.CRITICAL)


class ConsoleHandler(logging.Handler):
    """Writes records through a rich ``Console``: while that console shows a live display (the
    demo's status line), each record is printed above it, on a line of its own, and the live
    display is drawn again below."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            # Text, not a str: a record's brackets ("[12:00, 12:05)") are not rich markup.
            self.console.print(Text(self.format(record)), soft_wrap=True, highlight=False)
        except Exception:
            self.handleError(record)


@contextmanager
def logs_through(console: Console) -> Iterator[None]:
    """Within the block, every record goes through ``console`` in the format set up so far."""
    root = logging.getLogger()
    saved = root.handlers[:]
    handler = ConsoleHandler(console)
    if saved and saved[0].formatter is not None:
        handler.setFormatter(saved[0].formatter)
    root.handlers[:] = [handler]
    try:
        yield
    finally:
        root.handlers[:] = saved
