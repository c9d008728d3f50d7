"""GesHook against requests-mock: token, cache, paging, retries and every error body shape."""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests

from airflow_provider_ges._compat import secrets_masker
from airflow_provider_ges.exceptions import GesApiError, GesAuthError, GesNotFoundError, GesTransientError
from airflow_provider_ges.hooks.ges import GesHook
from tests.conftest import PASSWORD, PROJECT, TOKEN
from tests.helpers import BACKUPS_URL, TOKEN_URL, backup, paged, token_reply


def fast_hook(conn_id: str = "ges_default") -> GesHook:
    return GesHook(conn_id, retry_base_delay=0.0)


# --- token ----------------------------------------------------------------------------------


def test_token_request_is_password_auth_scoped_to_the_project(ges_conn: Any, requests_mock: Any) -> None:
    requests_mock.post(TOKEN_URL, **token_reply())
    assert fast_hook().get_token() == TOKEN
    sent = requests_mock.request_history[0]
    assert sent.qs == {"nocatalog": ["true"]}
    assert sent.json() == {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": "etl-user", "password": PASSWORD, "domain": {"name": "acme"}}},
            },
            "scope": {"project": {"id": PROJECT}},
        }
    }


def test_token_is_cached_and_shared_between_hooks(ges_conn: Any, requests_mock: Any) -> None:
    requests_mock.post(TOKEN_URL, **token_reply())
    requests_mock.get(BACKUPS_URL, json={"backupCount": 0, "backupList": []})
    for _ in range(3):
        fast_hook().list_backups()
    assert requests_mock.call_count == 1 + 3
    assert [r.headers["X-Auth-Token"] for r in requests_mock.request_history[1:]] == [TOKEN] * 3


