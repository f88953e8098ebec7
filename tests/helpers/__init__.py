"""Helpers the stand-ins' tests share (the command lines, serving an app with a client)."""
