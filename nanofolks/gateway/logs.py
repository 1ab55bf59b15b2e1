"""Where the gateway logs: stderr and $NANOFOLKS_HOME/logs/gateway.log, both through the secret sanitizer."""

from __future__ import annotations

import logging
from pathlib import Path

from nanofolks.config import paths
from nanofolks.config.schema import Config
from nanofolks.config.secret_fields import secret_values
from nanofolks.secrets.sanitize import SanitizeFilter, remember


def remember_config_secrets(config: Config) -> None:
    """Teach the sanitizer every credential in the config (found by the schema's secret mark)."""
    for _key, value in secret_values(config):
        remember(value)


def configure_logging(config: Config) -> Path:
    """Log to stderr and the log file, every configured secret masked; returns the log file."""
    remember_config_secrets(config)
    mask = SanitizeFilter()
    logs = paths.logs_dir()
    logs.mkdir(parents=True, exist_ok=True)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in (logging.StreamHandler(), logging.FileHandler(logs / "gateway.log", encoding="utf-8")):
        handler.setFormatter(formatter)
        handler.addFilter(mask)
        root.addHandler(handler)
    for noisy in ("httpx", "httpcore", "telegram", "LiteLLM", "litellm"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return logs / "gateway.log"
