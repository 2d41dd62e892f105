"""scripts/bench --tiny runs end to end and writes every measurement (not timing targets)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _bench(*args: str, timeout: float) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [str(ROOT / "scripts" / "bench"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


@pytest.mark.skipif(sys.platform != "linux", reason="the bench reads /proc")
def test_tiny_bench_writes_every_measurement(tmp_path):
    out = tmp_path / "bench.json"
    done = _bench("--tiny", "--out", str(out), timeout=180)
    r = json.loads(out.read_text())

    assert [x["sessions"] for x in r["latency"]] == [1, 10]
    for level in r["latency"]:
        for part in ("server", "floor", "added"):
            assert _number(level[part]["p50_ms"]) and _number(level[part]["p99_ms"])
        assert level["server"]["n"] == level["sessions"] * level["deltas_per_session"]
        assert level["errors"] == 0 and level["missing_deltas"] == 0

    t = r["throughput"]
    assert t["deltas_per_s"] > 0 and t["raw_limit_per_s"] > 0 and _number(t["ratio"])
    assert t["errors"] == 0 and t["missing_deltas"] == 0

    c = r["capacity"]
    assert c["idle_connected"] == c["idle_subscribers"] and c["errors"] == 0
    assert _number(c["latency"]["p99_ms"]) and c["rss_mb"]["after_streaming"] > 0

    for kind in ("cold", "warm"):
        assert _number(r["first_delta"][kind]["p50_ms"])
        assert _number(r["first_delta"][kind]["p99_ms"])

    for db in ("api_sqlite", "api_postgres"):
        assert r[db]["stored_sessions"] > 0
        for call in ("create", "get"):
            assert _number(r[db][call]["p50_ms"]) and _number(r[db][call]["p99_ms"])

    s = r["storage"]
    assert s["deltas_stored"] == s["sessions"] * s["deltas_per_session"]
    assert 0 < s["writes"] <= s["rows"] and _number(s["writes_per_1000_deltas"])
    assert s["replay"]["complete"] and s["replay"]["events_per_s"] > 0

    assert {row["what"] for row in r["targets"]} >= {"(2) share of raw limit"}
    assert "wrote" in done.stdout
    assert r["meta"]["placement"] == "shared" or r["meta"]["placement"]["servers"]
    assert r["databases"]["main"] == "sqlite"
    assert r["databases"]["postgres"] == "postgresql"


@pytest.mark.skipif(sys.platform != "linux", reason="the bench reads /proc")
def test_the_profiling_window_reports_latency_and_cpu_per_process():
    done = _bench("window", "2", "20", timeout=120)
    report = json.loads(done.stdout[done.stdout.index("{") :])
    assert report["latency"]["n"] == 40
    assert report["errors"] == 0 and report["missing_deltas"] == 0
    cpu = report["cpu_s"]
    assert set(cpu) == {"server", "fake", "driver"}
    assert all(_number(v) and v >= 0 for v in cpu.values())


@pytest.mark.skipif(sys.platform != "linux", reason="the bench reads /proc")
def test_the_bench_can_run_the_server_on_postgresql(tmp_path):
    out = tmp_path / "bench.json"
    _bench(
        "--tiny",
        "--database",
        "postgres",
        "--only",
        "first_delta",
        "--out",
        str(out),
        timeout=120,
    )
    r = json.loads(out.read_text())
    assert r["meta"]["database"] == "postgres"
    assert r["databases"] == {"main": "postgresql"}
    for kind in ("cold", "warm"):
        assert _number(r["first_delta"][kind]["p50_ms"])
