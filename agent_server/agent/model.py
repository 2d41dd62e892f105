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
from collections.abc import Iterator
from typing import Any

import anthropic
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
        return ModelStream(response.http_response, self.base_url)

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

    def __init__(self, response: httpx2.Response, base_url: str = "") -> None:
        self._response = response
        self._base_url = base_url
        self._closed = False
        self.request_id: str | None = response.headers.get("request-id")

    def __enter__(self) -> ModelStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP response; a loop still iterating stops quietly."""
        self._closed = True
        self._response.close()

    def __iter__(self) -> Iterator[dict]:
        data: list[str] = []
        try:
            for line in self._response.iter_lines():
                if line.startswith("data:"):
                    data.append(line[6:] if line.startswith("data: ") else line[5:])
                    continue
                if line or not data:
                    continue  # `event:` names repeat the JSON's "type"
                event = json.loads(data[0] if len(data) == 1 else "\n".join(data))
                data = []
                kind = event.get("type")
                if kind == "ping":
                    continue
                if kind == "error":
                    raise _event_error(event)
                yield event
                if kind == "message_stop":
                    return
        except (httpx2.HTTPError, httpx2.StreamError) as exc:
            if self._closed:
                return
            raise ModelError(
                f"the Anthropic stream from {self._base_url} broke off: {exc}",
                code="stream_cut",
                retryable=True,
            ) from None
        except ValueError as exc:  # a data line that is not JSON
            raise ModelError(
                f"the Anthropic stream sent an unreadable event: {exc}",
                code="api_error",
                retryable=True,
            ) from None
        finally:
            self._response.close()
        if not self._closed:
            raise ModelError(
                "the Anthropic stream ended without message_stop",
                code="stream_cut",
                retryable=True,
            )


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
