"""A command's output as exec keeps it: streamed on, capped, decoded as UTF-8."""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterable

from agent_server.sandbox.base import ExecResult, OutputCallback


class OutputCapture:
    """Collects a command's output up to a byte budget shared by stdout and stderr.

    Each kept piece is passed to ``on_output`` as it comes. Should that callback
    raise, the capture stops calling it, keeps the exception in ``error`` (exec
    re-raises it) and calls ``on_error`` once, which stops the command.
    """

    def __init__(
        self,
        limit: int,
        on_output: OutputCallback | None,
        on_error: Callable[[], object],
    ) -> None:
        self.left = limit
        self.on_output = on_output
        self.on_error = on_error
        self.text: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.truncated = False
        self.error: BaseException | None = None

    def drain(self, chunks: Iterable[bytes], stream: str) -> None:
        """Consume one stream to its end; what goes past the budget is dropped."""
        # incremental: a multibyte character split across two chunks survives
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        for chunk in chunks:
            keep = chunk[: max(self.left, 0)]
            self.left -= len(keep)
            if len(keep) < len(chunk):
                self.truncated = True
            if keep:
                self._emit(stream, decoder.decode(keep))
        self._emit(stream, decoder.decode(b"", final=True))

    def result(self, exit_code: int | None, *, timed_out: bool) -> ExecResult:
        """The ExecResult with what was kept of both streams."""
        return ExecResult(
            exit_code=exit_code,
            stdout="".join(self.text["stdout"]),
            stderr="".join(self.text["stderr"]),
            timed_out=timed_out,
            truncated=self.truncated,
        )

    def _emit(self, stream: str, text: str) -> None:
        if not text:
            return
        self.text[stream].append(text)
        if self.on_output is None or self.error is not None:
            return
        try:
            self.on_output(stream, text)
        except Exception as exc:
            self.error = exc
            self.on_error()
