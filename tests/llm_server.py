"""A scripted OpenAI-compatible chat server on 127.0.0.1 for offline tests.

Tests push replies (a JSON answer, an HTTP error, a slow reply, a reply cut off at the token
limit) onto a queue; the server pops one per POST to `/v1/chat/completions` and records every
request it saw. When the queue is empty it asks `handler(request_body)`, so tests of the
planner and annotators can answer according to the prompt; `Annotator` is such a handler,
answering the annotator's prompts from known labels and spans, with a token budget that cuts
long replies off (`finish_reason: "length"`) and a share of spans reworded so they are not in
the text. Start and stop it with `with ScriptedLLMServer() as server:`.
"""

from __future__ import annotations

import json
import re
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Scripted:
    """One canned HTTP reply: status, body (dict → JSON, str → raw), extra delay and headers."""

    status: int = 200
    body: dict[str, Any] | str = ""
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


def completion(content: str, prompt_tokens: int = 10, completion_tokens: int = 5, model: str = "test-model",
               finish_reason: str = "stop") -> Scripted:
    """A successful chat completion whose message content is `content`."""
    return Scripted(
        body={
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
    )


def answer(value: Any, **usage: int) -> Scripted:
    """A completion whose content is `value` as JSON."""
    return completion(json.dumps(value), **usage)


def truncated(value: Any, keep: int) -> Scripted:
    """A completion cut off at the token limit: the first `keep` characters of `value` as JSON."""
    return completion(json.dumps(value)[:keep], finish_reason="length")


def error(status: int, message: str = "scripted error", **headers: str) -> Scripted:
    """An OpenAI-style error body with the given HTTP status."""
    return Scripted(status=status, body={"error": {"message": message, "type": "test", "code": None}},
                    headers=headers)


_NUMBERED = re.compile(r"\[(\d+)\] (.*?)(?=\n\n\[\d+\] |\n\n(?:Answer the question|For every text))", re.DOTALL)


def asked(body: dict[str, Any]) -> tuple[str, str, list[str]]:
    """What an annotator request asks: ('label' or 'span', the instruction, the texts)."""
    prompt = next(m["content"] for m in body["messages"] if m["role"] == "user")
    single = re.match(r"Text: (.*?)\n\n(Question|Request): (.*?)\n\n", prompt, re.DOTALL)
    if single:
        return ("label" if single.group(2) == "Question" else "span"), single.group(3), [single.group(1)]
    head = re.match(r"(Question|Request): (.*?)\n\nTexts:\n", prompt, re.DOTALL)
    if head is None:
        raise ValueError(f"not an annotator prompt: {prompt[:80]!r}")
    return ("label" if head.group(1) == "Question" else "span"), head.group(2), [m.group(2) for m in _NUMBERED.finditer(prompt)]


def reworded(text: str, span: str, share: float) -> bool:
    """Whether `Annotator` rewords this span: a stable choice of about `share` of all spans."""
    return zlib.crc32(f"{text}|{span}".encode()) % 1000 < share * 1000


class Annotator:
    """A handler that answers annotator prompts from `label_of(text, instruction)` and
    `spans_of(text, instruction)`, as a capable LLM would. A reply longer than `max_chars`
    comes back cut there with `finish_reason: "length"`, as a server does at `max_tokens`; a
    share `reword` of the spans comes back paraphrased ("Alice Smith" as "A. Smith")."""

    def __init__(self, label_of: Callable[[str, str], bool], spans_of: Callable[[str, str], list[str]], *,
                 max_chars: int | None = None, reword: float = 0.0) -> None:
        self.label_of, self.spans_of = label_of, spans_of
        self.max_chars, self.reword = max_chars, reword
        self.cut = 0  # replies sent truncated
        self._lock = threading.Lock()

    def _spans(self, text: str, instruction: str) -> list[str]:
        return [
            f"{span[0]}. {span.split()[-1]}" if reworded(text, span, self.reword) else span
            for span in self.spans_of(text, instruction)
        ]

    def __call__(self, body: dict[str, Any]) -> Scripted:
        op, instruction, texts = asked(body)
        if op == "label":
            items = [{"label": self.label_of(t, instruction)} for t in texts]
        else:
            items = [{"spans": self._spans(t, instruction)} for t in texts]
        value: Any = items[0] if len(texts) == 1 else {"answers": [{"id": i, **item} for i, item in enumerate(items, 1)]}
        content = json.dumps(value)
        if self.max_chars is not None and len(content) > self.max_chars:
            with self._lock:
                self.cut += 1
            return truncated(value, self.max_chars)
        return completion(content)


class ScriptedLLMServer:
    """The server and its script; `url` is the base URL to give the client (ends in /v1)."""

    def __init__(self, handler: Callable[[dict[str, Any]], Scripted] | None = None) -> None:
        self.script: deque[Scripted] = deque()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.handler = handler
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def calls(self) -> int:
        return len(self.requests)

    def push(self, *replies: Scripted) -> None:
        with self._lock:
            self.script.extend(replies)

    def _next(self, body: dict[str, Any]) -> Scripted:
        with self._lock:
            if self.script:
                return self.script.popleft()
        if self.handler is not None:
            return self.handler(body)
        return error(500, "the test script has no reply left")

    def start(self) -> ScriptedLLMServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"_raw": raw.decode("utf-8", "replace")}
                with server._lock:
                    server.requests.append(body)
                    server.headers.append({k.lower(): v for k, v in self.headers.items()})
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    reply = error(404, f"unknown path {self.path}")
                else:
                    reply = server._next(body)
                if reply.delay:
                    time.sleep(reply.delay)
                payload = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
                data = payload.encode("utf-8")
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name.replace("_", "-"), value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and went away, as scripted

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="scripted-llm", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ScriptedLLMServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
