"""How many threads the local model uses on this machine: measured once with the loaded model, not guessed.

On a quiet machine more threads are faster; on a busy one (or a VM whose vCPUs share a core) threads
that wait on each other made decode several times slower than one thread. So the candidates (1, half the
CPUs, all of them) each run a short prompt and a few decode steps, the fastest wins, and the choice is
kept in a small JSON file per model and machine. NANOFOLKS_LOCAL_THREADS overrides it."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from nanofolks.llm.results import LLMError

log = logging.getLogger(__name__)

ENV = "NANOFOLKS_LOCAL_THREADS"
PROBE_TEXT = "The crew gathered on deck at dawn to plan the day's work and share the news from the harbour."


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the CPUs this process may run on (containers, taskset)
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def candidates(cpus: int) -> list[int]:
    return sorted({1, max(1, cpus // 2), cpus})


def choose_threads(llama: Any, saved: Path, fingerprint: str) -> int:
    """The thread count for this model here, set on `llama`'s context: the override, the saved
    measurement, or a new measurement (saved)."""
    override = os.environ.get(ENV, "").strip()
    if override:
        if not override.isdigit() or int(override) < 1:
            raise LLMError(f"{ENV} must be a whole number of threads, 1 or more (got {override!r})")
        return _apply(llama, int(override))
    cpus = cpu_count()
    key = f"{fingerprint}|cpus {cpus}"
    choices = _read(saved)
    if isinstance(choices.get(key), int) and choices[key] >= 1:
        return _apply(llama, choices[key])
    timings: dict[int, float] = {}
    for _ in range(2):  # interleaved, so that a burst of other work does not decide alone
        for n in candidates(cpus):
            timings[n] = min(timings.get(n, float("inf")), probe(llama, n))
    best = min(timings, key=lambda n: timings[n])
    log.info("local model threads: %s s per probe by thread count, using %d", timings, best)
    _write(saved, {**choices, key: best})
    return _apply(llama, best)


def probe(llama: Any, threads: int) -> float:
    """Seconds for a 20-token prompt and 8 single-token decode steps with `threads` threads."""
    _apply(llama, threads)
    tokens = llama.tokenize(PROBE_TEXT.encode(), add_bos=False)
    llama.reset()
    started = time.perf_counter()
    llama.eval(tokens)
    for token in tokens[:8]:
        llama.eval([token])
    elapsed = time.perf_counter() - started
    llama.reset()
    return round(elapsed, 4)


def _apply(llama: Any, threads: int) -> int:
    import llama_cpp.llama_cpp as llama_c

    llama_c.llama_set_n_threads(llama._ctx.ctx, threads, threads)
    llama.n_threads = llama.n_threads_batch = threads  # what Llama reports; the context already uses them
    return threads


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # none yet, or unreadable: measure again
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, choices: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(choices, indent=1))
        os.replace(tmp, path)
    except OSError as exc:  # unsaved: the next process measures again
        log.warning("could not save the local model's thread count to %s: %s", path, exc)
