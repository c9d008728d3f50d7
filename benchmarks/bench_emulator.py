"""How many list-backups requests (100 backups each) per second the emulator serves over keep-alive.

Runs the emulator as its own process (``python -m airflow_provider_ges.emulator --port 0``) so client and
server each get a core, then loops on one keep-alive connection (``http.client`` by default, or a
``requests.Session``), bounded by ``--requests`` and ``--seconds``. Loopback only.

    python benchmarks/bench_emulator.py [--requests 20000] [--seconds 10] [--client http.client|requests]
        [--auth token|aksk] [--in-process]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from airflow_provider_ges.emulator import DEFAULT_PROJECT_ID, GesEmulator
from airflow_provider_ges.emulator.defaults import (
    DEFAULT_AK,
    DEFAULT_DOMAIN,
    DEFAULT_PASSWORD,
    DEFAULT_SK,
    DEFAULT_USER,
)
from airflow_provider_ges.endpoints import password_auth_body
from airflow_provider_ges.signer import sign_request

BACKUPS = 100
PATH = f"/v1.0/{DEFAULT_PROJECT_ID}/graphs/backups?offset=0&limit={BACKUPS}"


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux ``/proc``; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def emulator_url(in_process: bool) -> Iterator[tuple[str, int | None]]:
    """Start the emulator (own process unless ``in_process``); yield its URL and process id."""
    if in_process:
        with GesEmulator(graphs=3, backups=BACKUPS, seed=1) as emu:
            yield emu.url, None
        return
    cmd = [sys.executable, "-m", "airflow_provider_ges.emulator", "--port", "0", "--backups", str(BACKUPS)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        yield banner.split(" on ", 1)[1].split(" ", 1)[0], proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def token_for(url: str) -> str:
    body = password_auth_body(DEFAULT_USER, DEFAULT_PASSWORD, DEFAULT_DOMAIN, DEFAULT_PROJECT_ID)
    conn = http.client.HTTPConnection(urlsplit(url).netloc, timeout=10)
    conn.request("POST", "/v3/auth/tokens", json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    conn.close()
    return str(response.getheader("X-Subject-Token"))


def header_maker(url: str, auth: str) -> Callable[[], dict[str, str]]:
    if auth == "aksk":
        return lambda: sign_request(
            "GET", url + PATH, ak=DEFAULT_AK, sk=DEFAULT_SK, project_id=DEFAULT_PROJECT_ID
        )
    token = token_for(url)
    return lambda: {"X-Auth-Token": token}


def run(
    url: str, client: str, headers: Callable[[], dict[str, str]], count: int, seconds: float
) -> tuple[int, float]:
    """Send up to ``count`` list calls for at most ``seconds``; return (done, elapsed)."""
    if client == "requests":
        import requests

        session = requests.Session()

        def call() -> None:
            response = session.get(url + PATH, headers=headers(), timeout=10)
            assert len(response.json()["backupList"]) == BACKUPS, response.text[:200]

    else:
        conn = http.client.HTTPConnection(urlsplit(url).netloc, timeout=10)

        def call() -> None:
            conn.request("GET", PATH, headers=headers())
            response = conn.getresponse()
            payload = response.read()
            assert response.status == 200 and payload.count(b'"graph_name"') == BACKUPS, payload[:200]

    for _ in range(50):  # warm up
        call()
    done, start = 0, time.perf_counter()
    deadline = start + seconds
    while done < count and time.perf_counter() < deadline:
        call()
        done += 1
    return done, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--client", choices=("http.client", "requests"), default="http.client")
    parser.add_argument("--auth", choices=("token", "aksk"), default="token")
    parser.add_argument("--in-process", action="store_true", help="server in this process (shares the GIL)")
    args = parser.parse_args()
    with emulator_url(args.in_process) as (url, pid):
        headers = header_maker(url, args.auth)
        before = cpu_seconds(pid) if pid else None
        done, elapsed = run(url, args.client, headers, args.requests, args.seconds)
        after = cpu_seconds(pid) if pid else None
    where = "in-process" if args.in_process else "separate process"
    print(
        f"{done} list calls x {BACKUPS} backups in {elapsed:.2f} s = {done / elapsed:,.0f} req/s "
        f"({args.client}, {args.auth} auth, server in {where})"
    )
    if before is not None and after is not None:
        print(
            f"server CPU per request: {(after - before) / done * 1e6:,.0f} us (the client's loop is the rest)"
        )


if __name__ == "__main__":
    main()
