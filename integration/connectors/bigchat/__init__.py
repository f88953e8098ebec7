"""BigChat: the external live-chat product, read through its HTTP API."""
