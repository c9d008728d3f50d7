"""Faults over real HTTP against the emulator: nothing lost, retries bounded and logged.

A listing of 2,500 backups (page size 100) while the emulator injects 429 with ``Retry-After``,
500, 502, 503, GES.7006, dropped connections, 2-second stalls and HTML pages with status 200;
tokens that expire mid-listing; an IAM endpoint that fails for a while; a wrong password.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import threading
import time
from typing import Any

import pytest

from airflow_provider_ges.emulator import GesEmulator
from airflow_provider_ges.exceptions import GesAuthError, GesTransientError
from airflow_provider_ges.hooks.ges import GesAsyncHook, GesHook

N, PAGE = 2_500, 100
#: every kind of fault, each rule counting the GES calls on its own: about one call in two fails,
#: at most four in a row; the 2 s stalls outlast the connection's 1 s timeout (read timeouts)
FAULTS = (
    "429:every=16:retry_after=0.05,500:every=23,502:every=13,503:every=8,ges7006:every=17,"
    "drop:every=19,stall:every=12:s=2,html:every=5"
)
KINDS = ("429", "500", "502", "503", "ges7006", "drop", "stall", "html")
RETRY_LINE = re.compile(r"GES call failed, retrying in \d+\.\d+s: (.*)")


def use(emu: GesEmulator, monkeypatch: pytest.MonkeyPatch, **extra: Any) -> None:
    """Point ``ges_default`` at the emulator with these connection extras."""
    conn = emu.connection()
    conn["extra"].update(extra)
    monkeypatch.setenv("AIRFLOW_CONN_GES_DEFAULT", json.dumps(conn))


def retries_logged(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> list[str]:
    """The hook's retry warnings (Airflow's structlog writes them to stdout)."""
    out = capsys.readouterr().out
    lines = RETRY_LINE.findall(out) or RETRY_LINE.findall(caplog.text)
    return lines


def pages_for(n: int, page: int) -> range:
    """List requests of a static listing: ceil(n / page) when the hook sends the pager's limit
    (page + 1 after the first page), one more per page - 1 when it sends page_size as the limit."""
    return range(max(1, math.ceil(n / page)), max(1, math.ceil((n - 1) / (page - 1))) + 1)


def report(name: str, emu: GesEmulator, retries: int, seconds: float) -> None:
    c = emu.counters
    faults = {k: c[f"fault_{k}"] for k in KINDS if c[f"fault_{k}"]}
    print(
        f"\n[reliability] {name}: {N} backups in {seconds:.2f}s; list requests {c['list_backups']}"
        f" (pages {math.ceil(N / PAGE)}); faults {c['faults_injected']} {faults}; retries {retries};"
        f" tokens {c['tokens_issued']}"
    )


def check_listing(emu: GesEmulator, ids: list[str], retries: list[str]) -> None:
    expected = [b["id"] for b in emu.backups()]
    assert len(ids) == len(set(ids)) == N  # no duplicates
    assert set(ids) == set(expected)  # exactly the 2,500
    c = emu.counters
    for kind in KINDS:
        assert c[f"fault_{kind}"] >= 1, f"no {kind} fault was injected"
    # every fault was retried exactly once (a 2 s stall outlasts the 1 s timeout: a read timeout)
    assert len(retries) == c["faults_injected"]
    # pages plus one request per retry: bounded, nothing else
    assert c["list_backups"] - len(retries) in pages_for(N, PAGE)
    assert c["tokens_issued"] == 1
    kinds_seen = " ".join(retries)
    for evidence in ("HTTP 429", "HTTP 500", "HTTP 502", "HTTP 503", "GES.7006", "HTTP 200 unexpected reply"):
        assert evidence in kinds_seen
    assert "ConnectionError" in kinds_seen or "RemoteProtocolError" in kinds_seen
    assert "ReadTimeout" in kinds_seen


@pytest.mark.ges_emulator(graphs=5, backups=N, seed=11, faults=FAULTS)
def test_listing_2500_backups_through_every_fault(
    ges_emulator: GesEmulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    use(ges_emulator, monkeypatch, timeout=1, max_retries=6)
    started = time.monotonic()
    ids = [b.id for b in GesHook(retry_base_delay=0.01).list_backups(page_size=PAGE)]
    elapsed = time.monotonic() - started
    retries = retries_logged(capsys, caplog)
    check_listing(ges_emulator, ids, retries)
    report("sync GesHook", ges_emulator, len(retries), elapsed)  # shown with -s


@pytest.mark.ges_emulator(graphs=5, backups=N, seed=11, faults=FAULTS)
def test_async_listing_2500_backups_through_every_fault(
    ges_emulator: GesEmulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    use(ges_emulator, monkeypatch, timeout=1, max_retries=6)

    async def listing() -> list[str]:
        async with GesAsyncHook(retry_base_delay=0.01) as hook:
            return [b.id for b in await hook.list_backups(page_size=PAGE)]

    started = time.monotonic()
    ids = asyncio.run(asyncio.wait_for(listing(), 60))
    elapsed = time.monotonic() - started
    retries = retries_logged(capsys, caplog)
    check_listing(ges_emulator, ids, retries)
    report("async GesAsyncHook", ges_emulator, len(retries), elapsed)  # shown with -s


@pytest.mark.ges_emulator(graphs=2, backups=300, seed=3, faults="503:every=1")
def test_retries_are_bounded_then_a_transient_error(
    ges_emulator: GesEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(ges_emulator, monkeypatch, max_retries=3)
    with pytest.raises(GesTransientError) as err:
        GesHook(retry_base_delay=0.0).list_backups()
    assert ges_emulator.counters["list_backups"] == 1 + 3
    assert err.value.status_code == 503 and "backups" in str(err.value)


# --- tokens ---------------------------------------------------------------------------------------


def expire_tokens_mid_listing(emu: GesEmulator, after_lists: int = 3) -> threading.Thread:
    """Expire every token once the emulator has served ``after_lists`` list calls (pages are slowed
    to 30 ms, so this lands between two pages)."""

    def watch() -> None:
        deadline = time.monotonic() + 30
        while emu.counters["list_backups"] < after_lists and time.monotonic() < deadline:
            time.sleep(0.001)
        emu.expire_tokens()

    emu.set_faults("latency:ms=30:scope=list")
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.mark.ges_emulator(graphs=2, backups=N, seed=4)
def test_token_expiring_mid_listing_is_refreshed_once(ges_connection: GesEmulator) -> None:
    emu = ges_connection
    expire_tokens_mid_listing(emu)
    got = [b.id for b in GesHook(retry_base_delay=0.0).iter_backups(page_size=PAGE)]
    assert sorted(got) == sorted(b["id"] for b in emu.backups())
    c = emu.counters
    assert c["tokens_issued"] == 2 and c["create_token"] == 2  # one refresh
    assert c["auth_failures"] == 1  # the one call with the expired token
    assert c["list_backups"] - 1 in pages_for(N, PAGE)  # the one refused call, retried


@pytest.mark.ges_emulator(graphs=2, backups=N, seed=4)
def test_async_token_expiring_mid_listing_is_refreshed_once(ges_connection: GesEmulator) -> None:
    emu = ges_connection

    async def listing() -> list[str]:
        async with GesAsyncHook(retry_base_delay=0.0) as hook:
            return [b.id for b in await hook.list_backups(page_size=PAGE)]

    expire_tokens_mid_listing(emu)
    got = asyncio.run(asyncio.wait_for(listing(), 60))
    assert sorted(got) == sorted(b["id"] for b in emu.backups())
    assert emu.counters["tokens_issued"] == 2 and emu.counters["auth_failures"] == 1


@pytest.mark.ges_emulator(graphs=2, backups=600, seed=4, token_ttl=0.6, faults="latency:ms=40:scope=list")
def test_short_lived_tokens_are_renewed_before_they_expire(ges_connection: GesEmulator) -> None:
    """Tokens living 0.6 s over a 1 s+ listing: renewed ahead of expiry (or once on a 401)."""
    emu = ges_connection
    started = time.monotonic()
    ids = [b.id for b in GesHook(retry_base_delay=0.0).iter_backups(page_size=25)]
    assert time.monotonic() - started > 0.6  # the first token did run out
    assert len(ids) == len(set(ids)) == 600
    c = emu.counters
    assert 2 <= c["tokens_issued"] <= 12
    assert c["auth_failures"] <= c["tokens_issued"] - 1  # never two 401s for one token


@pytest.mark.ges_emulator(graphs=2, backups=250, seed=4, faults="503:scope=iam:count=2")
def test_token_endpoint_briefly_failing_is_retried(ges_connection: GesEmulator) -> None:
    ids = [b.id for b in GesHook(retry_base_delay=0.0).list_backups()]
    assert len(ids) == 250
    c = ges_connection.counters
    assert c["create_token"] == 3 and c["tokens_issued"] == 1 and c["fault_503"] == 2


@pytest.mark.ges_emulator(graphs=2, backups=250, seed=4, faults="502:scope=iam:count=1,429:scope=iam:count=1")
def test_async_token_endpoint_briefly_failing_is_retried(ges_connection: GesEmulator) -> None:
    async def listing() -> int:
        async with GesAsyncHook(retry_base_delay=0.0) as hook:
            return len(await hook.list_backups())

    ges_connection.set_faults("502:scope=iam:count=1,429:scope=iam:count=1:retry_after=0.05")
    assert asyncio.run(listing()) == 250
    assert ges_connection.counters["create_token"] == 3


@pytest.mark.ges_emulator(graphs=1, backups=20)
@pytest.mark.parametrize("transport", ["sync", "async"])
def test_wrong_password_is_one_iam_call_and_a_clear_error(
    ges_emulator: GesEmulator, monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    conn = ges_emulator.connection()
    conn["password"] = "Wrong-Passw0rd-xyz"
    monkeypatch.setenv("AIRFLOW_CONN_GES_DEFAULT", json.dumps(conn))

    async def alist() -> None:
        async with GesAsyncHook(retry_base_delay=0.0) as hook:
            await hook.list_backups()

    with pytest.raises(GesAuthError) as err:
        if transport == "sync":
            GesHook(retry_base_delay=0.0).list_backups()
        else:
            asyncio.run(alist())
    c = ges_emulator.counters
    assert c["create_token"] == 1  # never retried: IAM locks accounts
    assert c["list_backups"] == 0
    message = str(err.value)
    assert "HTTP 401" in message and "username or password is wrong" in message
    assert "POST /v3/auth/tokens" in message
    assert "Wrong-Passw0rd-xyz" not in message


class CannedServer:
    """A loopback server giving every request the same raw HTTP reply, then hanging up."""

    def __init__(self, reply: bytes) -> None:
        import socket

        self.reply = reply
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self.requests.append(conn.recv(65536))
                conn.sendall(self.reply)

    def __enter__(self) -> CannedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def list_through(transport: str) -> list[Any]:
    if transport == "sync":
        return GesHook(retry_base_delay=0.01).list_backups()
    return asyncio.run(GesAsyncHook(retry_base_delay=0.01).list_backups())


AKSK = {"login": "AK", "password": "SK" * 10}


@pytest.mark.parametrize("transport", ["sync", "async"])
def test_a_body_cut_short_is_a_transient_error_retried_then_raised(transport: str, set_conn: Any) -> None:
    # the reply promises 10,000 bytes of body, sends 20 and hangs up
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n"
    with CannedServer(head + b'{"backupCount": 5, "') as server:
        set_conn(host=server.url, extra={"auth_type": "aksk", "max_retries": 2}, **AKSK)
        with pytest.raises(GesTransientError, match=r"no reply from http://127\.0\.0\.1:\d+ \(\w+\)") as err:
            list_through(transport)
        assert err.value.method == "GET" and err.value.path.endswith("/graphs/backups")
        assert len(server.requests) == 3  # the first try and its 2 retries, each cut short


@pytest.mark.parametrize("transport", ["sync", "async"])
def test_a_gzipped_page_is_decoded(transport: str, set_conn: Any) -> None:
    import gzip

    page = {"backupCount": 1, "backupList": [{"id": "b1", "status": "success", "graphId": "g1"}]}
    body = gzip.compress(json.dumps(page).encode())
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    with CannedServer(head + body) as server:
        set_conn(host=server.url, extra={"auth_type": "aksk"}, **AKSK)
        backups = list_through(transport)
        assert [(b.id, b.status, b.graph_id) for b in backups] == [("b1", "success", "g1")]
        assert b"gzip" in server.requests[0].lower()  # the client asked for it
