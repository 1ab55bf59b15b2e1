"""llama.cpp's KV state kept per slot (a bot in a room), so that a turn evaluates only the prompt tokens
that the slot's previous prompt and reply did not already hold.

Prompts put what changes least first (persona, role card, tools, older history; agent/runner.py), so the
next turn of a bot shares all but its newest messages with the state its previous turn left. A state is
only ever reused for the exact token prefix it was computed from, which is what keeps reuse correct: a
changed persona or role card shares fewer tokens and the rest is evaluated again.

States live in RAM (least recently used dropped past a byte budget) and are written to disk when the
process ends, so the next one-shot `nanofolks chat -m` starts warm. A file is trusted only when its header
names the same model file, llama.cpp build and context size and its checksum matches; anything else is
ignored, and the slot's next state replaces it."""

from __future__ import annotations

import json
import logging
import os
import struct
import zlib
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

log = logging.getLogger(__name__)

MAGIC = b"NFKVSTATE1\n"
RAM_BYTES = 256 * 2**20  # about ten bots' 1000-token states of SmolLM2-135M (23 KB per token)
DISK_BYTES = 512 * 2**20


@dataclass(frozen=True)
class Snapshot:
    tokens: list[int]  # what the KV cells hold, position by position
    data: bytes  # llama_state_seq_get_data of sequence 0

    @property
    def size(self) -> int:
        return len(self.data) + 4 * len(self.tokens)


def shared_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class PrefixStates:
    def __init__(self, fingerprint: str, directory: Path | None, ram_bytes: int = RAM_BYTES,
                 disk_bytes: int = DISK_BYTES):
        self.fingerprint = fingerprint  # model file, llama.cpp version, context size: what a state depends on
        self.directory = directory  # None: RAM only
        self.ram_bytes = ram_bytes
        self.disk_bytes = disk_bytes
        self._ram: OrderedDict[str, Snapshot] = OrderedDict()
        self._dirty: set[str] = set()

    def best(self, slot: str, tokens: Sequence[int]) -> tuple[Snapshot | None, int]:
        """The state sharing the longest prefix with `tokens` (any slot's: a bot's persona is the same in
        every room), and how many tokens it shares."""
        self._recall(slot)
        best, shared = None, 0
        for name, snapshot in self._ram.items():
            n = shared_prefix(snapshot.tokens, tokens)
            if n > shared:
                best, shared = name, n
        if best is None:
            return None, 0
        self._ram.move_to_end(best)  # used: the last to be dropped
        return self._ram[best], shared

    def holds(self, slot: str, tokens: Sequence[int]) -> bool:
        """Whether the slot's own state (in RAM or on disk) starts with `tokens`."""
        self._recall(slot)
        own = self._ram.get(slot)
        return own is not None and shared_prefix(own.tokens, tokens) == len(tokens)

    def _recall(self, slot: str) -> None:
        """On first use in this process, or once dropped from RAM: the slot's file, if any, into RAM."""
        if slot not in self._ram:
            snapshot = self._read_file(slot)
            if snapshot is not None:
                self._keep(slot, snapshot)

    def put(self, slot: str, snapshot: Snapshot) -> None:
        self._keep(slot, snapshot)
        self._dirty.add(slot)

    def _keep(self, slot: str, snapshot: Snapshot) -> None:
        self._ram[slot] = snapshot
        self._ram.move_to_end(slot)
        while len(self._ram) > 1 and sum(s.size for s in self._ram.values()) > self.ram_bytes:
            dropped, old = self._ram.popitem(last=False)
            if dropped in self._dirty and self.directory is not None:  # out of RAM, still warm on disk
                self._write_file(dropped, old)
            self._dirty.discard(dropped)

    def flush(self) -> None:
        """Write every state changed in this process, then keep the directory under its byte budget."""
        if self.directory is None:
            return
        for slot in sorted(self._dirty):
            if slot in self._ram:
                self._write_file(slot, self._ram[slot])
        self._dirty.clear()
        self._trim_directory()

    def path(self, slot: str) -> Path:
        assert self.directory is not None
        return self.directory / (sha256(slot.encode()).hexdigest()[:24] + ".kv")

    def _write_file(self, slot: str, snapshot: Snapshot) -> None:
        body = array("i", snapshot.tokens).tobytes() + snapshot.data
        header = json.dumps({"fingerprint": self.fingerprint, "slot": slot, "tokens": len(snapshot.tokens),
                             "bytes": len(snapshot.data), "crc32": zlib.crc32(body)}).encode()
        path = self.path(slot)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tmp.open("wb") as f:
                f.write(MAGIC + struct.pack("<I", len(header)) + header + body)
            os.replace(tmp, path)
        except OSError as exc:  # a cache that cannot be written costs the next process its warm start only
            log.warning("could not save the local model's state to %s: %s", path, exc)
            with suppress(OSError):
                tmp.unlink(missing_ok=True)

    def _read_file(self, slot: str) -> Snapshot | None:
        if self.directory is None:
            return None
        path = self.path(slot)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("could not read the local model's saved state %s: %s", path, exc)
            return None
        snapshot, problem = self._parse(raw, slot)
        if problem:
            log.info("ignoring the local model's saved state %s: %s", path, problem)
        return snapshot

    def _parse(self, raw: bytes, slot: str) -> tuple[Snapshot | None, str]:
        start = len(MAGIC) + 4
        if not raw.startswith(MAGIC) or len(raw) < start:
            return None, "not a state file"
        (header_len,) = struct.unpack("<I", raw[len(MAGIC):start])
        try:
            header = json.loads(raw[start:start + header_len])
            n_tokens, n_bytes, crc = int(header["tokens"]), int(header["bytes"]), int(header["crc32"])
        except (ValueError, KeyError, TypeError):
            return None, "unreadable header"
        if header.get("fingerprint") != self.fingerprint or header.get("slot") != slot:
            return None, "made by another model, build or context size"
        body = raw[start + header_len:]
        if len(body) != 4 * n_tokens + n_bytes or zlib.crc32(body) != crc:
            return None, "truncated or corrupt"
        tokens = array("i")
        tokens.frombytes(body[:4 * n_tokens])
        return Snapshot(tokens.tolist(), body[4 * n_tokens:]), ""

    def _trim_directory(self) -> None:
        assert self.directory is not None
        try:
            files = sorted(self.directory.glob("*.kv"), key=lambda p: p.stat().st_mtime, reverse=True)
            total = 0
            for path in files:
                total += path.stat().st_size
                if total > self.disk_bytes:
                    path.unlink(missing_ok=True)
        except OSError as exc:  # another process trimming at the same time
            log.debug("state directory trim: %s", exc)
