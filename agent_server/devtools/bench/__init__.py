"""Benchmarks of the hot path: a real server, a fake model in its own process, real clients.

``python -m agent_server.devtools.bench [--tiny]`` (or ``scripts/bench``) runs every
measurement of docs/benchmarks.md and writes ``bench-results/<time>.json``. Modules:
``fake`` (the model, one process), ``procs`` (starting servers), ``client`` (HTTP and
WebSocket clients of the driver), ``floor`` (the SDK alone, a process), ``raw_server``
(the flask-sock baseline), one module per measurement, ``runner`` (order, table, JSON).
"""
