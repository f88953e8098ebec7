"""Development tools of the CRM sync (``python run.py crm demo``)."""
