"""The sans-IO core on its own: plans driven with a fake ``send``, no HTTP, no Airflow."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from airflow_provider_ges.endpoints import Request
from airflow_provider_ges.exceptions import GesApiError, GesAuthError
from airflow_provider_ges.models import BackupPage
from airflow_provider_ges.plans import Authorize, Plan, RetryPolicy, Send, Sleep, call, drive_sync, listing
from airflow_provider_ges.replies import Response, parse_json

NO_WAIT = RetryPolicy(max_retries=3, base_delay=0.0)


def page_request(offset: int, limit: int) -> Request:
    return Request("GET", "https://ges.test", "/v1.0/p/graphs/backups", {"offset": offset, "limit": limit})


def reply(status: int, body: Any, **headers: str) -> Response:
    return Response(status, headers, json.dumps(body).encode())


class Fake:
    """A server as a function of the request; records what the plan did."""

    def __init__(self, serve: Callable[[Send], Response]) -> None:
        self.serve = serve
        self.sent: list[Send] = []
        self.slept: list[float] = []
        self.warned: list[str] = []
        self.tokens = 0

    def send(self, effect: Send) -> Response:
        self.sent.append(effect)
        return self.serve(effect)

    def authorize(self, need: Authorize) -> Mapping[str, str]:
        self.tokens += 1
        return {"X-Auth-Token": f"t{self.tokens}"}

    def run(self, plan: Plan[Any]) -> Any:
        return drive_sync(
            plan, self.send, self.authorize, lambda s: self.slept.append(s.seconds), self.warned.append
        )


def capped_listing(n: int, cap: int) -> Callable[[Send], Response]:
    ids = [f"b-{i:04d}" for i in range(n)]

    def serve(effect: Send) -> Response:
        offset, limit = int(effect.request.params["offset"]), int(effect.request.params["limit"])
        if limit > cap:
            return reply(
                400,
                {"errorCode": "GES.0001", "errorMessage": f"The parameter limit is invalid: at most {cap}."},
            )
        return reply(200, {"backupCount": n, "backupList": [{"id": i} for i in ids[offset : offset + limit]]})

    return serve


def test_call_retries_transient_errors_then_parses() -> None:
    replies = iter([reply(503, {}), reply(429, {}, **{"Retry-After": "0"}), reply(200, {"backupCount": 0})])
    fake = Fake(lambda effect: next(replies))
    page = fake.run(call(page_request(0, 10), lambda r, s: parse_json(BackupPage, r, s), NO_WAIT))
    assert page.backup_count == 0 and len(fake.sent) == 3 and fake.slept[1] == 0.0


def test_call_refreshes_a_refused_token_once_then_gives_up() -> None:
    fake = Fake(lambda effect: reply(401, {"error_code": "APIGW.0301", "error_msg": "token expired"}))
    with pytest.raises(GesAuthError):
        fake.run(call(page_request(0, 10), lambda r, s: parse_json(BackupPage, r, s), NO_WAIT))
    assert [s.auth_headers["X-Auth-Token"] for s in fake.sent] == ["t1", "t2"]


def test_listing_never_asks_more_than_page_size() -> None:
    fake = Fake(capped_listing(250, cap=1000))
    items = fake.run(listing(page_request, BackupPage, NO_WAIT, 100))
    assert [b.id for b in items] == [f"b-{i:04d}" for i in range(250)]
    assert {int(s.request.params["limit"]) for s in fake.sent} == {100}
    assert len(fake.sent) == 1 + -(-(250 - 100) // 99) == 3
    assert not fake.warned


def test_listing_halves_a_refused_limit_and_warns_once_with_the_size_that_worked() -> None:
    fake = Fake(capped_listing(250, cap=30))
    items = fake.run(listing(page_request, BackupPage, NO_WAIT, 100))
    assert len(items) == 250 and len({b.id for b in items}) == 250
    limits = [int(s.request.params["limit"]) for s in fake.sent]
    assert limits[:3] == [100, 50, 25] and set(limits[2:]) == {25}
    assert len(fake.warned) == 1 and "limit=100" in fake.warned[0] and "limit=25" in fake.warned[0]


def test_listing_gives_up_below_the_documented_default_with_a_clear_error() -> None:
    fake = Fake(capped_listing(50, cap=5))
    with pytest.raises(GesApiError, match="refused every page size from 100 to 10") as err:
        fake.run(listing(page_request, BackupPage, NO_WAIT, 100))
    assert err.value.error_code == "GES.0001" and err.value.status_code == 400
    assert [int(s.request.params["limit"]) for s in fake.sent] == [100, 50, 25, 12, 10]


def test_other_400s_are_not_taken_for_a_cap() -> None:
    fake = Fake(lambda effect: reply(400, {"errorCode": "GES.7000", "errorMessage": "graph does not exist"}))
    with pytest.raises(GesApiError, match=r"GES\.7000"):
        fake.run(listing(page_request, BackupPage, NO_WAIT, 100))
    assert len(fake.sent) == 1


def test_a_sleep_carries_the_error_it_waits_out() -> None:
    replies = iter([reply(502, {}), reply(200, {"backupCount": 0})])
    effects: list[Any] = []
    fake = Fake(lambda effect: next(replies))

    def sleep(effect: Sleep) -> None:
        effects.append(effect)

    plan = call(page_request(0, 10), lambda r, s: parse_json(BackupPage, r, s), NO_WAIT)
    drive_sync(plan, fake.send, fake.authorize, sleep, fake.warned.append)
    assert effects[0].reason.status_code == 502
