"""Background jobs on APScheduler: sync, idle unload, sandbox health."""

from __future__ import annotations

import logging

from apscheduler.schedulers.gevent import GeventScheduler

from agent_server.events.log import flush_logs
from agent_server.sessions.manager import SessionManager

log = logging.getLogger(__name__)


def sync_sessions(manager: SessionManager) -> None:
    """Persist transcripts, changed workspace files and pending events of loaded sessions."""
    for session in manager.get_loaded_sessions():
        try:
            session.sync()
        except Exception:
            log.exception("sync of session %s failed", session.session_id)


def unload_idle_sessions(manager: SessionManager, idle_timeout: float) -> None:
    """Unload sessions with no activity for idle_timeout seconds (sync, end sandbox)."""
    for session in manager.get_loaded_sessions():
        if session.idle_for() >= idle_timeout:
            log.info(
                "session %s idle for %.0f s: unloading",
                session.session_id,
                session.idle_for(),
            )
            try:
                manager.unload_session(session.session_id, reason="idle")
            except Exception:
                log.exception("idle unload of session %s failed", session.session_id)


def check_sandboxes(manager: SessionManager) -> None:
    """Notice sandboxes that died; the next message to their session starts a new one."""
    for session in manager.get_loaded_sessions():
        try:
            session.sandbox.check()
        except Exception:
            log.exception("health check of session %s failed", session.session_id)


def flush_event_logs(manager: SessionManager) -> None:
    """Write every session's queued events (text deltas coalesced).

    One adapter call (append_events_many: one transaction) per 16 sessions rather than
    one per session; other greenlets run between the calls (flush_logs).
    """
    sessions = [s for s in manager.get_loaded_sessions() if s.log.has_pending]
    if not sessions:
        return
    try:
        flush_logs([s.log for s in sessions])
    except Exception:
        log.exception("storing the events of %d sessions failed", len(sessions))


def start_jobs(
    manager: SessionManager,
    *,
    sync_interval: float,
    idle_timeout: float,
    health_interval: float = 30.0,
    flush_interval: float = 2.0,
) -> GeventScheduler:
    scheduler = GeventScheduler(job_defaults={"coalesce": True, "max_instances": 1})
    scheduler.add_job(
        sync_sessions, "interval", seconds=sync_interval, args=[manager], id="sync"
    )
    scheduler.add_job(
        unload_idle_sessions,
        "interval",
        seconds=max(0.5, min(idle_timeout / 4, 30.0)),
        args=[manager, idle_timeout],
        id="idle",
    )
    scheduler.add_job(
        check_sandboxes,
        "interval",
        seconds=health_interval,
        args=[manager],
        id="health",
    )
    scheduler.add_job(
        flush_event_logs, "interval", seconds=flush_interval, args=[manager], id="flush"
    )
    scheduler.start()
    return scheduler
