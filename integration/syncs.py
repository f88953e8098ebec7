"""The syncs the command line offers, by import path: adding a sync is a line here (and its
package); the engine and the shell do not change. ``DEFAULT``'s commands are also the
top-level ones (``python run.py status`` is ``python run.py bigchat status``)."""

from __future__ import annotations

import importlib
from typing import Any

from .core.sync import Sync

SYNCS = {
    "bigchat": "integration.pipelines.bigchat_ourapi:SYNC",
    "tracos": "integration.pipelines.tracos_erp:SYNC",
    "intempus": "integration.pipelines.intempus_cases:SYNC",
    "crm": "integration.pipelines.crm:SYNC",
}
"""Each sync by its command name (its ``Sync.name``), imported only when its commands are asked
for: ``python run.py`` loads the default sync's package, not MongoDB's driver or Intempus's."""
DEFAULT = "bigchat"


def load(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def sync(name: str) -> Sync[Any]:
    loaded: Sync[Any] = load(SYNCS[name])
    if loaded.name != name:
        raise RuntimeError(f"integration/syncs.py lists {loaded.name!r} as {name!r}")
    return loaded
