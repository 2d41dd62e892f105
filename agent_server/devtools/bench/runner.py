"""Run every measurement in order, print a table, write bench-results/<time>.json."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from agent_server.devtools.bench import (
    api_latency,
    capacity,
    first_delta,
    latency,
    storage,
    throughput,
)
from agent_server.devtools.bench.procs import (
    ROOT,
    Proc,
    pin,
    raise_file_limit,
    start_fake,
    start_raw_server,
    start_server,
    worker_pid,
)

FULL = {
    "latency_sessions": [1, 10, 100],
    "latency_deltas": 250,
    "throughput_sessions": 10,
    "throughput_deltas": 3000,
    "capacity_idle": 1000,
    "capacity_active": 100,
    "capacity_deltas": 250,
    "first_delta_cold": 30,
    "first_delta_warm": 100,
    "stored_sessions": 10_000,
    "api_requests": 200,
    "storage_sessions": 10,
    "storage_deltas": 500,
    "replay_deltas": 5000,
}
TINY = {
    "latency_sessions": [1, 10],
    "latency_deltas": 20,
    "throughput_sessions": 2,
    "throughput_deltas": 300,
    "capacity_idle": 50,
    "capacity_active": 5,
    "capacity_deltas": 20,
    "first_delta_cold": 3,
    "first_delta_warm": 5,
    "stored_sessions": 200,
    "api_requests": 20,
    "storage_sessions": 2,
    "storage_deltas": 60,
    "replay_deltas": 300,
}
ONLY = ("latency", "throughput", "capacity", "first_delta", "api", "storage")


class Bench:
    """Owns the processes of a run and stops them all at the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[Proc] = []
        self.commands: dict[str, str] = {}
        self.databases: dict[str, str] = {}  # each server's store: sqlite / postgres
        fake, self.model_url = start_fake()
        self._keep("fake", fake)

    def _keep(self, label: str, proc: Proc) -> Proc:
        self.procs.append(proc)
        self.commands[label] = proc.command
        return proc

    def server(self, label: str, database_url: str | None = None) -> tuple[Proc, str]:
        data = self.workdir / label
        data.mkdir()
        proc, url = start_server(data, self.model_url, database_url)
        self.databases[label] = (database_url or "sqlite").split(":", 1)[0]
        self._keep("server", proc)
        return proc, url

    def stop(self, proc: Proc) -> None:
        proc.stop()
        self.procs.remove(proc)

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


def run(cfg: dict, only: set[str], database: str = "sqlite") -> dict:
    """The measurements in ``only``; (1)-(4) store in ``database`` (sqlite, postgres)."""
    with ExitStack() as stack:
        main_db = None
        if database == "postgres" and only & {"latency", "throughput", "first_delta"}:
            main_db = stack.enter_context(storage.fresh_database())
        capacity_db = None
        if database == "postgres" and "capacity" in only:
            capacity_db = stack.enter_context(storage.fresh_database())
        return _run(cfg, only, main_db, capacity_db)


def _run(
    cfg: dict, only: set[str], main_db: str | None, capacity_db: str | None
) -> dict:
    results: dict = {}
    workdir = Path(tempfile.mkdtemp(prefix="agent-server-bench-"))
    bench = Bench(workdir)
    try:
        if only & {"latency", "throughput", "first_delta"}:
            proc, url = bench.server("main", main_db)
            if "latency" in only:
                results["latency"] = [
                    latency.measure(url, bench.model_url, n, cfg["latency_deltas"])
                    for n in cfg["latency_sessions"]
                ]
            if "throughput" in only:
                raw, raw_url = start_raw_server()
                bench._keep("raw_baseline", raw)
                results["throughput"] = throughput.measure(
                    url, raw_url, cfg["throughput_sessions"], cfg["throughput_deltas"]
                )
                bench.stop(raw)
            if "first_delta" in only:
                results["first_delta"] = first_delta.measure(
                    url, cfg["first_delta_cold"], cfg["first_delta_warm"]
                )
            bench.stop(proc)
        if "capacity" in only:
            proc, url = bench.server("capacity", capacity_db)
            results["capacity"] = capacity.measure(
                url,
                worker_pid(proc),
                cfg["capacity_idle"],
                cfg["capacity_active"],
                cfg["capacity_deltas"],
            )
            bench.stop(proc)
        if only & {"api", "storage"}:
            results.update(_databases(bench, cfg, only))
    finally:
        bench.close()
        shutil.rmtree(workdir, ignore_errors=True)
    results["commands"] = bench.commands
    results["databases"] = bench.databases
    return results


def _databases(bench: Bench, cfg: dict, only: set[str]) -> dict:
    out: dict = {}
    if "api" in only:
        sqlite_url = f"sqlite:///{bench.workdir / 'stored.db'}"
        stored = api_latency.seed(sqlite_url, cfg["stored_sessions"])
        proc, url = bench.server("api-sqlite", sqlite_url)
        out["api_sqlite"] = api_latency.measure(url, stored, cfg["api_requests"])
        bench.stop(proc)
    with storage.fresh_database() as pg_url:
        stored = (
            api_latency.seed(pg_url, cfg["stored_sessions"]) if "api" in only else []
        )
        proc, url = bench.server("postgres", pg_url)
        if "api" in only:
            out["api_postgres"] = api_latency.measure(url, stored, cfg["api_requests"])
        if "storage" in only:
            storage.install_counter(pg_url)
            out["storage"] = {
                **storage.writes(
                    url, pg_url, cfg["storage_sessions"], cfg["storage_deltas"]
                ),
                "replay": storage.replay(url, cfg["replay_deltas"]),
            }
        bench.stop(proc)
    return out


