"""ModelStream: the events of one streamed Messages reply, as plain dicts.

The SSE lines are parsed here rather than by the SDK's ``messages.stream()`` helper,
which rebuilds a snapshot on every event (~130 µs per delta against ~23 µs for raw
lines). This module reads bodies only; ``ModelClient`` (model.py, the one module
that imports ``anthropic``) opens the request and lets the SDK retry before it.

Once the SDK has the response headers, the body of an HTTP/1.1 chunked reply is read
straight from the connection's socket (``_ChunkedSSE``), not through httpx2/h11:
at 50 deltas/s every delta arrives in its own read, and httpx2's layers plus a gevent
Timeout per read cost ~45 % of the CPU of reading a stream. The read timeout is
kept by one watchdog greenlet per client instead (a stream that receives nothing
for ``read_timeout`` seconds fails with connection_error). At the end h11 is given
the terminating chunk so the connection goes back to the pool. Anything else
(HTTP/2, a compressed body, other httpx2 internals) takes the iter_lines path.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import gevent
import h11
import httpx2

from agent_server.errors import ModelError
from agent_server.sockets import wait_then_recv

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


class ModelStream:
    """The events of one streamed reply, as plain dicts; close() drops the stream."""

    def __init__(
        self,
        response: httpx2.Response,
        base_url: str = "",
        watchdog: ReadWatchdog | None = None,
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
        return cls(wait_then_recv(sock), state, bytes(pending))

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


class ReadWatchdog:
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
