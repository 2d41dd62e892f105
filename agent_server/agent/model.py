"""ModelClient: the one adapter over the ``anthropic`` SDK (nothing else imports it).

``ModelClient.stream(...)`` sends one Messages request with ``stream=True`` and returns
a ``ModelStream``: a context manager and iterator of plain dicts, one per SSE event,
exactly the JSON of each ``data:`` line (``{"type": "message_start", ...}``,
``content_block_start``, ``content_block_delta``, ``content_block_stop``,
``message_delta``, ``message_stop``); ``ping`` events are dropped.

The SSE lines are parsed here rather than by the SDK's ``messages.stream()`` helper,
which rebuilds a snapshot on every event (~130 µs per delta against ~23 µs for raw
lines). The SDK still retries 429/529/5xx and connection errors before the stream
starts, honouring ``retry-after``.

Once the SDK has the response headers, the body of an HTTP/1.1 chunked reply is read
straight from the connection's socket (``_ChunkedSSE``), not through httpx2/h11:
at 50 deltas/s every delta arrives in its own read, and httpx2's layers plus a gevent
Timeout per read cost ~45 % of the CPU of reading a stream. The read timeout is
kept by one watchdog greenlet per client instead (a stream that receives nothing
for ``read_timeout`` seconds fails with connection_error). At the end h11 is given
the terminating chunk so the connection goes back to the pool. Anything else
(HTTP/2, a compressed body, other httpx2 internals) takes the iter_lines path.

Failures become ``ModelError`` with ``code``, ``status`` and ``retryable``:

    code                   status  retryable  when
    rate_limited           429     yes        HTTP 429 after the SDK's retries
    overloaded             529     yes        HTTP 529, or an overloaded_error event
    api_error              5xx     yes        other 5xx, or an api_error event
    authentication_error   401     no         the API key was refused
    permission_error       403     no
    invalid_request        4xx     no         400, 404, 413, 422 ...
    connection_error       None    yes        ANTHROPIC_BASE_URL unreachable or timed out
    stream_cut             None    yes        the stream ended without message_stop
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import gevent
import h11
import httpx2

from agent_server.errors import ModelError

# error event type -> (code, status, retryable); for an `event: error` mid-stream
_EVENT_ERRORS = {
    "overloaded_error": ("overloaded", 529, True),
    "api_error": ("api_error", 500, True),
    "rate_limit_error": ("rate_limited", 429, True),
    "authentication_error": ("authentication_error", 401, False),
    "permission_error": ("permission_error", 403, False),
    "invalid_request_error": ("invalid_request", 400, False),
    "not_found_error": ("invalid_request", 404, False),
    "request_too_large": ("invalid_request", 413, False),
}


class ModelClient:
    """Streams Messages API replies as plain dict events."""

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None = None,
        max_retries: int = 3,
        timeout: float = 600.0,
        read_timeout: float | None = None,
    ) -> None:
        # A missing key fails each call with a clear ModelError, not at construction:
        # the server starts (and can serve its API) before anyone talks to the model.
        self._has_key = bool(api_key)
        self._client = anthropic.Anthropic(
            api_key=api_key or "missing",
            base_url=base_url,
            max_retries=max_retries,
            timeout=timeout,
        )
        self.base_url = str(self._client.base_url).rstrip("/")
        self._watchdog = _Watchdog(timeout if read_timeout is None else read_timeout)

    def stream(
        self,
        *,
        model: str,
        max_tokens: int,
        system: str | list | None,
        messages: list[dict],
        tools: list[dict] | None = None,
        thinking: dict | None = None,
        metadata: dict | None = None,
    ) -> ModelStream:
        """Send the request now (the SDK retries first) and return its event stream.

        Raises ModelError when no stream could be opened.
        """
        if not self._has_key:
            raise ModelError(
                "no Anthropic API key: set ANTHROPIC_API_KEY",
                code="authentication_error",
            )
        params: dict[str, Any] = {
            "model": model,
            "max_tokens": max_tokens,
            "messages": messages,
            "stream": True,
        }
        if system:
            params["system"] = system
        if tools:
            params["tools"] = tools
        if thinking:
            params["thinking"] = thinking
        if metadata:
            params["metadata"] = metadata
        manager = self._client.messages.with_streaming_response.create(**params)
        try:
            response = manager.__enter__()
        except anthropic.AnthropicError as exc:
            raise self._translate(exc) from None
        return ModelStream(response.http_response, self.base_url, self._watchdog)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def _translate(self, exc: anthropic.AnthropicError) -> ModelError:
        if isinstance(exc, anthropic.APITimeoutError):
            return ModelError(
                f"the Anthropic API at {self.base_url} did not answer in time",
                code="connection_error",
                retryable=True,
            )
        if isinstance(exc, anthropic.APIConnectionError):
            return ModelError(
                f"cannot reach ANTHROPIC_BASE_URL ({self.base_url}): "
                f"{exc.__cause__ or exc}",
                code="connection_error",
                retryable=True,
            )
        if isinstance(exc, anthropic.APIStatusError):
            return status_error(exc.status_code, _api_message(exc.body, str(exc)))
        return ModelError(f"Anthropic API: {exc}", code="api_error")


def status_error(status: int, message: str) -> ModelError:
    """The ModelError for an HTTP error ``status`` of the Messages API."""
    if status == 401:
        return ModelError(
            f"the Anthropic API refused the API key (401: {message}); "
            "check ANTHROPIC_API_KEY",
            code="authentication_error",
            status=status,
        )
    if status == 429:
        code, retryable = "rate_limited", True
    elif status == 529:
        code, retryable = "overloaded", True
    elif status >= 500 or status in (408, 409):
        code, retryable = "api_error", True
    elif status == 403:
        code, retryable = "permission_error", False
    else:
        code, retryable = "invalid_request", False
    return ModelError(
        f"Anthropic API error {status}: {message}",
        code=code,
        retryable=retryable,
        status=status,
    )


def _api_message(body: object, fallback: str) -> str:
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return f"{err.get('type', 'error')}: {err['message']}"
    return fallback


class ModelStream:
    """The events of one streamed reply, as plain dicts; close() drops the stream."""

    def __init__(
        self,
        response: httpx2.Response,
        base_url: str = "",
        watchdog: _Watchdog | None = None,
    ) -> None:
        self._response = response
        self._base_url = base_url
        self._closed = False
        self._expired = False
        self.request_id: str | None = response.headers.get("request-id")
        self._body = _ChunkedSSE.open(response) if watchdog is not None else None
        self._watchdog = watchdog
        self.reads = 0  # socket reads so far (the watchdog's sign of life)

    @property
    def direct(self) -> bool:
        """True when the body is read from the socket, not through httpx2."""
        return self._body is not None

    def __enter__(self) -> ModelStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP response; a loop still iterating stops quietly."""
        self._closed = True
        self._response.close()

    def expire(self) -> None:
        """Called by the watchdog: nothing arrived for the read timeout."""
        self._expired = True
        self._response.close()

    def __iter__(self) -> Iterator[dict]:
        if self._body is None:
            events = self._lines()
        else:
            self._watchdog.watch(self)
            events = self._direct()
        try:
            for event in events:
                kind = event.get("type")
                if kind == "ping":
                    continue
                if kind == "error":
                    raise _event_error(event)
                yield event
                if kind == "message_stop":
                    if self._body is not None:
                        self._body.finish()
                    return
        except (
            httpx2.HTTPError,
            httpx2.StreamError,
            OSError,
            h11.ProtocolError,
        ) as exc:
            if self._closed:
                return
            if self._expired:
                raise self._timed_out() from None
            raise ModelError(
                f"the Anthropic stream from {self._base_url} broke off: {exc}",
                code="stream_cut",
                retryable=True,
            ) from None
        except ValueError as exc:  # a data line that is not JSON
            if self._closed:
                return
            raise ModelError(
                f"the Anthropic stream sent an unreadable event: {exc}",
                code="api_error",
                retryable=True,
            ) from None
        finally:
            if self._watchdog is not None:
                self._watchdog.forget(self)
            self._response.close()
        if self._expired:
            raise self._timed_out()
        if not self._closed:
            raise ModelError(
                "the Anthropic stream ended without message_stop",
                code="stream_cut",
                retryable=True,
            )

    def _timed_out(self) -> ModelError:
        return ModelError(
            f"the Anthropic stream from {self._base_url} sent nothing for "
            f"{self._watchdog.timeout:g} s",
            code="connection_error",
            retryable=True,
        )

    def _direct(self) -> Iterator[dict]:
        body = self._body
        recv = body.recv
        events = body.events
        while True:
            for data in events():
                yield json.loads(data)
            if body.ended:
                return  # the body ended before message_stop
            chunk = recv(65536)
            self.reads += 1
            if not chunk:
                return  # the connection ended
            body.feed(chunk)

    def _lines(self) -> Iterator[dict]:
        data: list[str] = []
        for line in self._response.iter_lines():
            if line.startswith("data:"):
                data.append(line[6:] if line.startswith("data: ") else line[5:])
                continue
            if line or not data:
                continue  # `event:` names repeat the JSON's "type"
            yield json.loads(data[0] if len(data) == 1 else "\n".join(data))
            data = []


