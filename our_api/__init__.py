"""OurAPI stand-in: serves the OurAPI contract (``shared/api-contract.md``) and can misbehave.

Everything outside the contract (fault injection, request statistics) lives under ``/_standin/``
and is switched off by default, so a client that only knows the contract sees the real service.
"""

from our_api.app import FAULTS, STATS, create_app
from our_api.settings import FaultSettings, OurApiSettings

__all__ = ["FAULTS", "STATS", "FaultSettings", "OurApiSettings", "create_app"]