def test_token_fetched_once_under_threads(ges_conn: Any, requests_mock: Any) -> None:
    gate = threading.Event()

    def slow_token(request: Any, context: Any) -> dict[str, Any]:
        gate.wait(1)
        reply = token_reply()
        context.status_code, context.headers = 201, reply["headers"]
        return reply["json"]

    requests_mock.post(TOKEN_URL, json=slow_token)
    tokens: list[str] = []
    threads = [threading.Thread(target=lambda: tokens.append(fast_hook().get_token())) for _ in range(8)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join()
    assert tokens == [TOKEN] * 8
    assert requests_mock.call_count == 1


def test_token_refreshed_shortly_before_expiry(ges_conn: Any, requests_mock: Any) -> None:
    requests_mock.post(
        TOKEN_URL, [token_reply("old-token-xyz", ttl=timedelta(seconds=2)), token_reply("new-token-xyz")]
    )
    hook = fast_hook()
    assert hook.get_token() == "old-token-xyz"
    # 2 s of life: the refresh point is a tenth of the lifetime before expiry, not yet reached.
    assert hook.get_token() == "old-token-xyz"
    requests_mock.post(TOKEN_URL, **token_reply("new-token-xyz"))
    from airflow_provider_ges.auth import TOKEN_CACHE, TokenKey

    entry = TOKEN_CACHE._entries[TokenKey.of(hook.config)]
    TOKEN_CACHE._entries[TokenKey.of(hook.config)] = type(entry)(entry.token, datetime.now(timezone.utc))
    assert hook.get_token() == "new-token-xyz"


def test_token_cache_keys_by_user_and_project(set_conn: Any, requests_mock: Any) -> None:
    set_conn("ges_a")
    set_conn("ges_b", extra={"project_id": "another0project"})
    requests_mock.post(TOKEN_URL, [token_reply("token-a-xyz"), token_reply("token-b-xyz")])
    assert fast_hook("ges_a").get_token() == "token-a-xyz"
    assert fast_hook("ges_b").get_token() == "token-b-xyz"
    assert fast_hook("ges_a").get_token() == "token-a-xyz"
    assert requests_mock.call_count == 2


def test_iam_401_raised_at_once_never_retried(ges_conn: Any, requests_mock: Any) -> None:
    body = {"error": {"code": 401, "message": "The username or password is wrong.", "title": "Unauthorized"}}
    requests_mock.post(TOKEN_URL, status_code=401, json=body)
    with pytest.raises(GesAuthError) as err:
        fast_hook().get_token()
    assert requests_mock.call_count == 1
    assert err.value.status_code == 401
    assert err.value.error_code == "401"
    assert err.value.error_message == "The username or password is wrong."
    assert err.value.method == "POST" and err.value.path == "/v3/auth/tokens"
    assert PASSWORD not in str(err.value)


def test_iam_5xx_is_retried(ges_conn: Any, requests_mock: Any) -> None:
    requests_mock.post(TOKEN_URL, [{"status_code": 503, "text": "busy"}, token_reply()])
    assert fast_hook().get_token() == TOKEN
    assert requests_mock.call_count == 2


def test_token_reply_without_header_is_a_clear_error(ges_conn: Any, requests_mock: Any) -> None:
    requests_mock.post(TOKEN_URL, status_code=201, json={"token": {"expires_at": "2030-01-01T00:00:00Z"}})
    with pytest.raises(GesTransientError, match="X-Subject-Token"):
        fast_hook().get_token()
    assert requests_mock.call_count == 1 + 3  # garbled replies are retried, then reported


def test_401_on_ges_call_refreshes_token_once(ges_conn: Any, requests_mock: Any) -> None:
    requests_mock.post(TOKEN_URL, [token_reply("stale-token-xyz"), token_reply("fresh-token-xyz")])
    apigw = {
        "error_code": "APIGW.0301",
        "error_msg": "Incorrect IAM authentication information",
        "request_id": "r",
    }
    requests_mock.get(
        BACKUPS_URL,
        [{"status_code": 401, "json": apigw}, {"json": {"backupCount": 1, "backupList": [backup(1)]}}],
    )
    assert [b.id for b in fast_hook().list_backups()] == ["b-00001"]
    ges_calls = [r for r in requests_mock.request_history if r.method == "GET"]
    assert [r.headers["X-Auth-Token"] for r in ges_calls] == ["stale-token-xyz", "fresh-token-xyz"]


def test_second_401_is_raised(ges_conn: Any, requests_mock: Any) -> None:
    requests_mock.post(TOKEN_URL, **token_reply())
    apigw = {
        "error_code": "APIGW.0301",
        "error_msg": "Incorrect IAM authentication information",
        "request_id": "r",
    }
    requests_mock.get(BACKUPS_URL, status_code=401, json=apigw)
    with pytest.raises(GesAuthError) as err:
        fast_hook().list_backups()
    assert err.value.error_code == "APIGW.0301"
    assert requests_mock.call_count == 4  # token, call, token again, call
    assert TOKEN not in str(err.value)


# --- paging -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "page_size", "requests_expected"),
    [(0, 10, 1), (30, 10, 4), (31, 10, 4), (5, 100, 1), (100, 100, 1), (10_000, 100, 101)],
)
def test_pages_until_backup_count(
    ges_conn: Any, requests_mock: Any, total: int, page_size: int, requests_expected: int
) -> None:
    requests_mock.post(TOKEN_URL, **token_reply())
    items = [backup(n) for n in range(total)]
    requests_mock.get(BACKUPS_URL, json=paged(items))
    got = list(fast_hook().iter_backups(page_size=page_size))
    assert [b.id for b in got] == [i["id"] for i in items]
    lists = [r for r in requests_mock.request_history if r.method == "GET"]
    assert len(lists) == requests_expected
    # Each page starts at the last item of the page before (the anchor that proves nothing shifted),
    # and never asks more than page_size: 1 + ceil((N - page_size) / (page_size - 1)) requests.
    assert [int(r.qs["offset"][0]) for r in lists] == [(page_size - 1) * n for n in range(requests_expected)]
    assert {int(r.qs["limit"][0]) for r in lists} == {page_size}


def test_server_capping_page_size_is_followed_by_offset(ges_conn: Any, requests_mock: Any) -> None:
    requests_mock.post(TOKEN_URL, **token_reply())
    items = [backup(n) for n in range(25)]

    def capped(request: Any, context: Any) -> dict[str, Any]:
        offset = int(request.qs["offset"][0])
        return {"backupCount": 25, "backupList": items[offset : offset + 10]}  # ignores limit=100

    requests_mock.get(BACKUPS_URL, json=capped)
    assert [b.id for b in fast_hook().iter_backups()] == [i["id"] for i in items]


