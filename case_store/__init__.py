"""The local case store: our own service that users edit cases in and the Intempus sync keeps
in step (``docs/case-store-contract.md``). Extras for tests live under ``/_standin/``."""

from case_store.app import SERVICE, create_app
from case_store.service import Service
from case_store.settings import CaseStoreSettings, FaultSettings

__all__ = ["SERVICE", "CaseStoreSettings", "FaultSettings", "Service", "create_app"]
