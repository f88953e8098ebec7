"""The worker's state: cursors, inbox, dead letters, id maps, effect ledger, in one SQLite file.

``StateStore`` (``protocol``) is the interface the engine and pipelines use; ``SQLiteStore``
(``sqlite``) the embedded implementation, composed of one module per concern: the records
(``records``), the schema and its migrations (``schema``), the connections and the group-commit
writer (``writer``), and the queries over the inbox, dead letters, maps, ledger, cursors and
meta, and retention (``inbox``, ``dead_letters``, ``maps``, ``ledger``, ``meta``, ``prune``).

``PostgresStore`` (``postgres``, over ``pg_writer`` and ``pg_schema``) is the same protocol on
PostgreSQL, for ``STATE_URL``. It needs asyncpg (the ``distributed`` extra), so this package does
not import it: ``integration.core.backends`` does, only when ``STATE_URL`` is set.
"""

from .protocol import PRUNE_BATCH, StateStore
from .prune import PRUNED_MARK
from .records import (
    MAPS,
    DeadLetter,
    InboxEntry,
    NewEntry,
    Rejected,
    StateError,
    Status,
    StoredPage,
    dead_scope,
    dumps,
    inbox_scope,
)
from .schema import RECOUNT, is_worker_state
from .sqlite import SQLiteStore, opened
from .writer import WriteOp

__all__ = [
    "MAPS",
    "PRUNED_MARK",
    "PRUNE_BATCH",
    "RECOUNT",
    "DeadLetter",
    "InboxEntry",
    "NewEntry",
    "Rejected",
    "SQLiteStore",
    "StateError",
    "StateStore",
    "Status",
    "StoredPage",
    "WriteOp",
    "dead_scope",
    "dumps",
    "inbox_scope",
    "is_worker_state",
    "opened",
]
