"""A fake Anthropic Messages API on 127.0.0.1 that speaks the real wire protocol.

Tests, the offline demo and the benchmarks point the real ``anthropic`` client at it::

    with FakeAnthropic() as fake:                  # mode="echo" by default
        fake.enqueue(
            reply(text("Hello"), stop_reason="end_turn"),
            reply(thinking("let me think"), text("Done.", chunks=3)),
            reply(tool_use("Write", {"file_path": "a.py", "content": "print(1)"})),
            error(429, retry_after=0),             # the SDK retries this one itself
            error(529),
            stream_error("overloaded_error", after_events=3),
            cut(after_events=5),                   # connection dropped mid-reply
        )
        client = anthropic.Anthropic(api_key="test", base_url=fake.base_url)
        ...
        assert fake.requests[-1].json["messages"][-1]["role"] == "user"

Builders:
- ``text(s, chunks=None)``: a text block; split into ``chunks`` deltas (default: a
  delta per word). ``thinking(s, signature=None, chunks=None)``: thinking deltas then
  one signature_delta. ``tool_use(name, input, id=None, chunks=3)``: the input's JSON
  is sent as ``chunks`` input_json_delta pieces split at arbitrary points; ids are
  ``toolu_...`` unless given. ``stamped(deltas=20, size=32)``: see below.
- ``reply(*blocks, stop_reason=None, stop_sequence=None, input_tokens=None,
  output_tokens=None, cache_read_input_tokens=0, cache_creation_input_tokens=0,
  model=None, tokens_per_second=None)``: stop_reason defaults to "tool_use" when a
  tool_use block is present, else "end_turn"; token counts default to estimates;
  model defaults to the request's model.
- ``error(status, message=None, type=None, retry_after=None, should_retry=None)``: an
  HTTP error with Anthropic's JSON body. ``retry_after=0`` sends ``retry-after: 0``
  and ``retry-after-ms: 1`` (the SDK treats 0 as "unspecified" and would back off).
- ``stream_error(error_type, after_events=3, message=None, reply=None)``: streams the
  first ``after_events`` events of ``reply`` then an ``event: error`` and ends.
- ``cut(after_events=5, reply=None)``: streams ``after_events`` events then drops the
  TCP connection (no message_stop, no chunked terminator).

Each queued item answers one request, in order (a 429 and its SDK retry are two). With
an empty queue the server answers by its ``mode``: ``echo`` ("You said: <last user
text>"), ``demo`` (fresh user text -> tool_use Write hello.py; its tool_result -> tool_use
Bash ``python3 hello.py``; that result -> a final text quoting the output; model
"agent-server-demo"), or ``stamped`` (a stamped reply, for benchmarks).

Delivery rate: ``tokens_per_second`` (server-wide, or per reply) spaces deltas
``1/tokens_per_second`` seconds apart; ``None`` sends them as fast as possible.

Stamped deltas: each text delta of a ``stamped`` block is ``<t:SECONDS>`` where
SECONDS is ``time.time()`` at send, formatted ``%.6f``, right-padded with ``.`` to
``size`` characters (never truncated). A client computes delivery latency as
``time.time() - float(re.match(r"<t:([0-9.]+?)>", delta)[1])``.

Every request is recorded in ``fake.requests`` (``RecordedRequest``: method, path,
query, headers with lower-case names, json). The server needs a gevent-patched process
(tests are) or its own process: ``python -m agent_server.devtools.fake_anthropic``.
"""

from __future__ import annotations

import argparse
import errno
import itertools
import json
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import gevent
from gevent.pywsgi import WSGIServer

from agent_server.devtools.fake_replies import (
    DEMO_MODEL,
    DEMO_SCRIPT,
    ERROR_TYPES,
    Block,
    BrokenReply,
    ErrorReply,
    Reply,
    cut,
    demo_reply,
    echo_reply,
    error,
    error_body,
    estimate_tokens,
    message_events,
    message_json,
    new_id,
    reply,
    sse,
    stamped,
    stream_error,
    text,
    thinking,
    tool_use,
)
from agent_server.listen import listen_tcp

__all__ = [
    "DEMO_MODEL",
    "DEMO_SCRIPT",
    "ERROR_TYPES",
    "MODES",
    "Block",
    "BrokenReply",
    "ErrorReply",
    "FakeAnthropic",
    "RecordedRequest",
    "Reply",
    "cut",
    "error",
    "reply",
    "stamped",
    "stream_error",
    "text",
    "thinking",
    "tool_use",
]

MODES = ("echo", "demo", "stamped")

_STATUS_LINES = {
    200: "200 OK",
    400: "400 Bad Request",
    401: "401 Unauthorized",
    403: "403 Forbidden",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    413: "413 Payload Too Large",
    429: "429 Too Many Requests",
    500: "500 Internal Server Error",
    503: "503 Service Unavailable",
    529: "529 Overloaded",
}


