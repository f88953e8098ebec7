"""Intempus stand-in: serves the researched Intempus ``web/v1`` case contract
(``docs/intempus-contract.md``) and can misbehave on demand.

Everything outside the contract (faults, switches, truth, hooks) lives under ``/_standin/``.
"""

from intempus.app import SERVICE, create_app
from intempus.service import Service
from intempus.settings import IntempusSettings, Switches

__all__ = ["SERVICE", "IntempusSettings", "Service", "Switches", "create_app"]
