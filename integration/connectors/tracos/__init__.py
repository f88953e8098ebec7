"""TracOS, our CMMS: its work orders live in a MongoDB collection."""
