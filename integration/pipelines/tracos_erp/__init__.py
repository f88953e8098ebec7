"""Work orders between TracOS (MongoDB) and a customer's ERP (JSON files)."""
