"""Where Nanofolks keeps its files: everything lives under $NANOFOLKS_HOME (default ~/.nanofolks)."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("NANOFOLKS_HOME") or Path.home() / ".nanofolks").expanduser()


def config_path() -> Path:
    return home() / "config.json"


def db_path() -> Path:
    return home() / "nanofolks.db"


def logs_dir() -> Path:
    return home() / "logs"


def templates_dir() -> Path:
    """The bundled crew templates (teams, role cards) shipped beside the package."""
    return Path(__file__).resolve().parents[2] / "workspace_templates"
