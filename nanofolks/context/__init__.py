"""Keeping what is sent to a model inside its context window: fitting one prompt, compacting a room."""
