"""The raw limit: a minimal flask-sock app on gevent pushing delta-sized frames.

A client sends ``{"frames": K, "size": S}`` and gets K ``session:block:delta``-shaped
frames of about S bytes (each stamped, like the fake's), then a turn:completed frame.
Sends go through the project's whole-send socket (ws_server.py): plain simple-websocket
under gevent may write part of a frame to a busy client (STACK-NOTES).
Run: ``gunicorn -k gevent --workers 1 agent_server.devtools.bench.raw_server:app``.
"""

from __future__ import annotations

import json
import time

from flask import Flask
from flask_sock import Sock

from agent_server.api import ws_server

app = Flask(__name__)
ws_server.install()
sock = Sock(app)

_HEAD = '{"event":"session:block:delta","sessionId":"ses_raw","seq":'
_DATA = ',"data":{"conversationId":"main","blockId":"blk_raw","delta":"'


@app.get("/health")
def health():
    return {"status": "ok"}


@sock.route("/ws")
def push(ws) -> None:
    ask = json.loads(ws.receive())
    frames, size = int(ask["frames"]), int(ask["size"])
    pad = max(0, size - len(_HEAD) - len(_DATA) - len("<t:0000000000.000000>") - 10)
    for seq in range(1, frames + 1):
        stamp = f"<t:{time.time():.6f}>" + "." * pad
        ws.send(f'{_HEAD}{seq}{_DATA}{stamp}"}}}}')
    ws.send(
        '{"event":"session:turn:completed","sessionId":"ses_raw","seq":0,"data":{}}'
    )
    ws.receive(timeout=10)  # let the client close first
