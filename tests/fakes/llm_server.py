"""Scripted OpenAI-compatible LLM server for tests (stdlib only).

The real ``litellm`` talks to this server over HTTP on loopback, e.g.::

    with ScriptedLLM([Rule(handle="leader", contains="plan", reply="Aye!")]) as llm:
        await litellm.acompletion(model="openai/fake-model", api_base=llm.base_url,
                                  api_key="sk-test", messages=[...])
        assert len(llm.requests) == 1

Rules are checked in the order they were added; the first matching rule answers.
A last user message containing ``[[delay:N]]`` is answered after N seconds (a slow model, whatever answers);
so is an embeddings request with it in any input.
When nothing matches, the server echoes ``[@{handle}] {last user message[:80]}``
where ``handle`` comes from the system prompt (``You are X (@handle), ...``).

CLI (for tests that run the app in another process)::

    python -m tests.fakes.llm_server --port 0 --rules rules.json --log calls.jsonl

prints ``READY http://127.0.0.1:PORT/v1`` (flushed) and serves until killed.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import random
import re
import select
import socket
import struct
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fakes.serve import serve_until_signalled

HANDLE_RE = re.compile(r"\(@([a-z0-9_]+)\)")
DELAY_RE = re.compile(r"\[\[delay:(\d+(?:\.\d+)?)\]\]")
EMBEDDING_DIM = 64
MODEL_ID = "fake-model"

_ERROR_TYPES = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "permission_denied"),
    404: ("not_found_error", "model_not_found"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


@dataclass
class Rule:
    """One scripted answer. All set matchers must match for the rule to fire."""

    reply: str | None = None  # assistant text; may use {handle} / {user} / {tool_result}
    tool_calls: list[dict] | None = None  # [{"name": ..., "arguments": {...} | "json"}]
    handle: str | None = None  # system prompt belongs to this bot ("leader" / "@leader")
    contains: str | None = None  # last user message contains this (case-insensitive)
    system_contains: str | None = None  # system prompt contains this (case-insensitive)
    has_tool_result: bool | None = None  # conversation has / lacks a tool result
    times: int | None = None  # max number of firings (None = unlimited)
    delay: float = 0.0  # seconds to sleep before answering
    chunk_delay: float = 0.0  # streamed answers: seconds between pieces (a reply seen being written)
    status: int = 200  # non-200 -> OpenAI-style error body
    hang: bool = False  # never answer (until server stop / client disconnect)
    fired: int = field(default=0, init=False, compare=False)  # times this rule answered


# --------------------------------------------------------------------------- helpers


def _text(content: Any) -> str:
    """Flatten OpenAI message content (str or list of parts) into plain text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict):
                parts.append(str(part.get("text", "")))
            else:
                parts.append(str(part))
        return "".join(parts)
    return str(content)


