"""The one wire layer: requests built, replies parsed and errors mapped, for sync and async alike.

Nothing here does I/O. A call is a *plan*: a generator that yields effects (``Send`` a request,
``Sleep``, ``NeedToken``) and is resumed with their results. ``drive_sync`` (requests) and
``drive_async`` (httpx) run the same plans, so retry, back-off and token refresh exist once.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import urlencode

from pydantic import BaseModel, ValidationError

from airflow_provider_ges.connection import GesConnectionConfig
from airflow_provider_ges.exceptions import (
    GesApiError,
    GesAuthError,
    GesNotFoundError,
    GesTransientError,
)
from airflow_provider_ges.models import BackupPage, GraphPage, Token

T = TypeVar("T")
ModelT = TypeVar("ModelT", bound=BaseModel)

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
TRANSIENT_GES_CODES = frozenset({"GES.7002", "GES.7005", "GES.7006"})
NOT_FOUND_GES_CODES = frozenset({"GES.0016", "GES.7000", "GES.7024", "GES.8301"})
_SAFE_PATH_PARAM = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
_MAX_PAGES_SLACK = 5
_MAX_UNCOUNTED = 100_000


def check_path_param(name: str, value: str) -> str:
    """Refuse a path parameter that could change the URL (``/``, ``..``, ``%``, ``?``, spaces...)."""
    if not isinstance(value, str) or not _SAFE_PATH_PARAM.fullmatch(value):
        raise ValueError(
            f"{name} must be 1-128 letters, digits, '_', '-' or '.' starting with a letter or digit,"
            f" got {value!r}"
        )
    return value


@dataclass(frozen=True)
class Request:
    """An HTTP request, before auth headers are added."""

    method: str
    base_url: str
    path: str
    params: Mapping[str, str | int] = field(default_factory=dict)
    json_body: Any = None

    @property
    def url(self) -> str:
        """The URL exactly as sent (and, with AK/SK, as signed), query included."""
        query = urlencode(self.params)
        return f"{self.base_url}{self.path}?{query}" if query else self.base_url + self.path

    @property
    def body(self) -> bytes:
        return b"" if self.json_body is None else json.dumps(self.json_body).encode()

    @property
    def headers(self) -> dict[str, str]:
        """The content headers the body needs (auth headers come separately)."""
        return {"Content-Type": "application/json"} if self.json_body is not None else {}


@dataclass(frozen=True)
class Response:
    """What came back, transport-neutral."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes


# --- effects a plan yields -------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    """Send this request with these headers; resume with a ``Response`` (or a thrown error)."""

    request: Request
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Sleep:
    """Wait before a retry; ``reason`` is the error being retried (for the log)."""

    seconds: float
    reason: GesApiError


@dataclass(frozen=True)
class NeedToken:
    """Resume with the auth headers for a request; ``stale`` is a token the server refused."""

    request: Request
    stale: str | None = None


Effect = Send | Sleep | NeedToken
Plan = Generator[Effect, Any, T]


# --- requests ---------------------------------------------------------------------------------


def password_auth_body(user: str, password: str, domain: str | None, project_id: str) -> dict[str, Any]:
    """The IAM token request's JSON body: password auth scoped to a project."""
    return {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": user, "password": password, "domain": {"name": domain}}},
            },
            "scope": {"project": {"id": project_id}},
        }
    }


def token_request(config: GesConnectionConfig) -> Request:
    """IAM password auth scoped to the connection's project."""
    body = password_auth_body(config.login, config.password, config.domain_name, config.project_id)
    return Request("POST", config.iam_endpoint, "/v3/auth/tokens", {"nocatalog": "true"}, body)


def list_graphs_request(config: GesConnectionConfig, offset: int, limit: int) -> Request:
    """``GET /v1.0/{project_id}/graphs?offset=&limit=``."""
    project = check_path_param("project_id", config.project_id)
    return Request("GET", config.endpoint, f"/v1.0/{project}/graphs", {"offset": offset, "limit": limit})


def graph_list_refused(err: GesApiError) -> bool:
    """Whether the graph list call itself was refused (no permission, no such call), as opposed to a
    failed token (never tried twice: IAM locks accounts) or a transient error (waited out)."""
    is_graph_list = err.method == "GET" and err.path is not None and err.path.endswith("/graphs")
    return is_graph_list and not err.transient and err.status_code != 401


def list_backups_request(
    config: GesConnectionConfig, graph_id: str | None, offset: int, limit: int
) -> Request:
    """``GET /v1.0/{project_id}/graphs[/{graph_id}]/backups?offset=&limit=``."""
    project = check_path_param("project_id", config.project_id)
    graph = "" if graph_id is None else "/" + check_path_param("graph_id", graph_id)
    path = f"/v1.0/{project}/graphs{graph}/backups"
    return Request("GET", config.endpoint, path, {"offset": offset, "limit": limit})


