"""Configuration: the pydantic schema, where files live, and how they are loaded."""

from nanofolks.config.loader import ConfigError, load_config, save_config
from nanofolks.config.schema import Config

__all__ = ["Config", "ConfigError", "load_config", "save_config"]
