"""The generated references (docs/reference/) say what the schema and the CLI are today."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_config_and_cli_references_are_fresh() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "docs" / "generate.py"), "--check"], capture_output=True,
                          text=True, cwd=ROOT, timeout=120, env={"COLUMNS": "40", "PATH": ""})
    assert done.returncode == 0, done.stdout + done.stderr