# --- replies ----------------------------------------------------------------------------------


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date); None when absent or garbled."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:  # "nan", "inf", "1e999": garbled, not a wait
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _error_fields(body: Any) -> tuple[str | None, str | None]:
    """(code, message) from a GES, API gateway or IAM error body, whichever came back."""
    if not isinstance(body, dict):
        return None, None
    if isinstance(body.get("error"), dict):  # IAM
        err = body["error"]
        return _text(err.get("code"), 100), _text(err.get("message"))
    for code_key, msg_key in (("errorCode", "errorMessage"), ("error_code", "error_msg")):
        if body.get(code_key) or body.get(msg_key):
            return _text(body.get(code_key), 100), _text(body.get(msg_key))
    return None, None


def _text(value: Any, limit: int = 500) -> str | None:
    return None if value is None else str(value)[:limit]


def _json(content: bytes) -> Any:
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def raise_for_error(request: Request, response: Response) -> None:
    """Map an error reply to the right ``GesApiError``; a 2xx without an error code passes."""
    status = response.status_code
    if 200 <= status < 300 and b'"error' not in response.content:
        return  # no error field can be in there: skip a second parse of a whole page
    body = _json(response.content) if response.content else None
    code, message = _error_fields(body)
    if 200 <= status < 300 and not code:
        return
    kind: type[GesApiError] = GesApiError
    if status in TRANSIENT_STATUS or code in TRANSIENT_GES_CODES:
        kind = GesTransientError
    elif status in (401, 403):
        kind = GesAuthError
    elif status == 404 or code in NOT_FOUND_GES_CODES:
        kind = GesNotFoundError
    raise kind(
        "a non-JSON reply" if body is None and response.content else "no error message in the reply",
        status_code=status,
        error_code=code,
        error_message=message,
        method=request.method,
        path=request.path,
        retry_after=retry_after_seconds(response.headers.get("Retry-After")),
    )


def _garbled(request: Request, response: Response, what: str) -> GesTransientError:
    return GesTransientError(
        f"unexpected reply: {what}",
        status_code=response.status_code,
        method=request.method,
        path=request.path,
    )


def parse_backup_page(request: Request, response: Response) -> BackupPage:
    return _parse_json(BackupPage, request, response)


def parse_graph_page(request: Request, response: Response) -> GraphPage:
    return _parse_json(GraphPage, request, response)


def _parse_json(model: type[ModelT], request: Request, response: Response) -> ModelT:
    raise_for_error(request, response)
    try:
        return model.model_validate_json(response.content)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise _garbled(request, response, f"{where}: {first['msg']}") from None


def parse_token(request: Request, response: Response) -> Token:
    raise_for_error(request, response)
    value = response.headers.get("X-Subject-Token")
    body = _json(response.content)
    token = body.get("token") if isinstance(body, dict) else None
    expires = token.get("expires_at") if isinstance(token, dict) else None
    if response.status_code != 201 or not value or expires is None:
        raise _garbled(request, response, "expected 201 with X-Subject-Token and token.expires_at")
    try:
        return Token(value=value, expires_at=expires)
    except ValidationError:
        raise _garbled(request, response, f"token.expires_at is not a date-time: {expires!r}") from None


# --- retries ----------------------------------------------------------------------------------


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
) -> Plan[T]:
    """The plan of one API call: auth, send, parse, retry transient errors, refresh a refused token."""
    attempt = 0
    stale: str | None = None
    refreshed = False
    while True:
        headers: Mapping[str, str] = (yield NeedToken(request, stale)) if authenticated else {}
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
            wait = policy.delay(attempt, err)
            if wait is None:
                raise
            attempt += 1
            yield Sleep(wait, err)


# --- pagination -------------------------------------------------------------------------------


class Identified(Protocol):
    @property
    def id(self) -> str: ...


ItemT = TypeVar("ItemT", bound=Identified)
ItemT_co = TypeVar("ItemT_co", bound=Identified, covariant=True)


class Listed(Protocol[ItemT_co]):
    """A page of an offset/limit listing: ``BackupPage``, ``GraphPage``."""

    @property
    def items(self) -> Sequence[ItemT_co]: ...

    @property
    def total(self) -> int | None: ...


