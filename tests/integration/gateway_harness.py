"""`nanofolks gateway` run as a user runs it, for the end-to-end gateway tests of every platform."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT


class Gateway:
    """`python -m nanofolks gateway` in its own process; stderr goes to a file we can read."""

    def __init__(self, home: Path, command: list[str] | None = None, cwd: Path = ROOT):
        """`command` runs another installation's gateway (an installed wheel's `nanofolks gateway`)."""
        self.home = home
        self.command = command or [sys.executable, "-m", "nanofolks", "gateway"]
        self.cwd = cwd
        self.pythonpath = {} if command else {"PYTHONPATH": str(ROOT)}  # never this checkout for another install
        self.log = home / "gateway-stderr.log"
        self.proc: subprocess.Popen | None = None
        self._seen = 0

    def start(self, wait: bool = True) -> Gateway:
        self._seen = self.log.stat().st_size if self.log.exists() else 0
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.update(NANOFOLKS_HOME=str(self.home), **self.pythonpath)
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen(self.command, env=env, cwd=self.cwd, stdout=subprocess.DEVNULL, stderr=err)
        if wait:
            self.wait_log("gateway running")
        return self

    def output(self) -> str:
        return self.log.read_bytes()[self._seen:].decode(errors="replace")

    def wait_log(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"gateway exited ({self.proc.returncode}):\n{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} in the gateway's log:\n{self.output()}")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def close(self) -> None:
        """Kill it if a test left it running."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
