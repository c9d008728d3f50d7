"""Call plans: each API call (and each listing) is a generator of effects, run by two drivers.

A plan yields ``Authorize`` (resume with auth headers), ``Send`` (resume with a ``Response``, or a
thrown ``GesApiError``), ``Sleep`` and ``Warn``, and returns its result. ``drive_sync`` (requests)
and ``drive_async`` (httpx) run the same plans, so retry, back-off, token refresh and paging exist
once, and the sans-IO core is tested with a fake ``send`` (tests/core/test_plans.py).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Awaitable, Callable, Generator, Hashable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from pydantic import BaseModel

from airflow_provider_ges.endpoints import Request
from airflow_provider_ges.exceptions import GesApiError, GesAuthError
from airflow_provider_ges.paging import REFUSED_LIMIT_FLOOR, Pager, refuses_paging
from airflow_provider_ges.replies import Response, parse_json
from airflow_provider_ges.shared import SHARED

T = TypeVar("T")
ItemT = TypeVar("ItemT")


@dataclass(frozen=True)
class Authorize:
    """Resume with the auth headers for ``request`` (a token, or an AK/SK signature); ``stale`` is
    a token the server refused."""

    request: Request
    stale: str | None = None


@dataclass(frozen=True)
class Send:
    """Send ``request`` with ``auth_headers`` added; resume with a ``Response`` (or a thrown error)."""

    request: Request
    auth_headers: Mapping[str, str]


@dataclass(frozen=True)
class Sleep:
    """Wait before a retry; ``reason`` is the error being retried (for the log)."""

    seconds: float
    reason: GesApiError


@dataclass(frozen=True)
class Warn:
    """Log a warning (the plan has no logger of its own)."""

    message: str


@dataclass(frozen=True)
class Share:
    """Resume with the result of ``plan``: the async driver shares it with every coroutine that
    asks for the same ``key`` (see ``airflow_provider_ges.shared``); the sync driver just runs it."""

    key: Hashable
    fresh_for: float
    plan: Generator[Any, Any, Any]


Effect = Authorize | Send | Sleep | Warn | Share
Plan = Generator[Effect, Any, T]


def shared(key: Hashable, fresh_for: float | None, plan: Plan[T]) -> Plan[T]:
    """``plan``, its result shared under ``key`` for ``fresh_for`` seconds (None: not shared)."""
    if fresh_for is None:
        return (yield from plan)
    return (yield Share(key, fresh_for, plan))  # type: ignore[no-any-return]


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off with full jitter; ``Retry-After`` wins when the server sends it."""

    max_retries: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0

    def delay(self, attempt: int, error: GesApiError) -> float | None:
        """Seconds to wait before retry number ``attempt + 1``, or None to give up."""
        if not error.transient or attempt >= self.max_retries:
            return None
        if error.retry_after is not None:
            return min(error.retry_after, self.max_delay)
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


def call(
    request: Request,
    parse: Callable[[Request, Response], T],
    policy: RetryPolicy,
    *,
    authenticated: bool = True,
    retry_on: Callable[[GesApiError], bool] | None = None,
) -> Plan[T]:
    """One API call: auth, send, parse, retry transient errors, refresh a refused token once.

    ``retry_on`` narrows the retries of this call: a transient error is retried only if it says
    so (e.g. a POST that must not run twice retries only errors the service cannot have acted on).
    None: every transient error is retried. A 401's token refresh is not affected.
    """
    attempt = 0
    stale: str | None = None
    refreshed = False
    while True:
        headers: Mapping[str, str] = (yield Authorize(request, stale)) if authenticated else {}
        stale = None
        try:
            response = yield Send(request, headers)
            return parse(request, response)
        except GesAuthError as err:
            token = headers.get("X-Auth-Token")
            if err.status_code != 401 or refreshed or token is None:
                raise
            refreshed, stale = True, token
        except GesApiError as err:
            wait = None if retry_on is not None and not retry_on(err) else policy.delay(attempt, err)
            if wait is None:
                raise
            attempt += 1
            yield Sleep(wait, err)


def listing(
    page_request: Callable[[int, int], Request],
    page_model: type[BaseModel],
    policy: RetryPolicy,
    page_size: int,
) -> Plan[list[Any]]:
    """Every item of an offset/limit listing, each id once (see ``Pager``).

    A reply refusing the paging parameters (a capped ``limit``) halves the page size and asks
    again, down to ``REFUSED_LIMIT_FLOOR``; the size that worked is logged once.
    """
    pager: Pager[Any] = Pager(page_size)
    items: list[Any] = []
    refused: GesApiError | None = None
    while pager.offset is not None:
        try:
            page: Any = yield from call(
                page_request(pager.offset, pager.page_size), partial(parse_json, page_model), policy
            )
        except GesApiError as err:
            if not refuses_paging(err):
                raise
            if pager.page_size <= REFUSED_LIMIT_FLOOR:
                raise GesApiError(
                    err.reason,
                    status_code=err.status_code,
                    error_code=err.error_code,
                    error_message=f"{err.error_message} (refused every page size from {page_size} to"
                    f" {REFUSED_LIMIT_FLOOR})",
                    method=err.method,
                    path=err.path,
                ) from None
            refused = err
            pager.page_size = max(REFUSED_LIMIT_FLOOR, pager.page_size // 2)
            continue
        if refused is not None:
            yield Warn(f"GES refused limit={page_size} ({refused}); listing with limit={pager.page_size}")
            refused = None
        items.extend(pager.feed(page))
    return items


def drive_sync(
    plan: Plan[T],
    send: Callable[[Send], Response],
    authorize: Callable[[Authorize], Mapping[str, str]],
    sleep: Callable[[Sleep], None],
    warn: Callable[[str], None],
) -> T:
    """Run a plan with blocking I/O."""
    result: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = plan.throw(error) if error else plan.send(result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        result, error = None, None
        try:
            if isinstance(effect, Send):
                result = send(effect)
            elif isinstance(effect, Authorize):
                result = authorize(effect)
            elif isinstance(effect, Sleep):
                sleep(effect)
            elif isinstance(effect, Share):
                result = drive_sync(effect.plan, send, authorize, sleep, warn)
            else:
                warn(effect.message)
        except GesApiError as exc:
            error = exc


async def drive_async(
    plan: Plan[T],
    send: Callable[[Send], Awaitable[Response]],
    authorize: Callable[[Authorize], Awaitable[Mapping[str, str]]],
    sleep: Callable[[Sleep], Awaitable[None]],
    warn: Callable[[str], None],
) -> T:
    """Run a plan on the event loop (never blocks it)."""
    result: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = plan.throw(error) if error else plan.send(result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        result, error = None, None
        try:
            if isinstance(effect, Send):
                result = await send(effect)
            elif isinstance(effect, Authorize):
                result = await authorize(effect)
            elif isinstance(effect, Sleep):
                await sleep(effect)
            elif isinstance(effect, Share):
                run = functools.partial(drive_async, effect.plan, send, authorize, sleep, warn)
                result = await SHARED.get(effect.key, effect.fresh_for, run)
            else:
                warn(effect.message)
        except GesApiError as exc:
            error = exc
