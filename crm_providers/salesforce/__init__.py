"""The Salesforce-like stand-in: REST sObjects, collections, SOQL, CDC events, 24 h allocation."""

from crm_providers.salesforce.app import SALESFORCE, create_app
from crm_providers.salesforce.settings import SalesforceLimits, SalesforceSettings

__all__ = ["SALESFORCE", "SalesforceLimits", "SalesforceSettings", "create_app"]
