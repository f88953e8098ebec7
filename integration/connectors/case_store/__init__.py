"""The local case store: its client and boundary models."""
