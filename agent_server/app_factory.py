"""Build the whole server from Settings: what wsgi.py and the CLI call."""

from __future__ import annotations

import atexit
import gc
import logging
import sys

from agent_server.errors import ConfigError, PersistenceError
from agent_server.settings import Settings


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # APScheduler logs every job run at INFO: noise at the default level
    logging.getLogger("apscheduler").setLevel(
        max(logging.WARNING, logging.getLevelName(level))
    )


def build_app(settings: Settings | None = None):
    """Settings → runtime (started) → Flask app; the runtime shuts down at exit."""
    from agent_server.runtime import create_runtime

    settings = settings or Settings.from_env()
    configure_logging(settings.log_level)
    if not settings.anthropic_api_key:
        logging.getLogger("agent_server").warning(
            "ANTHROPIC_API_KEY is not set: every message will fail with an error block "
            "until it is (scripts/demo runs without one, against the offline demo model)"
        )
    runtime = create_runtime(settings=settings)
    runtime.start()
    atexit.register(runtime.shutdown)
    app = runtime.create_app(api_key=settings.api_key)
    return app


GC_THRESHOLDS = (10_000, 20, 10)


def build_app_or_exit(settings: Settings | None = None):
    """Like build_app, but a bad setting or an unreachable database is one line and exit 4."""
    try:
        app = build_app(settings)
    except (ConfigError, PersistenceError) as exc:
        print(f"agent-server: {exc.message}", file=sys.stderr)
        # 4 is gunicorn's "app failed to load": the arbiter stops instead of retrying
        sys.exit(4)
    # what exists now (modules, the app) lives as long as the process: keep it out of
    # the garbage collector's full passes, which otherwise stall every stream
    gc.freeze()
    # fewer, larger young collections: at thousands of deltas per second the default
    # (700, 10, 10) promotes the objects in flight at each collection, and those
    # promotions set off a full collection (15-25 ms) every few seconds
    gc.set_threshold(*GC_THRESHOLDS)
    return app
