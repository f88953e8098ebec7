"""A customer's ERP, reached through JSON files: one file per work order, dropped into an inbound
folder by the ERP and picked up by it from an outbound folder."""
