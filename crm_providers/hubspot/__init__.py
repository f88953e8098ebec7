"""The HubSpot-like stand-in: CRM v3 objects (contacts, companies), its limits and webhooks."""

from crm_providers.hubspot.app import HUBSPOT, create_app
from crm_providers.hubspot.settings import HubSpotLimits, HubSpotSettings

__all__ = ["HUBSPOT", "HubSpotLimits", "HubSpotSettings", "create_app"]
