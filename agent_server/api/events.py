"""/sessions/:id/events: the event log as JSON, or live over Server-Sent Events."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request, stream_with_context

from agent_server.api.feed import DEFAULT_OUTBOX_LIMIT, Outbox, SessionFeed
from agent_server.api.state import runtime
from agent_server.errors import InvalidField
from agent_server.events import names
from agent_server.events.log import Event

bp = Blueprint("events", __name__)

SSE_KEEPALIVE_SECONDS = 15.0
MAX_PAGE = 10_000


def _int_param(raw: str | None, name: str, default: int | None) -> int | None:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidField(
            f"{name} must be an integer sequence number, got {raw!r}"
        ) from None
    if value < 0:
        raise InvalidField(f"{name} must be 0 or more")
    return value


@bp.get("/sessions/<session_id>/events")
def events(session_id: str):
    manager = runtime().session_manager
    manager.record(session_id)
    if "text/event-stream" in request.headers.get("Accept", ""):
        after = _int_param(request.headers.get("Last-Event-ID"), "Last-Event-ID", None)
        if after is None:
            after = _int_param(request.args.get("after"), "after", None)
        return _sse(session_id, after)
    after = _int_param(request.args.get("after"), "after", 0)
    limit = _int_param(request.args.get("limit"), "limit", MAX_PAGE)
    events = manager.events_after(session_id, after)[: min(limit, MAX_PAGE)]
    return jsonify(
        {
            "sessionId": session_id,
            "events": [e.to_dict() for e in events],
            "lastSeq": manager.last_seq(session_id),
        }
    )


def _sse(session_id: str, after: int | None) -> Response:
    rt = runtime()
    outbox = Outbox(rt.outbox_limit or DEFAULT_OUTBOX_LIMIT)
    feed = SessionFeed(outbox, session_id)
    feed.start(rt.bus, rt.session_manager, after)

    def stream():
        try:
            yield ": connected\n\n"
            while not outbox.closed:
                items = outbox.take(SSE_KEEPALIVE_SECONDS)
                if not items:
                    if not outbox.closed:
                        yield ": keep-alive\n\n"
                    continue
                yield "".join(_sse_frame(e) for e in items)
            if outbox.close_reason:
                reason = {"code": "closed", "message": outbox.close_reason}
                yield _sse_frame(Event(session_id, None, names.ERROR, reason))
        finally:
            feed.stop(rt.bus)

    response = Response(stream_with_context(stream()), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response


def _sse_frame(event) -> str:
    head = f"id: {event.seq}\n" if event.seq is not None else ""
    return f"{head}event: {event.name}\ndata: {event.wire}\n\n"