def system_prompt(messages: list[dict]) -> str:
    return "\n".join(_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer"))


def last_user_message(messages: list[dict]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            return _text(m.get("content"))
    return ""


def extract_handle(messages: list[dict]) -> str | None:
    match = HANDLE_RE.search(system_prompt(messages))
    return match.group(1) if match else None


def has_tool_result(messages: list[dict]) -> bool:
    for m in messages:
        if m.get("role") == "tool":
            return True
        if m.get("role") == "user" and _text(m.get("content")).lstrip().startswith("Tool result"):
            return True
    return False


def last_tool_result(messages: list[dict]) -> str:
    """The newest tool result: a `tool` message, or a user message starting "Tool result" (text calls)."""
    for m in reversed(messages):
        text = _text(m.get("content"))
        if m.get("role") == "tool" or (m.get("role") == "user" and text.lstrip().startswith("Tool result")):
            return text
    return ""


def _estimate_tokens(text: str) -> int:
    return max(1, math.ceil(len(text.split()) * 4 / 3))


def fake_embedding(text: str, dim: int = EMBEDDING_DIM) -> list[float]:
    """Deterministic unit vector seeded by the text's SHA-256."""
    seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")
    rng = random.Random(seed)
    vec = [rng.gauss(0.0, 1.0) for _ in range(dim)]
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


def _split(text: str, pieces: int = 3) -> list[str]:
    """Split text into up to `pieces` non-empty chunks (for streaming deltas)."""
    if not text:
        return []
    size = max(1, math.ceil(len(text) / pieces))
    return [text[i : i + size] for i in range(0, len(text), size)]


def rule_from_dict(data: dict) -> Rule:
    allowed = {f.name for f in fields(Rule) if f.init}
    unknown = set(data) - allowed
    if unknown:
        raise ValueError(f"unknown Rule keys: {sorted(unknown)}")
    return Rule(**data)


# --------------------------------------------------------------------------- server


class ScriptedLLM:
    """Threaded fake OpenAI server. Use as a context manager or start()/stop()."""

    def __init__(self, rules: list[Rule] | None = None, port: int = 0, log_path: str | None = None):
        self.rules: list[Rule] = list(rules or [])
        self.requests: list[dict] = []  # every chat-completions body, in order
        self.embedding_requests: list[dict] = []
        self.log_path = log_path
        self._port = port
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # -- rules ----------------------------------------------------------------
    def add(self, *rules: Rule) -> None:
        """Append rules (checked in order added; first match wins)."""
        with self._lock:
            self.rules.extend(rules)

    def _match(self, messages: list[dict]) -> Rule | None:
        handle = extract_handle(messages)
        system = system_prompt(messages).lower()
        user = last_user_message(messages).lower()
        tool_result = has_tool_result(messages)
        with self._lock:
            for rule in self.rules:
                if rule.times is not None and rule.fired >= rule.times:
                    continue
                if rule.handle is not None and rule.handle.lstrip("@") != handle:
                    continue
                if rule.contains is not None and rule.contains.lower() not in user:
                    continue
                if rule.system_contains is not None and rule.system_contains.lower() not in system:
                    continue
                if rule.has_tool_result is not None and rule.has_tool_result != tool_result:
                    continue
                rule.fired += 1
                return rule
        return None

    # -- request bookkeeping --------------------------------------------------
    def _record(self, body: dict, *, chat: bool) -> None:
        with self._lock:
            (self.requests if chat else self.embedding_requests).append(body)
            if self.log_path:
                with open(self.log_path, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(body) + "\n")

    def handles_seen(self) -> list[str | None]:
        """Bot handle (from the system prompt) of every chat request so far."""
        with self._lock:
            return [extract_handle(r.get("messages") or []) for r in self.requests]

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> ScriptedLLM:
        owner = self

        class Handler(_Handler):
            server_owner = owner

        self._stopping.clear()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._httpd.daemon_threads = True
        port = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="ScriptedLLM", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases hanging / delayed handlers
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ScriptedLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    server_owner: ScriptedLLM  # set by ScriptedLLM.start()
    protocol_version = "HTTP/1.1"  # keep-alive, as real providers; a stream says Connection: close
    disable_nagle_algorithm = True  # headers and body are two writes: Nagle + delayed ACK would add 40 ms

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr noise
        pass

    # -- plumbing -------------------------------------------------------------
    def _route(self) -> str:
        path = self.path.split("?", 1)[0].rstrip("/")
        return path[3:] if path.startswith("/v1") else path

    def _send_json(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _not_found(self) -> None:
        self._send_json(
            404,
            {
                "error": {
                    "message": f"Unknown path {self.path}",
                    "type": "invalid_request_error",
                    "code": "not_found",
                }
            },
        )

    def _read_body(self) -> dict | None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            self._send_json(
                400,
                {
                    "error": {
                        "message": "Invalid JSON body",
                        "type": "invalid_request_error",
                        "code": "invalid_json",
                    }
                },
            )
            return None
        return body

    def _client_gone(self) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if readable:
                return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True
        return False

    def _wait(self, seconds: float) -> bool:
        """Sleep until `seconds` passed or the server stops; False when the client hung up meanwhile."""
        until = time.monotonic() + seconds
        while not self.server_owner._stopping.wait(min(0.05, max(0.0, until - time.monotonic()))):
            if self._client_gone():
                return False
            if time.monotonic() >= until:
                break
        return True

    # -- verbs ----------------------------------------------------------------
    def do_GET(self) -> None:
        if self._route() == "/models":
            model = {
                "id": MODEL_ID,
                "object": "model",
                "created": int(time.time()),
                "owned_by": "nanofolks-tests",
            }
            self._send_json(200, {"object": "list", "data": [model]})
        else:
            self._not_found()

    def do_POST(self) -> None:
        route = self._route()
        if route not in ("/chat/completions", "/embeddings"):
            self._not_found()
            return
        body = self._read_body()
        if body is None:
            return
        if route == "/embeddings":
            self._embeddings(body)
        else:
            self._chat(body)

    # -- embeddings -----------------------------------------------------------
    def _embeddings(self, body: dict) -> None:
        self.server_owner._record(body, chat=False)
        inputs = body.get("input", "")
        if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        asked = [float(m.group(1)) for m in (DELAY_RE.search(str(x)) for x in inputs) if m]
        if asked and not self._wait(max(asked)):  # a slow embedding model: once per request
            return
        dim = int(body.get("dimensions") or EMBEDDING_DIM)
        as_base64 = body.get("encoding_format") == "base64"  # the openai SDK's default
        data = []
        for i, item in enumerate(inputs):
            vec = fake_embedding(item if isinstance(item, str) else json.dumps(item), dim)
            emb: Any = base64.b64encode(struct.pack(f"<{dim}f", *vec)).decode() if as_base64 else vec
            data.append({"object": "embedding", "index": i, "embedding": emb})
        tokens = sum(_estimate_tokens(str(x)) for x in inputs) or 1
        self._send_json(
            200,
            {
                "object": "list",
                "data": data,
                "model": body.get("model", MODEL_ID),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    # -- chat -----------------------------------------------------------------
    def _chat(self, body: dict) -> None:
        owner = self.server_owner
        owner._record(body, chat=True)
        messages = body.get("messages") or []
        rule = owner._match(messages)

        if rule is not None and rule.hang:
            while not owner._stopping.wait(0.05):
                if self._client_gone():
                    break
            return
        asked = DELAY_RE.search(last_user_message(messages))
        delay = max(rule.delay if rule is not None else 0.0, float(asked.group(1)) if asked else 0.0)
        if delay > 0 and not self._wait(delay):
            return  # the client gave up (a deadline): nobody to answer
        if rule is not None and rule.status != 200:
            self._error(rule, messages)
            return

        handle = extract_handle(messages) or "assistant"
        user = last_user_message(messages)
        if rule is None:
            content: str | None = f"[@{handle}] {user[:80]}"
            tool_calls: list[dict] = []
        else:
            # Plain str.replace: templates stay safe with JSON / stray braces.
            content = (
                None
                if rule.reply is None
                else rule.reply.replace("{handle}", handle)
                .replace("{user}", user)
                .replace("{tool_result}", last_tool_result(messages))
            )
            tool_calls = [_tool_call(tc) for tc in rule.tool_calls or []]
            if content is None and not tool_calls:
                content = ""
        finish = "tool_calls" if tool_calls else "stop"

        prompt_tokens = sum(_estimate_tokens(_text(m.get("content"))) for m in messages) or 1
        completion_tokens = _estimate_tokens(
            (content or "") + " ".join(tc["function"]["arguments"] for tc in tool_calls)
        )
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "created": int(time.time()),
            "model": body.get("model", MODEL_ID),
        }

        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._stream(base, content, tool_calls, finish, usage if include_usage else None,
                         rule.chunk_delay if rule is not None else 0.0)
            return

        message: dict[str, Any] = {"role": "assistant", "content": content}
        if tool_calls:
            message["tool_calls"] = tool_calls
        self._send_json(
            200,
            {
                **base,
                "object": "chat.completion",
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                "usage": usage,
            },
        )

    def _error(self, rule: Rule, messages: list[dict]) -> None:
        err_type, code = _ERROR_TYPES.get(rule.status, ("server_error", "server_error"))
        message = rule.reply or f"Scripted error {rule.status}"
        headers = {"Retry-After": "0"} if rule.status == 429 and rule.delay == 0 else None
        self._send_json(rule.status, {"error": {"message": message, "type": err_type, "code": code}}, headers)

    def _stream(
        self, base: dict, content: str | None, tool_calls: list[dict], finish: str, usage: dict | None,
        chunk_delay: float = 0.0,
    ) -> None:
        def chunk(delta: dict, finish_reason: str | None = None) -> dict:
            return {
                **base,
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
            }

        events: list[dict] = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": piece}) for piece in _split(content or "")]
        for i, tc in enumerate(tool_calls):
            head = {
                "index": i,
                "id": tc["id"],
                "type": "function",
                "function": {"name": tc["function"]["name"], "arguments": ""},
            }
            events.append(chunk({"tool_calls": [head]}))
            for piece in _split(tc["function"]["arguments"], 2):
                events.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}))
        events.append(chunk({}, finish))
        if usage is not None:
            events.append({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage})

        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            for event in events:
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                self.wfile.flush()
                if chunk_delay and event["choices"] and event["choices"][0]["delta"].get("content"):
                    self.server_owner._stopping.wait(chunk_delay)
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass


def _tool_call(spec: dict) -> dict:
    """Turn {"name", "arguments"} into an OpenAI tool call with a JSON-string argument."""
    args = spec.get("arguments", {})
    if not isinstance(args, str):
        args = json.dumps(args)
    return {
        "id": spec.get("id") or f"call_{uuid.uuid4().hex[:24]}",
        "type": "function",
        "function": {"name": spec["name"], "arguments": args},
    }


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Scripted OpenAI-compatible fake LLM server")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rules", help="JSON file holding a list of Rule dicts")
    parser.add_argument("--log", help="append each chat request body to this file as one JSON line")
    args = parser.parse_args(argv)

    rules: list[Rule] = []
    if args.rules:
        with open(args.rules, encoding="utf-8") as fh:
            rules = [rule_from_dict(d) for d in json.load(fh)]

    server = ScriptedLLM(rules, port=args.port, log_path=args.log).start()
    return serve_until_signalled(f"READY {server.base_url}", server.stop)


if __name__ == "__main__":
    sys.exit(main())