def test_short_page_without_count_ends(ges_conn: Any, requests_mock: Any) -> None:
    requests_mock.post(TOKEN_URL, **token_reply())
    items = [backup(n) for n in range(15)]

    def no_count(request: Any, context: Any) -> dict[str, Any]:
        offset = int(request.qs["offset"][0])
        return {"backupList": items[offset : offset + 10]}

    requests_mock.get(BACKUPS_URL, json=no_count)
    assert len(list(fast_hook().iter_backups(page_size=10))) == 15
    assert requests_mock.call_count == 1 + 2


def test_backup_count_that_lies_high_ends_on_empty_page(ges_conn: Any, requests_mock: Any) -> None:
    requests_mock.post(TOKEN_URL, **token_reply())
    requests_mock.get(BACKUPS_URL, json=paged([backup(n) for n in range(12)], count=500))
    assert len(list(fast_hook().iter_backups(page_size=5))) == 12
    assert requests_mock.call_count == 1 + 4  # 5, 5, 2, then an empty page


def test_backup_count_that_lies_low_still_returns_the_page(ges_conn: Any, requests_mock: Any) -> None:
    requests_mock.post(TOKEN_URL, **token_reply())
    requests_mock.get(BACKUPS_URL, json=paged([backup(n) for n in range(7)], count=3))
    assert len(list(fast_hook().iter_backups(page_size=10))) == 7


def test_server_ignoring_offset_is_an_error_not_a_loop(ges_conn: Any, requests_mock: Any) -> None:
    requests_mock.post(TOKEN_URL, **token_reply())
    requests_mock.get(BACKUPS_URL, json=paged([backup(n) for n in range(30)], ignore_offset=True))
    with pytest.raises(GesApiError, match="ignores 'offset'"):
        list(fast_hook().iter_backups(page_size=10))
    assert requests_mock.call_count == 1 + 3  # the first page, then twice again: not a burst of new backups


def test_count_growing_forever_is_bounded(ges_conn: Any, requests_mock: Any) -> None:
    requests_mock.post(TOKEN_URL, **token_reply())

    def endless(request: Any, context: Any) -> dict[str, Any]:
        offset = int(request.qs["offset"][0])
        return {"backupCount": offset + 20, "backupList": [backup(offset + n) for n in range(10)]}

    requests_mock.get(BACKUPS_URL, json=endless)
    with pytest.raises(GesApiError, match="did not end"):
        list(fast_hook().iter_backups(page_size=10))
    assert requests_mock.call_count < 20


def test_insertions_while_paging_yield_each_id_once(ges_conn: Any, requests_mock: Any) -> None:
    requests_mock.post(TOKEN_URL, **token_reply())
    items = [backup(n) for n in range(20)]
    original = {i["id"] for i in items}

    def inserting(request: Any, context: Any) -> dict[str, Any]:
        offset = int(request.qs["offset"][0])
        page = {"backupCount": len(items), "backupList": items[offset : offset + 5]}
        items.insert(0, backup(1000 + len(items)))  # a new backup at the head after each page
        return page

    requests_mock.get(BACKUPS_URL, json=inserting)
    ids = [b.id for b in fast_hook().iter_backups(page_size=5)]
    assert len(ids) == len(set(ids))
    assert original <= set(ids)


def test_per_graph_listing_uses_graph_path(ges_conn: Any, requests_mock: Any) -> None:
    requests_mock.post(TOKEN_URL, **token_reply())
    url = BACKUPS_URL.replace("/graphs/backups", "/graphs/graph-123/backups")
    requests_mock.get(url, json={"backupCount": 1, "backupList": [backup(1)]})
    assert [b.id for b in fast_hook().iter_backups("graph-123")] == ["b-00001"]


@pytest.mark.parametrize("bad", ["../x", "a/b", "a?b", "a#b", "a%2fb", " a", "a\nb", ""])
def test_unsafe_graph_id_refused_before_any_request(ges_conn: Any, requests_mock: Any, bad: str) -> None:
    with pytest.raises(ValueError, match="graph_id"):
        list(fast_hook().iter_backups(bad))
    assert requests_mock.call_count == 0


# --- filtering ----------------------------------------------------------------------------------


