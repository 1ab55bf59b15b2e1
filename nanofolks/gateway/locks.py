"""One gateway per credential: an OS file lock per channel credential under $NANOFOLKS_HOME/locks."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from nanofolks.channels.base import ChannelError
from nanofolks.channels.registry import ChannelSpec
from nanofolks.config import paths
from nanofolks.config.schema import Config


def channel_lock_name(spec: ChannelSpec, config: Config) -> str:
    """Names the credential this channel's section holds (a token's lock, whatever its account), unrevealed."""
    return f"{spec.platform}-{spec.lock_key(config)}"


def channel_lock_path(spec: ChannelSpec, config: Config) -> Path:
    """The file lock of one gateway alone (on PostgreSQL, the fleet's advisory lock of the same name)."""
    return paths.home() / "locks" / f"{channel_lock_name(spec, config)}.lock"


class TokenLock:
    """An OS file lock per bot token: a second gateway on this machine refuses to poll the same bot.
    The kernel drops it when the process dies, even by kill -9, so it never goes stale."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def acquire(self, what: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise ChannelError(f"another gateway (pid {holder}) is already polling this {what}") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def lock_holder(path: Path) -> int | None:
    """The pid of the gateway holding this lock, or None when nobody does."""
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        text = os.read(fd, 32).decode(errors="replace").strip()
        return int(text) if text.isdigit() else -1
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
