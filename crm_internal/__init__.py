"""Our internal system's stand-in for the CRM sync: contacts and companies over SQLite with one
change feed, the outbox the sync reads (``docs/crm-internal-contract.md``). Extras for tests live
under ``/_standin/``."""

from crm_internal.app import SERVICE, create_app
from crm_internal.service import Service
from crm_internal.settings import CrmInternalSettings, FaultSettings

__all__ = ["SERVICE", "CrmInternalSettings", "FaultSettings", "Service", "create_app"]