class _ChunkedSSE:
    """An HTTP/1.1 chunked SSE body read from the connection's socket, split into events.

    Reaches into httpx2/httpcore2/h11 internals: ``open`` returns None (and the
    stream uses iter_lines) unless every piece is where this version keeps it.
    """

    __slots__ = ("recv", "_h11", "_raw", "_left", "_body", "ended", "_tail")

    @classmethod
    def open(cls, response: httpx2.Response) -> _ChunkedSSE | None:
        headers = response.headers
        if (
            headers.get("transfer-encoding", "").lower() != "chunked"
            or headers.get("content-encoding", "identity").lower() != "identity"
            or response.http_version != "HTTP/1.1"
        ):
            return None
        try:
            conn = response.stream._stream._httpcore_stream._stream._connection
            state = conn._h11_state
            buffer = state._receive_buffer
            sock = conn._network_stream.get_extra_info("socket")
            fresh = (
                state.their_state is h11.SEND_BODY
                and type(state._reader).__name__ == "ChunkedReader"
                and state._reader._bytes_in_chunk == 0
                and not state._reader._reading_trailer
                and sock is not None
            )
        except AttributeError:
            return None
        if not fresh:
            return None
        # the bytes h11 read past the headers are the start of the body
        pending = buffer.maybe_extract_at_most(len(buffer)) or b""
        sock.settimeout(None)  # no gevent Timeout per read: the watchdog keeps time
        return cls(_receiver(sock), state, bytes(pending))

    def __init__(self, recv, state: h11.Connection, pending: bytes) -> None:
        self.recv = recv
        self._h11 = state
        self._raw = b""  # undecoded chunked bytes (a partial chunk header)
        self._left = 0  # bytes left in the current chunk, its closing CRLF included
        self._body = b""  # decoded body not yet split into events
        self.ended = False  # the terminating chunk arrived
        self._tail = b""  # bytes after the terminating chunk's size line
        if pending:
            self.feed(pending)

    def feed(self, data: bytes) -> bool:
        """Decode chunked bytes into the body; False once the terminating chunk came."""
        if self.ended:
            self._tail += data
            return False
        raw = self._raw + data if self._raw else data
        self._raw = b""
        out = []
        pos, end, left = 0, len(raw), self._left
        while pos < end:
            if left:
                take = min(left, end - pos)
                keep = min(take, left - 2)  # the chunk's CRLF is not body
                if keep > 0:
                    out.append(raw[pos : pos + keep])
                pos += take
                left -= take
                continue
            eol = raw.find(b"\r\n", pos)
            if eol < 0:
                self._raw = raw[pos:]
                break
            size = int(raw[pos:eol].split(b";", 1)[0], 16)  # ValueError: garbage
            pos = eol + 2
            if size == 0:
                self.ended = True
                self._tail = raw[pos:]
                break
            left = size + 2
        self._left = left
        if out:
            piece = b"".join(out) if len(out) > 1 else out[0]
            body = self._body + piece if self._body else piece
            if b"\r" in body:  # SSE allows CRLF line ends
                body = body.replace(b"\r\n", b"\n")
            self._body = body
        return not self.ended

    def events(self) -> Iterator[bytes]:
        """The ``data`` payload of each complete SSE event received so far."""
        body = self._body
        start = 0
        while True:
            stop = body.find(b"\n\n", start)
            if stop < 0:
                break
            block = body[start:stop]
            start = stop + 2
            if block.startswith(b"event:"):  # the usual shape: event line, data line
                nl = block.find(b"\n")
                block = block[nl + 1 :] if nl >= 0 else b""
            if block.startswith(b"data:") and b"\n" not in block:
                self._body = body[start:]
                yield block[6:] if block.startswith(b"data: ") else block[5:]
                continue
            data = [
                line[6:] if line.startswith(b"data: ") else line[5:]
                for line in block.split(b"\n")
                if line.startswith(b"data:")
            ]
            if data:
                self._body = body[start:]
                yield b"\n".join(data)
        self._body = body[start:]

    def finish(self, wait: float = 1.0) -> None:
        """Read to the end of the body and hand h11 its end, so the connection is reused.

        h11 is told the body was empty (``0\\r\\n`` plus the trailer); if the end does
        not come within ``wait`` seconds the connection is simply closed with the
        response.
        """
        try:
            with gevent.Timeout(wait, False):
                while not self.ended:
                    chunk = self.recv(65536)
                    if not chunk:
                        return
                    self.feed(chunk)
                while b"\r\n" not in self._tail[:2] and b"\r\n\r\n" not in self._tail:
                    chunk = self.recv(65536)
                    if not chunk:
                        return
                    self._tail += chunk
                state = self._h11
                state.receive_data(b"0\r\n" + self._tail)
                if state.next_event() is h11.NEED_DATA:
                    return
        except (OSError, ValueError, h11.ProtocolError):
            return


