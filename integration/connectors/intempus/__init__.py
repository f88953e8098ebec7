"""Intempus web/v1 cases: the client, its rate budget and its boundary models."""