def test_list_backups_filters_and_sorts_newest_first(ges_conn: Any, requests_mock: Any) -> None:
    requests_mock.post(TOKEN_URL, **token_reply())
    items = [
        backup(1, graph="g1", status="success", method="auto"),
        backup(5, graph="g1", status="failed", method="manual"),
        backup(3, graph="g1", status="success", method="manual"),
        backup(4, graph="g2", status="success", method="manual"),
        backup(2, graph="g1", status="backing_up", method="manual"),
    ]
    requests_mock.get(BACKUPS_URL, json=paged(items))
    hook = fast_hook()
    assert [b.id for b in hook.list_backups()] == ["b-00005", "b-00004", "b-00003", "b-00002", "b-00001"]
    assert [b.id for b in hook.list_backups(graph_name="g1", status="success")] == ["b-00003", "b-00001"]
    assert [b.id for b in hook.list_backups(backup_method="manual", graph_name="g2")] == ["b-00004"]
    cutoff = datetime.fromtimestamp(1_700_000_000 + 3 * 60, tz=timezone.utc)
    assert [b.id for b in hook.list_backups(newer_than=cutoff)] == ["b-00005", "b-00004", "b-00003"]
    assert [b.id for b in hook.list_backups(newer_than=cutoff.isoformat(), status="failed")] == ["b-00005"]


# --- retries and errors -------------------------------------------------------------------------


def test_transient_errors_of_every_kind_are_retried(set_conn: Any, requests_mock: Any) -> None:
    set_conn(extra={"max_retries": 5})
    requests_mock.post(TOKEN_URL, **token_reply())
    ok = {"json": {"backupCount": 1, "backupList": [backup(1)]}}
    requests_mock.get(
        BACKUPS_URL,
        [
            {"status_code": 429, "headers": {"Retry-After": "0"}, "json": {"error_code": "APIGW.0308"}},
            {"status_code": 502, "text": "<html>bad gateway</html>"},
            {"status_code": 400, "json": {"errorCode": "GES.7006", "errorMessage": "engine internal error"}},
            {"status_code": 200, "text": "<html>not json</html>"},
            {"exc": requests.exceptions.ConnectionError("reset")},
            ok,
        ],
    )
    assert [b.id for b in fast_hook().list_backups()] == ["b-00001"]
    assert requests_mock.call_count == 1 + 6