def targets(r: dict) -> list[tuple[str, str, object, bool | None]]:
    """(what, target, measured, met) rows for the table; None when not measured."""
    rows = []
    lat = {x["sessions"]: x for x in r.get("latency", [])}
    if lat:
        top = lat[max(lat)]
        rows.append(
            (
                f"(1) added p50 @{top['sessions']}",
                "<= 1 ms",
                top["added"]["p50_ms"],
                None,
            )
        )
        rows.append(
            (
                f"(1) added p99 @{top['sessions']}",
                "<= 5 ms",
                top["added"]["p99_ms"],
                None,
            )
        )
    if "throughput" in r:
        rows.append(
            ("(2) share of raw limit", ">= 0.5", r["throughput"]["ratio"], None)
        )
    if "capacity" in r:
        c = r["capacity"]
        rows.append(("(3) errors", "0", c["errors"], None))
        rows.append(("(3) RSS MB", "<= 300", c["rss_mb"]["after_streaming"], None))
        rows.append(("(3) p99 delta ms", "-", c["latency"]["p99_ms"], None))
    if "first_delta" in r:
        rows.append(
            ("(4) warm p50 ms", "<= 15", r["first_delta"]["warm"]["p50_ms"], None)
        )
        rows.append(
            ("(4) cold p50 ms", "<= 50", r["first_delta"]["cold"]["p50_ms"], None)
        )
    for db in ("sqlite", "postgres"):
        if f"api_{db}" in r:
            a = r[f"api_{db}"]
            rows.append(
                (f"(5) create p50 ms {db}", "<= 5", a["create"]["p50_ms"], None)
            )
            rows.append((f"(5) get p50 ms {db}", "<= 5", a["get"]["p50_ms"], None))
    if "storage" in r:
        s = r["storage"]
        rows.append(
            ("(6) writes / 1000 deltas", "<= 20", s["writes_per_1000_deltas"], None)
        )
        rows.append(("(6) replay events/s", "-", s["replay"]["events_per_s"], None))
    checks = {
        "<= 1 ms": lambda v: v <= 1,
        "<= 5 ms": lambda v: v <= 5,
        ">= 0.5": lambda v: v >= 0.5,
        "0": lambda v: v == 0,
        "<= 300": lambda v: v <= 300,
        "<= 15": lambda v: v <= 15,
        "<= 50": lambda v: v <= 50,
        "<= 5": lambda v: v <= 5,
        "<= 20": lambda v: v <= 20,
    }
    return [
        (what, t, v, None if v is None or t not in checks else checks[t](v))
        for what, t, v, _ in rows
    ]


def print_table(r: dict) -> None:
    for lat in r.get("latency", []):
        s, f, a = lat["server"], lat["floor"], lat["added"]
        print(
            f"latency @{lat['sessions']:>3} sessions: server p50 {s['p50_ms']} p99 "
            f"{s['p99_ms']} | floor p50 {f['p50_ms']} p99 {f['p99_ms']} | added p50 "
            f"{a['p50_ms']} p99 {a['p99_ms']} ms | errors {lat['errors']} missing "
            f"{lat['missing_deltas']}"
        )
    print(f"{'measurement':32} {'target':>8} {'measured':>10}  met")
    for what, target, value, met in targets(r):
        mark = "-" if met is None else ("yes" if met else "NO")
        print(f"{what:32} {target:>8} {value!s:>10}  {mark}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__)
    parser.add_argument("--tiny", action="store_true", help="small sizes, < 60 s")
    parser.add_argument("--out", type=Path, help="JSON path (default bench-results/)")
    parser.add_argument("--only", nargs="*", choices=ONLY, default=list(ONLY))
    parser.add_argument(
        "--share-cpus",
        action="store_true",
        help="run the servers on every CPU with the driver and the fake (default: "
        "the servers get one CPU of their own)",
    )
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="where the servers of (1)-(4) store (postgres: a fresh database on "
        "127.0.0.1, dropped afterwards); (5) and (6) name theirs",
    )
    args = parser.parse_args(argv)
    cfg = TINY if args.tiny else FULL
    files = raise_file_limit()
    placement = None if args.share_cpus else pin()
    started = time.time()
    results = run(cfg, set(args.only), args.database)
    results["targets"] = [
        {"what": w, "target": t, "measured": v, "met": m}
        for w, t, v, m in targets(results)
    ]
    results["meta"] = {
        "mode": "tiny" if args.tiny else "full",
        "config": cfg,
        "command": " ".join(
            ["scripts/bench", *(argv if argv is not None else sys.argv[1:])]
        ),
        "cpus": os.cpu_count(),
        "placement": placement or "shared",
        "database": args.database,
        "python": platform.python_version(),
        "open_files_limit": files,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
    }
    print_table(results)
    out = args.out or ROOT / "bench-results" / (
        time.strftime("%Y%m%d-%H%M%S") + ("-tiny" if args.tiny else "") + ".json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out} in {results['meta']['seconds']} s")
    return 0
