"""The Pipedrive-like stand-in: API v2 persons and organizations, token costs, webhooks v2."""

from crm_providers.pipedrive.app import PIPEDRIVE, create_app
from crm_providers.pipedrive.settings import OUR_ID_KEY, PipedriveLimits, PipedriveSettings

__all__ = ["OUR_ID_KEY", "PIPEDRIVE", "PipedriveLimits", "PipedriveSettings", "create_app"]
