"""ModelClient: the one adapter over the ``anthropic`` SDK (nothing else imports it).

``ModelClient.stream(...)`` sends one Messages request with ``stream=True`` and returns
a ``ModelStream`` (model_stream.py): a context manager and iterator of plain dicts,
one per SSE event, exactly the JSON of each ``data:`` line (``{"type":
"message_start", ...}``, ``content_block_start``, ``content_block_delta``,
``content_block_stop``, ``message_delta``, ``message_stop``); ``ping`` events are
dropped. The SDK retries 429/529/5xx and connection errors before the stream starts,
honouring ``retry-after``; the body is then read by ``ModelStream`` itself.

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

from typing import Any

import anthropic

from agent_server.agent.model_stream import ModelStream, ReadWatchdog
from agent_server.agent.model_stream import _ChunkedSSE as _ChunkedSSE  # re-exported
from agent_server.errors import ModelError


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
        self._watchdog = ReadWatchdog(timeout if read_timeout is None else read_timeout)

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
