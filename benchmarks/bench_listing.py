"""Benchmark 1: list 10,000 backups with ``GesHook.list_backups()``, the official SDK and a bare client.

All three page through ``GET /v1.0/{project}/graphs/backups`` (page 100) against one emulator running
in its own process, so the server's work never competes with the client for the GIL and
``time.process_time()`` of this process is the client's CPU alone. Clients:

- ours: ``GesHook(conn).list_backups(page_size=100)``, typed and validated ``Backup`` models, with
  password/token auth and again with ``extra.auth_type="aksk"``;
- the SDK: ``GesClient`` with ``BasicCredentials`` (AK/SK, the only auth it speaks), looping
  ``list_backups(ListBackupsRequest(offset, limit))`` until ``backupCount``;
- bare: a ``requests.Session``, one token request, then ``session.get(...).json()`` per page until
  ``backupCount``: the floor any Python client pays (dicts, no validation).

Each run is cold (a new hook, session, token and secrets masker; a new SDK client; a new bare
session) and starts after a ``gc.collect()``. Runs alternate between the clients; ratios are the
median of each round's own ratio (load that drifts hits every side alike), in client CPU time and in
wall time. The whole comparison runs twice: against the emulator as is, and against it with a
per-request latency (``--latency-ms``, every GES and IAM call: a slow server, where wall time is
mostly waiting and the extra requests of a client count).

When ours/bare misses its target, one extra run of ours under ``cProfile`` lists where the CPU goes.

    python benchmarks/bench_listing.py [--quick] [--runs N] [--backups N] [--page-size N]
        [--latency-ms 20] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import math
import os
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EmulatorProcess, Row, emit, isolate_airflow, median

isolate_airflow()

Lister = Callable[[], int]  # lists every backup once; returns how many it got
BARE_TARGET = 1.1  # ours / bare, CPU and wall
SDK_TARGET = 0.4  # ours / SDK, CPU and wall


def forget_secrets() -> None:
    """Empty Airflow's secrets masker, as a new task process starts.

    The masker compiles one regex of every secret it holds each time it learns one: left alone,
    each cold run's new 2 KB token would make the next run's masking slower (9 rounds: ~10 tokens),
    a cost no real task pays (it masks its one token).
    """
    from airflow.sdk._shared.secrets_masker import _secrets_masker

    masker = _secrets_masker()
    masker.patterns, masker.replacer = set(), None


def ours(conn_id: str, page_size: int) -> Lister:
    from airflow_provider_ges.auth import TOKEN_CACHE
    from airflow_provider_ges.hooks.ges import GesHook

    def run() -> int:
        TOKEN_CACHE.clear(files=False)  # as a new task process: the token from the host's file ...
        forget_secrets()  # ... and for masking the password and that token
        return len(GesHook(conn_id).list_backups(page_size=page_size))

    return run


def sdk(conn: dict[str, Any], page_size: int) -> Lister:
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.http.http_config import HttpConfig
    from huaweicloudsdkges.v1 import GesClient, ListBackupsRequest

    def run() -> int:
        client = (
            GesClient.new_builder()
            .with_http_config(HttpConfig.get_default_config())
            .with_credentials(BasicCredentials(conn["login"], conn["password"], conn["extra"]["project_id"]))
            .with_endpoints([conn["host"]])
            .build()
        )
        backups: list[Any] = []
        while True:  # the loop a PythonOperator would write: offset/limit until backupCount
            reply = client.list_backups(ListBackupsRequest(offset=len(backups), limit=page_size))
            backups += reply.backup_list or []
            if not reply.backup_list or len(backups) >= reply.backup_count:
                return len(backups)

    return run


def bare(conn: dict[str, Any], page_size: int) -> Lister:
    """What a hand-written ``requests`` loop costs: a token, then ``.json()`` per page."""
    import requests

    from airflow_provider_ges.endpoints import password_auth_body

    extra = conn["extra"]
    body = password_auth_body(conn["login"], conn["password"], extra["domain_name"], extra["project_id"])
    url = f"{conn['host']}/v1.0/{extra['project_id']}/graphs/backups"

    def run() -> int:
        with requests.Session() as session:
            reply = session.post(f"{extra['iam_endpoint']}/v3/auth/tokens", json=body, timeout=30)
            reply.raise_for_status()
            headers = {"X-Auth-Token": reply.headers["X-Subject-Token"]}
            backups: list[dict[str, Any]] = []
            while True:
                params = {"offset": len(backups), "limit": page_size}
                page = session.get(url, params=params, headers=headers, timeout=30).json()
                backups += page.get("backupList") or []
                if not page.get("backupList") or len(backups) >= page["backupCount"]:
                    return len(backups)

    return run


def measure(emu: EmulatorProcess, lister: Lister, expected: int) -> tuple[float, float, dict[str, int]]:
    """(wall seconds, CPU seconds of this process, emulator counters) for one listing."""
    emu.ask("reset")
    gc.collect()  # every run starts from the same heap: no run pays for the previous one's garbage
    start, cpu = time.perf_counter(), time.process_time()
    got = lister()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    if got != expected:
        raise AssertionError(f"listed {got} backups, expected {expected}")
    return elapsed, cpu, emu.ask("counters")


def where(filename: str) -> str:
    """The package a profiled function belongs to."""
    path = filename.replace("\\", "/")
    for mark in ("airflow_provider_ges", "pydantic_core", "pydantic", "requests", "urllib3", "airflow"):
        if f"/{mark}/" in path:
            return mark
    if "site-packages" not in path and ("/lib/python" in path or path.startswith("<")):
        return "stdlib/builtins"
    return path.rsplit("site-packages/", 1)[-1].split("/", 1)[0]


def profile(lister: Lister, top: int = 12) -> list[str]:
    """One run of ``lister`` under cProfile: CPU by package (own time) and our costliest functions."""
    profiler = cProfile.Profile(time.process_time)  # CPU, not waiting on the server
    gc.collect()
    profiler.enable()
    lister()
    profiler.disable()
    stats = pstats.Stats(profiler)
    by_package: dict[str, float] = {}
    ours_cum: list[tuple[float, float, str]] = []
    total = 0.0
    for (filename, line, func), (_, _, own, cum, _) in stats.stats.items():  # type: ignore[attr-defined]
        total += own
        package = where(filename)
        by_package[package] = by_package.get(package, 0.0) + own
        if package == "airflow_provider_ges":
            short = filename.split("airflow_provider_ges/", 1)[1]
            ours_cum.append((cum, own, f"{short}:{line} {func}"))
    packages = ", ".join(
        f"{name} {own * 1000:.0f}" for name, own in sorted(by_package.items(), key=lambda kv: -kv[1])[:8]
    )
    functions = "; ".join(
        f"{name} cum {cum * 1000:.0f} own {own * 1000:.0f}"
        for cum, own, name in sorted(ours_cum, reverse=True)[:top]
    )
    return [
        f"profile of ours (token), one run, {total * 1000:.0f} ms of profiled CPU: own time by package (ms):"
        f" {packages}",
        f"profile: our functions by cumulative time (ms, profiler overhead included): {functions}",
    ]


def compare(
    emu: EmulatorProcess, clients: dict[str, Lister], runs: int, n: int
) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, dict[str, int]], dict[str, str]]:
    """Alternate the clients for ``runs`` rounds after one warm-up; wall and CPU seconds per run."""
    times: dict[str, list[float]] = {name: [] for name in clients}
    cpus: dict[str, list[float]] = {name: [] for name in clients}
    counters: dict[str, dict[str, int]] = {}
    errors: dict[str, str] = {}
    names = list(clients)
    for run in range(runs + 1):  # run 0 warms up (imports, pydantic schemas, first connections)
        # each round in another order: no client always runs right after the same other one
        for name in names[run % len(names) :] + names[: run % len(names)]:
            lister = clients[name]
            if name in errors:
                continue
            try:
                elapsed, cpu, counters[name] = measure(emu, lister, n)
            except Exception as err:  # report, go on with the others
                errors[name] = f"{type(err).__name__}: {str(err)[:150]}"
                continue
            if run:
                times[name].append(elapsed)
                cpus[name].append(cpu)
    return times, cpus, counters, errors


def spread(walls: list[float], cpus: list[float]) -> str:
    return ", ".join(f"{w:.2f}/{c:.2f}" for w, c in zip(walls, cpus, strict=False))


def ratio(a: list[float], b: list[float]) -> float:
    """The median of each round's own ratio."""
    return median([x / y for x, y in zip(a, b, strict=False)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds, not 9 (slow server: 2, not 7)")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--backups", type=int, default=10_000)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--latency-ms", type=int, default=20, help="the slow server's per-request latency")
    parser.add_argument("--profile", action="store_true", help="profile ours even when on target")
    args = parser.parse_args()
    runs = args.runs or (3 if args.quick else 9)
    slow = args.runs or (2 if args.quick else 7)
    n, size = args.backups, args.page_size
    rows: list[Row] = []
    notes: list[str] = []
    profiled = False
    servers = (
        ("emulator", (), runs),
        (f"emulator +{args.latency_ms} ms", ("--faults", f"latency:ms={args.latency_ms}:scope=all"), slow),
    )
    for server, faults, rounds in servers:
        with EmulatorProcess("--graphs", "5", "--backups", str(n), *faults) as emu:
            os.environ.update(emu.conn_env("password", "ges_bench_token"))
            os.environ.update(emu.conn_env("aksk", "ges_bench_aksk"))
            try:
                clients: dict[str, Lister] = {
                    "ours (token)": ours("ges_bench_token", size),
                    "ours (AK/SK)": ours("ges_bench_aksk", size),
                    "SDK (AK/SK)": sdk(emu.info["connections"]["aksk"], size),
                    "bare (token)": bare(emu.info["connections"]["password"], size),
                }
            except ImportError as err:  # the SDK is a benchmark-only dependency (the [dev] extra)
                emit([Row("1 listing", f"cannot run: {err}", "-", ok=False)])
                return
            times, cpus, counters, errors = compare(emu, clients, rounds, n)
            server_rows = report(server, times, cpus, counters, errors, rounds, n, size)
            rows += server_rows
            notes += [f"{server}: {name} failed: {why}" for name, why in errors.items()]
            notes.append(
                f"{server}: seconds per run (wall / CPU): "
                + "; ".join(f"{name} {spread(times[name], cpus[name])}" for name in clients)
            )
            over = any(r.ok is False and "bare" in r.metric for r in server_rows)
            if (over or args.profile) and not profiled and "ours (token)" not in errors:
                notes += profile(clients["ours (token)"])
                profiled = True
    emit(rows, notes)


def report(
    server: str,
    times: dict[str, list[float]],
    cpus: dict[str, list[float]],
    counters: dict[str, dict[str, int]],
    errors: dict[str, str],
    runs: int,
    n: int,
    size: int,
) -> list[Row]:
    bench = f"1 listing, {server}"
    rows: list[Row] = []
    per_k = 1000 * 1000 / n  # seconds for n backups -> ms per 1,000

    def versus(name: str, other: str, target: float | None) -> None:
        """The CPU ratio against its target (issue 14's goal); the wall ratio beside it, as context."""
        if name in errors or other in errors:
            rows.append(Row(bench, f"{name} / {other}", "failed", ok=False))
            return
        for what, values in (("client CPU", cpus), ("wall", times)):
            r = ratio(values[name], values[other])
            goal = target is not None and what == "client CPU"
            rows.append(
                Row(
                    bench,
                    f"{name} vs {other}: {what} ms per 1,000 backups (medians of {runs} rounds)",
                    f"{median(values[name]) * per_k:.1f}",
                    f"{median(values[other]) * per_k:.1f}",
                    f"{r:.2f}",
                    f"<= {target:g}" if goal else "",
                    r <= target if goal and target is not None else None,
                    goal="2 listing" if goal else "",
                )
            )

    versus("ours (token)", "bare (token)", BARE_TARGET)
    versus("ours (token)", "SDK (AK/SK)", SDK_TARGET)
    versus("ours (AK/SK)", "SDK (AK/SK)", SDK_TARGET)
    versus("bare (token)", "SDK (AK/SK)", None)  # the floor: what any requests-based client costs
    pages = math.ceil(n / size)
    anchored = 1 + math.ceil((n - size) / (size - 1))  # the Pager's overlapping pages
    for name, want in (
        ("ours (token)", (anchored, 1)),
        ("ours (AK/SK)", (anchored, 0)),
        ("SDK (AK/SK)", (pages, 0)),
        ("bare (token)", (pages, 1)),
    ):
        if name not in counters:
            continue
        got = (counters[name]["list_backups"], counters[name]["create_token"])
        rows.append(
            Row(
                bench,
                f"{name}: requests (list + token) for {n:,} backups, page {size}",
                f"{got[0]} + {got[1]}",
                target=f"{want[0]} + {want[1]}" if name.startswith("ours") else "",
                ok=got == want if name.startswith("ours") else None,
            )
        )
    return rows


if __name__ == "__main__":
    main()
