"""Where the gateway logs: stderr and $NANOFOLKS_HOME/logs/gateway.log, secrets masked in both."""

from __future__ import annotations

import logging
from pathlib import Path

from nanofolks.config import paths
from nanofolks.config.schema import Config
from nanofolks.gateway.masking import SecretMask, config_secrets


def configure_logging(config: Config) -> Path:
    """Log to stderr and the log file, every configured secret masked; returns the log file."""
    mask = SecretMask(config_secrets(config))
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
