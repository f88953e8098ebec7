"""Stand-ins of three CRM providers (HubSpot-like, Salesforce-like, Pipedrive-like).

Each provider is its own aiohttp application on a shared core (record store, budgets, webhook
emitter, faults, request counts). Start one with ``python -m crm_providers <provider>``; build one
in a test with ``crm_providers.<provider>.create_app(settings, clock=...)``.
"""
