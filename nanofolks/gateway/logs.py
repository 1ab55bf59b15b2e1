"""Where the gateway logs: stderr and $NANOFOLKS_HOME/logs/gateway.log, both through the secret sanitizer."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from pathlib import Path

from nanofolks.config import paths
from nanofolks.config.schema import Config
from nanofolks.config.secret_fields import secret_values
from nanofolks.secrets.sanitize import SanitizeFilter, remember
from nanofolks.store.activity import ActivityRepo


def remember_config_secrets(config: Config) -> None:
    """Teach the sanitizer every credential in the config (found by the schema's secret mark)."""
    for _key, value in secret_values(config):
        remember(value)


def configure_logging(config: Config) -> Path:
    """Log to stderr and the log file, every configured secret masked; returns the log file."""
    remember_config_secrets(config)
    mask = SanitizeFilter()
    logs = paths.private_dir(paths.logs_dir())
    paths.private_file(logs / "gateway.log")
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


class ErrorsToActivity(logging.Handler):
    """Errors the gateway logs, kept for the activity timeline. A log call may come from any thread, even
    from inside a database transaction, so records only wait here; `flush` writes them (a gateway job)."""

    def __init__(self, keep: int = 200):
        super().__init__(logging.ERROR)
        self.addFilter(SanitizeFilter())
        self._waiting: deque[str] = deque(maxlen=keep)  # a storm of errors keeps only the newest

    def emit(self, record: logging.LogRecord) -> None:
        first = record.getMessage().splitlines()[0] if record.getMessage() else record.levelname
        self._waiting.append(f"{record.name.removeprefix('nanofolks.')}: {first}")

    async def flush_into(self, repo: ActivityRepo, every: float = 1.0) -> None:
        while True:
            while self._waiting:
                await repo.db.run(repo.add, "error", self._waiting.popleft(), None, "", False)
            await asyncio.sleep(every)