def test_retry_after_is_honoured(ges_conn: Any, requests_mock: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr("airflow_provider_ges.hooks.ges.time.sleep", slept.append)
    requests_mock.post(TOKEN_URL, **token_reply())
    requests_mock.get(
        BACKUPS_URL,
        [
            {"status_code": 429, "headers": {"Retry-After": "7"}},
            {"json": {"backupCount": 0, "backupList": []}},
        ],
    )
    GesHook().list_backups()
    assert slept == [7.0]


def test_backoff_grows_and_gives_up_after_max_retries(
    ges_conn: Any, requests_mock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    monkeypatch.setattr("airflow_provider_ges.hooks.ges.time.sleep", slept.append)
    monkeypatch.setattr("airflow_provider_ges.plans.random.uniform", lambda low, high: high)
    requests_mock.post(TOKEN_URL, **token_reply())
    requests_mock.get(BACKUPS_URL, status_code=503, json={"error_code": "APIGW.0101", "error_msg": "busy"})
    with pytest.raises(GesTransientError) as err:
        GesHook().list_backups()
    assert slept == [0.5, 1.0, 2.0]  # max_retries=3 in the ges_conn fixture
    assert err.value.status_code == 503 and err.value.error_code == "APIGW.0101"


@pytest.mark.parametrize(
    ("status", "body", "kind", "code", "message"),
    [
        (
            400,
            {"errorCode": "GES.7019", "errorMessage": "backup quota reached"},
            GesApiError,
            "GES.7019",
            "backup quota reached",
        ),
        (
            400,
            {"errorCode": "GES.7000", "errorMessage": "graph gone"},
            GesNotFoundError,
            "GES.7000",
            "graph gone",
        ),
        (
            404,
            {"error_code": "GES.0016", "error_msg": "not found"},
            GesNotFoundError,
            "GES.0016",
            "not found",
        ),
        (
            403,
            {"errorCode": "GES.7041", "errorMessage": "no permission"},
            GesAuthError,
            "GES.7041",
            "no permission",
        ),
        (403, {"error": {"code": "IAM.0002", "message": "forbidden"}}, GesAuthError, "IAM.0002", "forbidden"),
        (200, {"errorCode": "GES.0001", "errorMessage": "odd 200"}, GesApiError, "GES.0001", "odd 200"),
    ],
)
def test_error_bodies_are_surfaced(
    ges_conn: Any, requests_mock: Any, status: int, body: dict[str, Any], kind: type, code: str, message: str
) -> None:
    requests_mock.post(TOKEN_URL, **token_reply())
    requests_mock.get(BACKUPS_URL, status_code=status, json=body)
    with pytest.raises(kind) as err:
        fast_hook().list_backups()
    assert type(err.value) is kind
    assert (err.value.status_code, err.value.error_code, err.value.error_message) == (status, code, message)
    assert err.value.method == "GET" and err.value.path == f"/v1.0/{PROJECT}/graphs/backups"
    assert code in str(err.value) and message in str(err.value)
    assert requests_mock.call_count == 2  # not retried


def test_every_request_has_the_connection_timeout_verify_and_proxies(
    set_conn: Any, requests_mock: Any
) -> None:
    set_conn(extra={"timeout": "12.5", "proxies": {"https": "http://proxy.local:3128"}, "verify": False})
    requests_mock.post(TOKEN_URL, **token_reply())
    requests_mock.get(BACKUPS_URL, json={"backupCount": 0, "backupList": []})
    fast_hook().list_backups()
    sent = requests_mock.request_history
    assert [r.timeout for r in sent] == [12.5, 12.5]
    assert [r.verify for r in sent] == [False, False]
    assert [r.proxies for r in sent] == [{"https": "http://proxy.local:3128"}] * 2


def test_secrets_stay_out_of_logs_and_reprs(
    ges_conn: Any, requests_mock: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    requests_mock.post(TOKEN_URL, **token_reply())
    requests_mock.get(
        BACKUPS_URL,
        [{"status_code": 500, "text": "oops"}, {"json": {"backupCount": 1, "backupList": [backup(1)]}}],
    )
    hook = fast_hook()
    hook.list_backups()
    logged = caplog.text + capsys.readouterr().out  # Airflow's structlog writes to stdout
    shown = logged + repr(hook) + repr(hook.config) + json.dumps(hook.list_backups()[0].to_api())
    assert "retrying" in logged and "HTTP 500" in logged
    assert PASSWORD not in shown and TOKEN not in shown


def test_test_connection_reports_success_and_failure(ges_conn: Any, requests_mock: Any) -> None:
    requests_mock.post(TOKEN_URL, **token_reply())
    requests_mock.get(BACKUPS_URL, json={"backupCount": 42, "backupList": [backup(1)]})
    ok, message = fast_hook().test_connection()
    assert ok and "42 backups" in message
    assert requests_mock.request_history[-1].qs == {"offset": ["0"], "limit": ["1"]}

    from airflow_provider_ges.auth import TOKEN_CACHE

    TOKEN_CACHE.clear()
    requests_mock.post(TOKEN_URL, status_code=401, json={"error": {"code": 401, "message": "wrong password"}})
    ok, message = fast_hook().test_connection()
    assert not ok and "wrong password" in message and PASSWORD not in message


def test_token_and_password_registered_with_the_secrets_masker(ges_conn: Any, requests_mock: Any) -> None:
    redact = secrets_masker().redact
    requests_mock.post(TOKEN_URL, **token_reply())
    fast_hook().get_token()
    assert redact(f"token={TOKEN} password={PASSWORD}") == "token=*** password=***"


def test_a_changed_password_never_reuses_the_cached_token(set_conn: Any, requests_mock: Any) -> None:
    set_conn(extra={"max_retries": 0})
    requests_mock.post(TOKEN_URL, **token_reply())
    assert fast_hook().get_token() == TOKEN
    set_conn(password="a-wrong-password", extra={"max_retries": 0})
    requests_mock.post(TOKEN_URL, status_code=401, json={"error": {"code": 401, "message": "wrong password"}})
    with pytest.raises(GesAuthError) as err:
        fast_hook().get_token()
    assert str(err.value) == "POST /v3/auth/tokens: HTTP 401 wrong password"


# --- graphs -------------------------------------------------------------------------------------


@pytest.mark.ges_emulator(graphs=0, backups=0)
def test_graph_list_is_paged_and_names_find_their_id(ges_connection: Any) -> None:
    for n in range(250):
        ges_connection.add_graph(f"graph_{n:03d}")
    ges_connection.add_graph("old", status="400")  # deleted: GES does not list it
    twins = [ges_connection.add_graph("twin")["id"] for _ in range(2)]
    hook = GesHook()
    graphs = list(hook.iter_graphs(page_size=100))
    assert len(graphs) == len({g.id for g in graphs}) == 252
    assert ges_connection.counters["list_graphs"] == 3  # ceil(252 / 100)
    wanted = next(g for g in graphs if g.name == "graph_123")
    assert hook.find_graph_id("graph_123") == wanted.id
    assert hook.find_graph_id("old") is None and hook.find_graph_id("nope") is None
    assert hook.find_graph_id("twin") is None and set(twins) <= {g.id for g in graphs}  # ambiguous


@pytest.mark.ges_emulator(graphs=0, backups=0)
def test_async_hook_finds_the_same_graph(ges_connection: Any) -> None:
    import asyncio

    from airflow_provider_ges.hooks.ges import GesAsyncHook

    graph = ges_connection.add_graph("movies")

    async def find() -> str | None:
        async with GesAsyncHook() as hook:
            return await hook.find_graph_id("movies")

    assert asyncio.run(find()) == graph["id"] == GesHook().find_graph_id("movies")


@pytest.mark.ges_emulator(graphs=0, backups=0)
def test_async_hook_iterates_backups_and_graphs_as_the_sync_hook_does(ges_connection: Any) -> None:
    import asyncio

    from airflow_provider_ges.hooks.ges import GesAsyncHook

    emu = ges_connection
    graphs = [emu.add_graph(f"g{n:02d}")["id"] for n in range(12)]
    start = datetime.now(timezone.utc) - timedelta(days=1)
    for n in range(25):
        emu.add_backup(graphs[n % 3], start=start + timedelta(minutes=n))

    def counted() -> tuple[int, ...]:
        return tuple(emu.counters[k] for k in ("list_backups", "list_graph_backups", "list_graphs"))

    async def listed() -> tuple[list[str], list[str], list[str]]:
        async with GesAsyncHook(retry_base_delay=0.0) as hook:
            everything = hook.iter_backups(page_size=10)
            first = await anext(everything)  # an async iterator: the listing runs on the first item
            return (
                [first.id] + [b.id async for b in everything],
                [b.id async for b in hook.iter_backups(graphs[0], page_size=4)],
                [g.id async for g in hook.iter_graphs(page_size=5)],
            )

    before = counted()
    got = asyncio.run(listed())
    after_async = counted()
    hook = fast_hook()
    assert got == (
        [b.id for b in hook.iter_backups(page_size=10)],
        [b.id for b in hook.iter_backups(graphs[0], page_size=4)],
        [g.id for g in hook.iter_graphs(page_size=5)],
    )
    assert [len(ids) for ids in got] == [25, 9, 12] and set(got[2]) == set(graphs)
    # the same requests: 25 backups in pages of 10 = 3, 9 in pages of 4 = 3, 12 graphs in pages of 5 = 3
    assert [a - b for a, b in zip(after_async, before, strict=True)] == [3, 3, 3]
    assert [c - a for c, a in zip(counted(), after_async, strict=True)] == [3, 3, 3]
    assert not hasattr(GesAsyncHook, "list_graphs")  # the sync hook's names only


@pytest.mark.parametrize(
    ("err", "refused"),
    [
        (GesAuthError("no", status_code=403, method="GET", path=f"/v1.0/{PROJECT}/graphs"), True),
        (GesNotFoundError("no", status_code=404, method="GET", path=f"/v1.0/{PROJECT}/graphs"), True),
        (GesApiError("no", status_code=400, error_code="GES.7041", method="GET", path="/v1/p/graphs"), True),
        (GesAuthError("no", status_code=401, method="GET", path=f"/v1.0/{PROJECT}/graphs"), False),
        (GesTransientError("busy", status_code=503, method="GET", path=f"/v1.0/{PROJECT}/graphs"), False),
        (GesAuthError("no", status_code=401, method="POST", path="/v3/auth/tokens"), False),
        (GesAuthError("no", status_code=403, method="POST", path="/v3/auth/tokens"), False),
        (GesAuthError("no", status_code=403, method="GET", path=f"/v1.0/{PROJECT}/graphs/backups"), False),
    ],
)
def test_graph_list_refused_only_for_the_graph_list_itself(err: GesApiError, refused: bool) -> None:
    from airflow_provider_ges.gate import graph_list_refused

    assert graph_list_refused(err) is refused
