"""The worker's state store, by its old name: everything lives in ``integration.core.state`` now
(one module per concern). This module re-exports that package's public names (its ``__all__``:
every name this module exported before the split), so imports of it keep working."""

from .state import *  # noqa: F403
from .state import __all__ as __all__

# Private names that the store's own tests import from here (the migrations, to build a file at
# an old version; one prune batch, to fail a transaction midway).
from .state.prune import prune_batch as _prune_batch  # noqa: F401
from .state.schema import MIGRATIONS as _MIGRATIONS  # noqa: F401
