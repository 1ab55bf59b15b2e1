"""Nanofolks installed as users install it, never from this checkout: the Dockerfile's own install steps
(packaging/build-wheels.sh, packaging/install-runtime.sh) into a fresh virtual environment whose gateway answers
on Telegram; `python -m build`'s sdist installed into another one, onboarded, with the templates and the bridge.
No container engine runs here, so hadolint checks the Dockerfile itself.

Slow (a few minutes): every dependency is built or taken from pip's cache into wheels."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, onboard
from tests.fakes.llm_server import Rule, ScriptedLLM
from tests.fakes.telegram_server import FakeTelegram
from tests.integration.gateway_harness import Gateway

pytestmark = pytest.mark.timeout(1800)  # building every wheel takes minutes, more on a loaded machine


def run(*argv: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 1800) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run([str(a) for a in argv], cwd=cwd, env={**clean, **(env or {})}, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, f"{argv} failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Dockerfile's build stage: wheels for Nanofolks and every dependency."""
    out = tmp_path_factory.mktemp("wheels")
    run("sh", ROOT / "packaging" / "build-wheels.sh", out, cwd=tmp_path_factory.mktemp("cwd"),
        env={"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"})
    return out


def test_dockerfile_is_clean() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    run(hadolint, "--config", ROOT / ".hadolint.yaml", ROOT / "Dockerfile", cwd=ROOT)


def test_dockerfile_install_steps_give_a_working_gateway(wheels: Path, tmp_path: Path, llm_server: ScriptedLLM,
                                                         home: Path) -> None:
    venv = tmp_path / "venv"
    python = Path(sys.executable).parent / "python"
    run("sh", ROOT / "packaging" / "install-runtime.sh", wheels, venv, cwd=tmp_path,
        env={"PATH": f"{python.parent}{os.pathsep}{os.environ['PATH']}"})
    installed = run(venv / "bin" / "python", "-c", "import nanofolks, sys; print(nanofolks.__file__)", cwd=tmp_path)
    assert str(venv) in installed  # the installed copy, not this checkout

    onboard(home, "openai/fake-model", llm_server.base_url)
    with FakeTelegram() as tg:
        config = json.loads((home / "config.json").read_text())
        config["channels"] = {"telegram": {"enabled": True, "token": tg.token, "apiBase": tg.api_base,
                                           "allowFrom": ["111"], "pollTimeout": 5}}
        (home / "config.json").write_text(json.dumps(config))
        llm_server.add(Rule(reply="Ahoy from the installed crew"))
        gateway = Gateway(home, command=[str(venv / "bin" / "nanofolks"), "gateway"], cwd=tmp_path)
        try:
            gateway.start()
            tg.push_message(111, "hello there", user_id=111)
            tg.wait_for(lambda: any("Ahoy from the installed crew" in m["text"] for m in tg.sent), 60, "a reply")
            status = json.loads(run(venv / "bin" / "nanofolks", "status", "--json", "--check", cwd=tmp_path,
                                    env={"NANOFOLKS_HOME": str(home)}))
            assert status["gateway"] == "running"
            # The dashboard's templates and vendored htmx came with the wheel: sign in and load both.
            shown = json.loads(run(venv / "bin" / "nanofolks", "dashboard", "--json", "--no-open", cwd=tmp_path,
                                   env={"NANOFOLKS_HOME": str(home)}))
            browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
            sign_in = urllib.request.Request(f"{shown['url']}/login", headers={"Origin": shown["url"]},
                                             data=f"token={shown['login'].split('token=')[1]}".encode())
            with browser.open(sign_in, timeout=30) as page:  # the link's Sign in button
                assert "#general" in page.read().decode()
            with browser.open(f"{shown['url']}/static/htmx.min.js", timeout=30) as script:
                assert b"htmx" in script.read()
            assert gateway.stop() == 0
        finally:
            gateway.close()


@pytest.fixture
def built(tmp_path: Path) -> Iterator[Path]:
    out = tmp_path / "dist"
    run(sys.executable, "-m", "build", "--outdir", out, ROOT, cwd=tmp_path)
    yield out


def test_sdist_and_wheel_carry_templates_and_bridge(built: Path, wheels: Path, tmp_path: Path) -> None:
    sdist = next(built.glob("nanofolks-*.tar.gz"))
    assert next(built.glob("nanofolks-*.whl"))
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    # the sdist builds its own wheel here (setup.py copies the shipped folders) with setuptools from the index;
    # the dependencies come from `wheels` first
    run(venv / "bin" / "python", "-m", "pip", "install", "--find-links", wheels, sdist, cwd=tmp_path)
    home = tmp_path / "home"
    env = {"NANOFOLKS_HOME": str(home)}
    run(venv / "bin" / "nanofolks", "onboard", "--yes", "--team", "space_crew", cwd=tmp_path, env=env)
    assert (home / "workspace" / "crew" / "roles" / "leader.md").is_file()
    bridge = run(venv / "bin" / "python", "-c",
                 "from nanofolks.channels.whatsapp_bridge import SHIPPED_BRIDGE; print(SHIPPED_BRIDGE)", cwd=tmp_path)
    bridge_dir = Path(bridge.strip())
    assert str(venv) in str(bridge_dir)
    assert (bridge_dir / "src" / "main.js").is_file() and (bridge_dir / "package-lock.json").is_file()
    web = run(venv / "bin" / "python", "-c", "import nanofolks.web, pathlib; print(pathlib.Path(nanofolks.web.__file__)"
              ".parent)", cwd=tmp_path)
    web_dir = Path(web.strip())
    assert str(venv) in str(web_dir)
    assert all((web_dir / f).is_file() for f in ("templates/base.html", "templates/chat.html", "static/htmx.min.js",
                                                 "static/htmx-sse.js", "static/app.js", "static/LICENSE-htmx.txt"))
    bots = json.loads(run(venv / "bin" / "nanofolks", "bot", "list", "--json", cwd=tmp_path, env=env))
    assert len(bots) == 6
