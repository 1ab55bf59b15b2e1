"""Log masking: every secret set in the config is replaced by *** in log lines and tracebacks."""

from __future__ import annotations

import logging
import re

from pydantic import BaseModel


class SecretMask(logging.Filter):
    """Replace every known secret (bot tokens, API keys) in a log line with ***."""

    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        masked = text
        for secret in self.secrets:
            masked = masked.replace(secret, "***")
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            for secret in self.secrets:
                record.exc_text = record.exc_text.replace(secret, "***")
        if masked != text:
            record.msg, record.args = masked, None
        return True


# Config fields holding a secret, in every section: token, botToken, appToken, bridgeToken, apiKey...
SECRET_FIELD = re.compile(r"(?:^|_)(?:token|api_key|secret|password)$")


def config_secrets(model: BaseModel) -> list[str]:
    """Every secret set in the config, found by field name, so a new section's token is masked too."""
    found: list[str] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        nested = value.values() if isinstance(value, dict) else [value]
        for item in nested:
            if isinstance(item, BaseModel):
                found += config_secrets(item)
        if isinstance(value, str) and value and SECRET_FIELD.search(name):
            found.append(value)
    return found
