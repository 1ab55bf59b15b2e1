"""Run a fake server as its own process: print a READY line, serve until SIGTERM or SIGINT."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable


def serve_until_signalled(ready_line: str, stop: Callable[[], None]) -> int:
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    print(ready_line, flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        stop()
    return 0