@dataclass
class RecordedRequest:
    """One request as the fake received it (header names in lower case)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any = None
    body: bytes = field(default=b"", repr=False)


class FakeAnthropic:
    """The fake Messages API server: scripted replies first, then ``mode``."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        mode: str = "echo",
        tokens_per_second: float | None = None,
        api_key: str | None = None,
        stamp_deltas: int = 20,
        stamp_size: int = 32,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.host, self.port, self.mode = host, port, mode
        self.tokens_per_second = tokens_per_second
        self.api_key = api_key  # None: any non-empty key is accepted
        self.stamp_deltas, self.stamp_size = stamp_deltas, stamp_size
        self.requests: list[RecordedRequest] = []
        self._queue: deque = deque()
        self._server: WSGIServer | None = None

    # -- scripting

    def enqueue(self, *responses: Reply | ErrorReply | BrokenReply) -> None:
        """Queue answers for the next requests, one per request, in order."""
        self._queue.extend(responses)

    def reset(self) -> None:
        """Forget the queue and the recorded requests."""
        self._queue.clear()
        self.requests.clear()

    @property
    def pending(self) -> int:
        """How many queued answers have not been used yet."""
        return len(self._queue)

    # -- lifecycle

    def start(self) -> str:
        """Start serving in the background; returns the base URL."""
        self._server = WSGIServer(listen_tcp(self.host, self.port), self._app, log=None)
        self._server.start()
        self.port = self._server.server_port
        return self.base_url

    def stop(self) -> None:
        """Stop serving and close open streams."""
        if self._server is not None:
            self._server.stop(timeout=1)
            self._server = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> FakeAnthropic:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- WSGI

    def _app(self, environ: dict, start_response) -> Iterator[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        raw = environ["wsgi.input"].read()
        headers = {
            k[5:].replace("_", "-").lower(): v
            for k, v in environ.items()
            if k.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self.requests.append(RecordedRequest(method, path, query, headers, body, raw))

        refusal = self._refusal(method, path, headers, body)
        if refusal is not None:
            return self._error(start_response, refusal)
        answer = self._queue.popleft() if self._queue else self._fallback(body)
        if isinstance(answer, ErrorReply):
            return self._error(start_response, answer)
        rep = answer.reply if isinstance(answer, BrokenReply) else answer
        model = rep.model or body["model"]
        input_tokens = (
            rep.input_tokens
            if rep.input_tokens is not None
            else estimate_tokens(len(raw))
        )
        rate = rep.tokens_per_second or self.tokens_per_second
        delay = 1.0 / rate if rate else 0.0
        request_id = new_id("req_")
        if not body.get("stream"):
            data = json.dumps(message_json(rep, model, input_tokens)).encode()
            start_response(
                "200 OK",
                [
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(data))),
                    ("request-id", request_id),
                ],
            )
            return [data]
        start_response(
            "200 OK",
            [
                ("Content-Type", "text/event-stream; charset=utf-8"),
                ("Cache-Control", "no-cache"),
                ("request-id", request_id),
            ],
        )
        events = message_events(rep, model, input_tokens, delay)
        if isinstance(answer, BrokenReply):
            return self._broken(events, answer)
        return events

    def _refusal(
        self, method: str, path: str, headers: dict, body: Any
    ) -> ErrorReply | None:
        """The error the real API would answer before any model work, if any."""
        if path.rstrip("/") != "/v1/messages":
            return error(404, f"no route for {path}", type="not_found_error")
        if method != "POST":
            return ErrorReply(405, "invalid_request_error", f"{method} not allowed")
        bearer = headers.get("authorization", "").removeprefix("Bearer ").strip()
        key = headers.get("x-api-key") or bearer
        if not key or (self.api_key is not None and key != self.api_key):
            return error(401, "invalid x-api-key")
        if not isinstance(body, dict) or not all(
            body.get(k) for k in ("model", "max_tokens", "messages")
        ):
            return error(400, "the body must be JSON with model, max_tokens, messages")
        return None

    def _broken(self, events: Iterator[bytes], answer: BrokenReply) -> Iterator[bytes]:
        yield from itertools.islice(events, answer.after_events)
        if answer.error_type is None:
            # pywsgi drops the connection quietly on ECONNRESET: no terminating chunk.
            raise ConnectionResetError(errno.ECONNRESET, "fake_anthropic: cut")
        yield sse("error", error_body(answer.error_type, answer.message))

    def _fallback(self, body: dict) -> Reply:
        if self.mode == "demo":
            return demo_reply(body)
        if self.mode == "stamped":
            return reply(stamped(self.stamp_deltas, self.stamp_size))
        return echo_reply(body)

    def _error(self, start_response, err: ErrorReply) -> list[bytes]:
        data = json.dumps(error_body(err.type, err.message)).encode()
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            ("request-id", new_id("req_")),
        ]
        if err.retry_after is not None:
            headers.append(("retry-after", f"{err.retry_after:g}"))
            headers.append(("retry-after-ms", f"{max(1.0, err.retry_after * 1000):g}"))
        if err.should_retry is not None:
            headers.append(("x-should-retry", "true" if err.should_retry else "false"))
        start_response(_STATUS_LINES.get(err.status, f"{err.status} Error"), headers)
        return [data]


def main(argv: list[str] | None = None) -> None:
    """Run the fake on a port until interrupted (the offline demo and benchmarks)."""
    parser = argparse.ArgumentParser(
        prog="python -m agent_server.devtools.fake_anthropic",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--mode", choices=MODES, default="demo")
    parser.add_argument("--tokens-per-second", type=float, default=None)
    parser.add_argument(
        "--stamp-deltas", type=int, default=20, help="deltas per reply in stamped mode"
    )
    parser.add_argument(
        "--stamp-size", type=int, default=32, help="characters per stamped delta"
    )
    args = parser.parse_args(argv)
    fake = FakeAnthropic(
        host=args.host,
        port=args.port,
        mode=args.mode,
        tokens_per_second=args.tokens_per_second,
        stamp_deltas=args.stamp_deltas,
        stamp_size=args.stamp_size,
    )
    print(f"fake Anthropic API ({args.mode} mode) on {fake.start()}", flush=True)
    try:
        while True:
            gevent.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    from gevent import monkey

    monkey.patch_all()
    main()
