"""The WSGI entry point: `gunicorn -k gevent wsgi:app` (see Procfile)."""

from gevent import monkey

monkey.patch_all()

from agent_server.app_factory import build_app_or_exit  # noqa: E402

app = build_app_or_exit()
