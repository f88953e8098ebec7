"""The engine and the process shell every sync runs on; what a sync builds against is declared
here. A sync package imports from ``integration.core`` (or its modules) and nothing in ``core``
imports a sync or a connector (``tests/core/test_layout.py``)."""

from .clock import Clock, SystemClock
from .engine import Engine, EngineFailed, EngineSettings
from .errors import IntegrationError, InvalidInput, PermanentError, TransientError
from .flow import CursorSource, Flow, Page, PendingSource, Received, Sink, Source, WindowedSource
from .journal import PageJournal
from .retry import RetryPolicy
from .shell import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, open_engine, run_sync
from .state import InboxEntry, NewEntry, Rejected, StateError, StateStore
from .stats import Stats
from .sync import Runtime, Sync, SyncSettings, explain

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAILURE",
    "EXIT_OK",
    "Clock",
    "CursorSource",
    "Engine",
    "EngineFailed",
    "EngineSettings",
    "Flow",
    "InboxEntry",
    "IntegrationError",
    "InvalidInput",
    "NewEntry",
    "Page",
    "PageJournal",
    "PendingSource",
    "PermanentError",
    "Received",
    "Rejected",
    "RetryPolicy",
    "Runtime",
    "Sink",
    "Source",
    "StateError",
    "StateStore",
    "Stats",
    "Sync",
    "SyncSettings",
    "SystemClock",
    "TransientError",
    "WindowedSource",
    "explain",
    "open_engine",
    "run_sync",
]
