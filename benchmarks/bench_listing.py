"""Benchmark 1: list 10,000 backups with ``GesHook.list_backups()`` and with the official SDK.

Both page through ``GET /v1.0/{project}/graphs/backups`` with the same page size against one emulator
running in its own process (so the server's work never competes with the client for the GIL; both
clients face the same server). Ours uses password/token auth (and AK/SK when the connection's
``extra.auth_type="aksk"`` works); the SDK signs every call with AK/SK, the only auth it speaks.
Each run starts cold: a new hook (new session, empty token cache) and a new SDK client. Runs
alternate between the clients; times are medians, and the ratio is the median of each round's own
ours/SDK ratio (so load that drifts during the run hits both sides alike). The client's CPU time is
reported too: on a busy machine it moves less than the wall time.

    python benchmarks/bench_listing.py [--quick] [--runs N] [--backups N] [--page-size N]
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EmulatorProcess, Row, emit, isolate_airflow, median

isolate_airflow()

Lister = Callable[[], int]  # lists every backup once; returns how many it got


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
        TOKEN_CACHE.clear()  # cold, as a new task process: the run pays for its token ...
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 9")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--backups", type=int, default=10_000)
    parser.add_argument("--page-size", type=int, default=100)
    args = parser.parse_args()
    runs = args.runs or (3 if args.quick else 9)
    n, size = args.backups, args.page_size
    with EmulatorProcess("--graphs", "5", "--backups", str(n)) as emu:
        os.environ.update(emu.conn_env("password", "ges_bench_token"))
        os.environ.update(emu.conn_env("aksk", "ges_bench_aksk"))
        try:
            clients: dict[str, Lister] = {
                "ours (token)": ours("ges_bench_token", size),
                "ours (AK/SK)": ours("ges_bench_aksk", size),
                "SDK (AK/SK)": sdk(emu.info["connections"]["aksk"], size),
            }
        except ImportError as err:  # the SDK is a benchmark-only dependency (the [dev] extra)
            emit([Row("1 listing", f"cannot run: {err}", "-", ok=False)])
            return
        times: dict[str, list[float]] = {name: [] for name in clients}
        cpus: dict[str, list[float]] = {name: [] for name in clients}
        counters: dict[str, dict[str, int]] = {}
        errors: dict[str, str] = {}
        for run in range(runs + 1):  # run 0 warms up (imports, pydantic schemas, first connections)
            for name, lister in clients.items():
                if name in errors:
                    continue
                try:
                    elapsed, cpu, counters[name] = measure(emu, lister, n)
                except Exception as err:  # e.g. AK/SK not supported by the hook yet: report, go on
                    errors[name] = f"{type(err).__name__}: {str(err)[:150]}"
                    continue
                if run:
                    times[name].append(elapsed)
                    cpus[name].append(cpu)
    notes = [f"{name} failed: {why}" for name, why in errors.items()]
    if "SDK (AK/SK)" in errors:
        emit([Row("1 listing", "the SDK's listing failed", "-", ok=False)], notes)
        return
    pages = math.ceil(n / size)
    sdk_ms = median(times["SDK (AK/SK)"]) / n * 1000 * 1000
    notes.append(f"SDK runs: {', '.join(f'{t:.2f}' for t in times['SDK (AK/SK)'])} s for {n:,} backups")
    rows: list[Row] = []
    for name in ("ours (token)", "ours (AK/SK)"):
        if name in errors:
            rows.append(Row("1 listing", f"{name}: ms per 1,000 backups", "failed", ok=False))
            continue
        ours_ms = median(times[name]) / n * 1000 * 1000
        # the median of each round's own ratio: load that drifts during the run hits both sides alike
        ratio = median([a / b for a, b in zip(times[name], times["SDK (AK/SK)"], strict=False)])
        spread = ", ".join(f"{t:.2f}" for t in times[name])
        rows.append(
            Row(
                "1 listing",
                f"{name} vs SDK: ms per 1,000 backups (medians of {runs} rounds; ours {spread} s)",
                f"{ours_ms:.1f}",
                f"{sdk_ms:.1f}",
                f"{ratio:.2f}",
                "<= 0.5",
                ratio <= 0.5,
            )
        )
        cpu_ours, cpu_sdk = (median(cpus[who]) / n * 1000 * 1000 for who in (name, "SDK (AK/SK)"))
        cpu_ratio = median([a / b for a, b in zip(cpus[name], cpus["SDK (AK/SK)"], strict=False)])
        rows.append(
            Row(
                "1 listing",
                f"{name} vs SDK: client CPU ms per 1,000 backups (steadier on a busy machine)",
                f"{cpu_ours:.1f}",
                f"{cpu_sdk:.1f}",
                f"{cpu_ratio:.2f}",
            )
        )
        c = counters[name]
        tokens, lists = c["create_token"], c["list_backups"]
        want_tokens = 1 if "token" in name else 0
        rows.append(
            Row(
                "1 listing",
                f"{name}: requests (list + token) for {n:,} backups, page {size}",
                f"{lists} + {tokens}",
                f"{counters['SDK (AK/SK)']['list_backups']} + {counters['SDK (AK/SK)']['create_token']}",
                "",
                f"{pages} + {want_tokens}",
                (lists, tokens) == (pages, want_tokens),
            )
        )
    emit(rows, notes)


if __name__ == "__main__":
    main()
