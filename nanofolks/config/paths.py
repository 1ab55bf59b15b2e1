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


def shipped(name: str) -> Path:
    """A folder shipped with Nanofolks (`workspace_templates`, `bridge`): inside the installed package
    (copied there by setup.py), or at the top of the source checkout for an editable install."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "_shipped" / name
    return installed if installed.is_dir() else package.parent / name


def templates_dir() -> Path:
    """The bundled crew templates (teams, role cards, skills)."""
    return shipped("workspace_templates")