class Pager(Generic[ItemT]):
    """Offset/limit paging that ends, skips nothing that stays listed, and yields each id once.

    Pages overlap: the first request is ``offset=0, limit=page_size``; each later one starts at the
    last item of the page before (the *anchor*) and asks for one more (``limit=page_size + 1``),
    so a listing that does not change costs exactly ``ceil(N / page_size)`` requests. Send
    ``offset`` and ``limit`` as the pager gives them.

    A page is trusted only when it holds an item already returned: as items keep their relative
    order, everything listed before that one was returned already, and the page goes on from it
    without a gap whatever was inserted or removed meanwhile (insertions only bring duplicates,
    which are dropped). A page with none means items before the offset were removed and the rest
    moved left, past the offset: it is dropped and the pager steps back (by the drop in the total,
    ``backupCount`` or ``graphCount``, at least one, then twice as far each time) until a trusted
    page, or offset 0. After such a shift the pages start a little before the anchor (a guard,
    shrinking again while nothing moves), so steady churn costs a few items per page rather than a
    request per page.

    The listing ends when the total is reached, on an empty first page, on a page shorter than
    ``page_size`` when there is no total, or on a page with nothing past its anchor.
    A server that ignores ``offset`` (the first page again, twice) or a listing that keeps growing
    past twice its first size is a ``GesApiError``: bounded work, never a hang or a silent cut.
    """

    def __init__(self, page_size: int) -> None:
        if not isinstance(page_size, int) or isinstance(page_size, bool) or page_size < 1:
            raise ValueError(f"page_size must be a positive integer, got {page_size!r}")
        self.page_size = page_size
        #: where the next request starts (None: the listing has ended) and how many it asks for
        self.offset: int | None = 0
        self.limit = page_size
        self.pages = 0
        self.step_backs = 0
        self._seen: set[str] = set()
        self._first_ids: list[str] = []
        self._anchor: str | None = None
        self._total: int | None = None
        self._max_pages = 0
        self._misses = 0
        self._guard = 0  # how far before the anchor the next page starts
        self._max_guard = (page_size - 1) // 2
        self._suspect = False

    def feed(self, page: Listed[ItemT]) -> list[ItemT]:
        """Take the page for (``offset``, ``limit``); return its items not returned before and
        set the next ``offset``/``limit`` (``offset`` None: done)."""
        offset = self.offset
        assert offset is not None, "the listing has ended"
        items, total = page.items, page.total
        ids = [b.id for b in items]
        self.pages += 1
        if self.pages == 1:
            # twice the first size (pages overlap by one); without a total, a cap no real
            # project comes near
            most = _MAX_UNCOUNTED if total is None else 2 * max(total, len(items))
            self._max_pages = -(-most // max(1, self.page_size - 1)) + _MAX_PAGES_SLACK
        if offset > 0 and not any(i in self._seen for i in ids):
            # Moved left past the offset (or the anchor went): drop the page, look further back.
            drop = max(1, (self._total or 0) - (total or 0))
            self.offset = max(0, offset - (drop << self._misses))
            self._misses += 1
            self.step_backs += 1
            self._guard = min(self._max_guard, max(1, 2 * self._guard))
            self._check_bound(total)
            return []
        guard = self._guard if self._misses == 0 else 0  # what this request allowed for
        if self._misses == 0 and self._anchor in ids and ids.index(self._anchor) >= guard > 0:
            self._guard -= 1  # nothing moved left this time: overlap less
        self._misses = 0
        self._total = total
        # The first page again at a later offset, twice running: the server ignores 'offset'
        # (a single time may be as many new items at the head as the offset).
        suspect = offset > 0 and bool(self._first_ids) and ids[: len(self._first_ids)] == self._first_ids
        if suspect and self._suspect:
            raise GesApiError(
                f"the server returned the first page again for offset {offset}: it ignores"
                " 'offset' (or new items come first as fast as they are read), so the listing"
                " cannot be completed"
            )
        self._suspect = suspect
        if self.pages == 1:
            self._first_ids = ids
        fresh: list[ItemT] = []
        for item in items:
            if item.id not in self._seen:
                self._seen.add(item.id)
                fresh.append(item)
        reached = total is not None and offset + len(items) >= total
        short = total is None and len(items) < self.page_size
        nothing_past_anchor = offset > 0 and len(items) <= guard + 1
        if not items or (not suspect and (reached or short)) or nothing_past_anchor:
            self.offset = None
            return fresh
        self._anchor = ids[-1]
        self.offset = max(0, offset + len(items) - 1 - self._guard)
        self.limit = self.page_size + 1
        self._check_bound(total)
        return fresh

    def _check_bound(self, total: int | None) -> None:
        if self.pages >= self._max_pages:
            raise GesApiError(
                f"the listing did not end after {self.pages} pages of {self.page_size}"
                f" (total now {total}): the server keeps reporting more"
            )


# --- drivers ----------------------------------------------------------------------------------


def drive_sync(
    plan: Plan[T],
    send: Callable[[Send], Response],
    auth: Callable[[NeedToken], Mapping[str, str]],
    sleep: Callable[[Sleep], None],
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
            elif isinstance(effect, NeedToken):
                result = auth(effect)
            else:
                sleep(effect)
        except GesApiError as exc:
            error = exc


async def drive_async(
    plan: Plan[T],
    send: Callable[[Send], Awaitable[Response]],
    auth: Callable[[NeedToken], Awaitable[Mapping[str, str]]],
    sleep: Callable[[Sleep], Awaitable[None]],
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
            elif isinstance(effect, NeedToken):
                result = await auth(effect)
            else:
                await sleep(effect)
        except GesApiError as exc:
            error = exc
