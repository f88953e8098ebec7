"""Tests of the Intempus cases sync."""
