"""The `agent-server` command: serve, demo (offline, against the bundled fake model)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from gevent import monkey

    monkey.patch_all()
    parser = argparse.ArgumentParser(prog="agent-server", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve", help="run the server (gevent; use gunicorn in production)"
    )
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=None, help="default: $PORT or 3001")
    demo = sub.add_parser(
        "demo",
        help="run the server against the bundled fake Messages API (no API key needed)",
    )
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=None, help="default: $PORT or 3001")
    args = parser.parse_args(argv)
    return _serve(args.host, args.port, demo=args.command == "demo")


def _serve(host: str, port: int | None, *, demo: bool) -> int:
    import os
    import signal

    import gevent
    from gevent.pywsgi import WSGIServer

    from agent_server.app_factory import build_app_or_exit
    from agent_server.listen import listen_tcp
    from agent_server.settings import Settings

    environ = dict(os.environ)
    fake = None
    if demo:
        from agent_server.devtools.fake_anthropic import FakeAnthropic

        fake = FakeAnthropic(mode="demo", tokens_per_second=40)
        environ["ANTHROPIC_BASE_URL"] = fake.start()
        environ.setdefault("ANTHROPIC_API_KEY", "demo-key")
        environ["AGENT_SERVER_MODEL"] = "agent-server-demo"
    try:
        settings = Settings.from_env(environ)
    except Exception as exc:  # ConfigError: one line, no traceback
        print(f"agent-server: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 4
    port = port or settings.port
    app = build_app_or_exit(settings)
    server = WSGIServer(listen_tcp(host, port), app, log=None)

    def stop(*_):
        server.stop(timeout=5)

    gevent.signal_handler(signal.SIGTERM, stop)
    gevent.signal_handler(signal.SIGINT, stop)
    label = " (demo: offline fake model 'agent-server-demo')" if demo else ""
    print(f"agent-server listening on http://{host}:{port}{label}", flush=True)
    try:
        server.serve_forever()
    finally:
        if fake is not None:
            fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