def _receiver(sock):
    """``recv(n)`` for the socket: on a plain gevent socket, wait first, then read.

    gevent's ``recv`` tries the read first; when deltas trickle in, that read almost
    always fails with EAGAIN (a syscall and an exception per delta) before waiting.
    TLS sockets keep their own ``recv``: decrypted bytes may already be buffered.
    """
    raw = getattr(sock, "_sock", None)
    wait = getattr(sock, "_wait", None)
    if raw is None or wait is None or hasattr(sock, "cipher"):  # TLS
        return sock.recv
    raw_recv = raw.recv

    def recv(size: int) -> bytes:
        while True:
            wait(sock._read_event)  # raises if the socket is closed meanwhile
            try:
                return raw_recv(size)
            except BlockingIOError:
                continue

    return recv


class _Watchdog:
    """One greenlet per client that expires streams that received nothing for a while.

    A gevent Timeout per socket read cost more than reading the delta; this checks
    each open stream's read count every ``timeout / 4`` seconds instead.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._streams: dict[ModelStream, tuple[int, float]] = {}
        self._greenlet: gevent.Greenlet | None = None

    def watch(self, stream: ModelStream) -> None:
        self._streams[stream] = (-1, time.monotonic())
        if self._greenlet is None or self._greenlet.dead:
            self._greenlet = gevent.spawn(self._run)

    def forget(self, stream: ModelStream) -> None:
        self._streams.pop(stream, None)

    def _run(self) -> None:
        interval = max(0.05, min(self.timeout / 4, 5.0))
        while self._streams:
            gevent.sleep(interval)
            now = time.monotonic()
            for stream, (reads, since) in list(self._streams.items()):
                if stream.reads != reads:
                    self._streams[stream] = (stream.reads, now)
                elif now - since >= self.timeout:
                    self._streams.pop(stream, None)
                    stream.expire()


def _event_error(event: dict) -> ModelError:
    err = event.get("error") or {}
    etype = err.get("type", "api_error")
    code, status, retryable = _EVENT_ERRORS.get(etype, ("api_error", None, False))
    return ModelError(
        f"the Anthropic stream failed: {etype}: {err.get('message', '')}",
        code=code,
        retryable=retryable,
        status=status,
    )
