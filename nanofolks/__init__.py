"""Nanofolks: a crew of AI characters you talk to."""

__version__ = "0.1.0"
