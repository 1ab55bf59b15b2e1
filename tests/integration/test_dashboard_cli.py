"""`nanofolks dashboard` and `dashboard token rotate` as a user runs them (the signing-in itself is in
tests/unit/test_dashboard_auth.py, the browser in test_dashboard_browser.py)."""

from __future__ import annotations

import json
from pathlib import Path

from nanofolks.config.loader import load_config
from nanofolks.services import Services
from nanofolks.store.dashboard import DashboardAuthRepo
from nanofolks.web.auth import Auth
from tests.conftest import onboard, run_cli


def test_the_link_the_rotation_and_the_refusals(home: Path) -> None:
    onboard(home, "openai/fake-model")
    stopped = run_cli("dashboard", "--no-open", home=home)
    assert stopped.returncode == 1 and "dashboard.port 0" in stopped.stderr  # tests pick a free port at start

    run_cli("config", "set", "dashboard.port", "18999", home=home)
    printed = run_cli("dashboard", "--json", home=home)
    assert printed.returncode == 0, printed.stderr
    shown = json.loads(printed.stdout)
    assert shown["url"] == "http://127.0.0.1:18999" and not shown["running"]
    token = shown["login"].split("token=")[1]
    text = run_cli("dashboard", "--no-open", home=home)
    assert "Sign in (the link works once, within 15 minutes): http://127.0.0.1:18999/login?token=" in text.stdout
    assert "the gateway is not running" in text.stderr

    services = Services.open(load_config(home / "config.json"), home / "nanofolks.db")
    try:
        auth = Auth(DashboardAuthRepo(services.db), 15, 1)
        assert auth.sign_in(token) is not None  # the printed link signs a browser in
        rotated = run_cli("dashboard", "token", "rotate", home=home)
        assert rotated.returncode == 0 and "1 browser session(s) signed out" in rotated.stderr
        fresh = rotated.stdout.split("token=")[1].strip()
        assert auth.sign_in(text.stdout.split("token=")[1].strip()) is None  # issued before the rotation
        assert auth.sign_in(fresh) is not None
    finally:
        services.close()

    run_cli("config", "set", "dashboard.enabled", "false", home=home)
    off = run_cli("dashboard", home=home)
    assert off.returncode == 1 and "the dashboard is off" in off.stderr and len(off.stderr.strip().splitlines()) == 1
    bad = run_cli("config", "set", "dashboard.port", "70000", home=home)
    assert bad.returncode == 1 and "dashboard.port" in bad.stderr
