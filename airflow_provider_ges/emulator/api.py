"""What the emulator answers: routing, faults, authentication and the GES and IAM replies (no sockets).

Control calls (under ``CONTROL_PREFIX``, see :mod:`.control`) skip all of this: they are served
only when a control handler is set and only to loopback clients (else 403). GES and IAM checks run
in this order: route (unknown path or method: 404 ``APIGW.0101``), faults, authentication
(401 ``APIGW.0301``), project (403 ``GES.0001`` when the path's project is not the one the token or AK
belongs to), then the call itself (GES errors are HTTP 400 ``{"errorCode", "errorMessage"}``), and
last, on a call that succeeded, the ``after`` faults that replace its reply (see :mod:`.faults`).
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, unquote

from ..signer import SignatureError, verify_signature
from .faults import FaultPlan, FaultRule, Faults, Hostile
from .store import GRAPH_ACTIONS, GesError, Store, TokenError

JSON_TYPE = "application/json;charset=UTF-8"
HTML_TYPE = "text/html;charset=UTF-8"
LIST_ENDPOINTS = frozenset({"list_backups", "list_graph_backups", "list_graphs", "list_jobs"})
#: The fault scope of a single call (a stop or a start is also in scope "stop" or "start").
_CALL_SCOPES = {"create_backup": "create", "delete_backup": "delete", "graph_action": "action"}
DEFAULT_LIMIT = 10
CONTROL_PREFIX = "/__emulator__"
CONTROL_DISABLED = "The emulator's control API is disabled: start it with control=True (CLI: --control)."
CONTROL_LOOPBACK_ONLY = "The emulator's control API answers loopback clients only."

_HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>Service notice</title></head>"
    b"<body><h1>The service is being upgraded</h1><p>Please try again later.</p></body></html>"
)
_GATEWAY_ERRORS = {
    429: (
        "APIGW.0308",
        "The throttling threshold has been reached: policy user over ratelimit,limit:5,time:1 second",
    ),
    500: ("APIGW.0002", "Internal server error"),
    502: ("APIGW.0201", "Backend unavailable"),
    503: ("APIGW.0202", "Backend service unavailable"),
    504: ("APIGW.0203", "Backend timeout"),
}
_REASONS = {
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

_P = r"/v1\.0/(?P<project>[^/]+)/graphs"
_ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (method, re.compile(pattern + "/?"), name)
    for method, pattern, name in (
        ("POST", r"/v3/auth/tokens", "create_token"),
        ("GET", _P + r"/backups", "list_backups"),
        ("GET", _P + r"/jobs", "list_jobs"),
        ("GET", _P, "list_graphs"),
        ("GET", _P + r"/(?P<graph>[^/]+)", "show_graph"),
        ("POST", _P + r"/(?P<graph>[^/]+)/action", "graph_action"),
        ("GET", _P + r"/(?P<graph>[^/]+)/backups", "list_graph_backups"),
        ("POST", _P + r"/(?P<graph>[^/]+)/backups", "create_backup"),
        ("DELETE", _P + r"/(?P<graph>[^/]+)/backups/(?P<backup>[^/]+)", "delete_backup"),
        ("GET", _P + r"/(?P<graph>[^/]+)/jobs/(?P<job>[^/]+)/status", "show_job"),
    )
)


@dataclass(frozen=True)
class Settings:
    """Who may call the emulator."""

    user: str
    password: str
    domain: str
    project_id: str
    region: str
    ak: str
    sk: str
    max_clock_skew: float = 900.0


@dataclass(frozen=True)
class Request:
    """A request as received: raw path and query, header names in lower case, values decoded, and
    the client's address."""

    method: str
    path: str
    query: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    client: str = ""


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(status: int, payload: Any, **headers: str) -> Response:
    return Response(status, json.dumps(payload, separators=(",", ":")).encode(), headers=headers)


def ges_error(status: int, code: str, message: str) -> Response:
    return json_reply(status, {"errorCode": code, "errorMessage": message})


def iam_error(status: int, message: str, title: str) -> Response:
    return json_reply(status, {"error": {"code": status, "message": message, "title": title}})


def _iso_z(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _AuthError(Exception):
    """Authentication failed; the message is the gateway's reason."""


class GesApi:
    """Turns a :class:`Request` into a :class:`Response`, or ``None`` to drop the connection."""

    def __init__(self, settings: Settings, store: Store, faults: Faults, hostile: Hostile) -> None:
        self.settings = settings
        self.store = store
        self.hostile = hostile
        self.stopping = threading.Event()
        self.max_limit: int | None = None
        self.control: Callable[[Request], Response] | None = None
        self._plan = FaultPlan(faults)
        self._list_calls = itertools.count(1)
        self._handlers: dict[str, Callable[[Request, dict[str, str]], Response]] = {
            "list_backups": lambda req, p: self._list_backups(req, None),
            "list_graph_backups": lambda req, p: self._list_backups(req, p["graph"]),
            "list_graphs": lambda req, p: self._list_graphs(req),
            "create_backup": lambda req, p: json_reply(200, {"jobId": self.store.create_backup(p["graph"])}),
            "delete_backup": self._delete_backup,
            "show_job": lambda req, p: json_reply(200, self.store.job(p["graph"], p["job"])),
            "list_jobs": lambda req, p: self._list_jobs(req),
            "show_graph": lambda req, p: json_reply(200, {"graph": self.store.show_graph(p["graph"])}),
            "graph_action": self._graph_action,
        }

    def set_faults(self, faults: Faults) -> None:
        self._plan = FaultPlan(faults)

    def handle(self, req: Request) -> Response | None:
        request_id = os.urandom(16).hex()
        response = self._handle(req, request_id)
        if response is not None:
            response.headers["X-Request-Id"] = request_id
        return response

    def _handle(self, req: Request, request_id: str) -> Response | None:
        if req.path.startswith(CONTROL_PREFIX + "/"):
            return self._control(req)
        route = self._route(req)
        if route is None:
            self.store.count("requests", "not_found")
            message = "The API does not exist or has not been published in the environment"
            return self._gateway_error(404, "APIGW.0101", message, request_id)
        name, params = route
        self.store.count("requests", name)
        iam = name == "create_token"
        scopes = self._scopes(req, name)
        decision = self._plan.decide(scopes)
        if decision.latency:
            self.store.count("fault_latency")
            self.stopping.wait(decision.latency)
        rule = decision.rule
        if rule is not None:
            self.store.count("faults_injected", f"fault_{rule.kind}")
            if rule.kind != "stall":
                return self._fault_response(rule, iam, request_id)
            self.stopping.wait(rule.s)
        response = self._create_token(req) if iam else self._ges_call(req, name, params, request_id)
        if response.status >= 400:
            return response  # not carried out: no reply to lose
        lost = self._plan.decide(scopes, after=True).rule
        if lost is None:
            return response
        self.store.count("faults_injected", f"fault_{lost.kind}", "replies_lost")
        return self._fault_response(lost, iam, request_id)

    def _ges_call(self, req: Request, name: str, params: dict[str, str], request_id: str) -> Response:
        """Authenticate, check the project, and run the call."""
        try:
            project = self._authenticate(req)
        except _AuthError as exc:
            self.store.count("auth_failures")
            message = f"Incorrect IAM authentication information: {exc}"
            return self._gateway_error(401, "APIGW.0301", message, request_id)
        if params["project"] != project:
            return ges_error(403, "GES.0001", "The project ID in the URL does not match the credentials.")
        try:
            return self._handlers[name](req, params)
        except GesError as exc:
            return ges_error(exc.status, exc.code, exc.message)

    def _control(self, req: Request) -> Response:
        if self.control is None:
            return json_reply(403, {"error": CONTROL_DISABLED})
        try:
            address = ipaddress.ip_address(req.client)
        except ValueError:
            return json_reply(403, {"error": CONTROL_LOOPBACK_ONLY})
        mapped = getattr(address, "ipv4_mapped", None)  # "::ffff:127.0.0.1" on a dual-stack socket
        if not (mapped or address).is_loopback:
            return json_reply(403, {"error": CONTROL_LOOPBACK_ONLY})
        return self.control(req)

    @staticmethod
    def _scopes(req: Request, name: str) -> tuple[str, ...]:
        """The fault scopes a request belongs to."""
        if name == "create_token":
            return ("iam", "all")
        scopes = ["ges", "all"]
        if name in LIST_ENDPOINTS:
            scopes.append("list")
        if name in _CALL_SCOPES:
            scopes.append(_CALL_SCOPES[name])
        action = dict(parse_qsl(req.query)).get("action_id") if name == "graph_action" else None
        if action in GRAPH_ACTIONS:
            scopes.append(str(action))
        return tuple(scopes)

    @staticmethod
    def _route(req: Request) -> tuple[str, dict[str, str]] | None:
        for method, pattern, name in _ROUTES:
            match = pattern.fullmatch(req.path)
            if match and req.method == method:
                return name, {key: unquote(value) for key, value in match.groupdict().items()}
        return None

    # --- faults -----------------------------------------------------------------------------------

    def _fault_response(self, rule: FaultRule, iam: bool, request_id: str) -> Response | None:
        if rule.kind == "drop":
            return None
        if rule.kind == "html":
            return Response(200, _HTML_PAGE, HTML_TYPE)
        if rule.kind == "ges7006":
            return ges_error(400, "GES.7006", "The underlying graph engine has internal error.")
        status = rule.status
        headers = {"Retry-After": f"{rule.retry_after:g}"} if status == 429 else {}
        if iam:
            response = iam_error(status, _REASONS[status], _REASONS[status])
        else:
            response = self._gateway_error(status, *_GATEWAY_ERRORS[status], request_id)
        response.headers.update(headers)
        return response

    @staticmethod
    def _gateway_error(status: int, code: str, message: str, request_id: str) -> Response:
        return json_reply(status, {"error_code": code, "error_msg": message, "request_id": request_id})

    # --- auth -------------------------------------------------------------------------------------

    def _authenticate(self, req: Request) -> str:
        """The project the caller's credentials belong to."""
        token = req.headers.get("x-auth-token")
        if token:
            try:
                return self.store.token_project(token)
            except TokenError as exc:
                raise _AuthError(str(exc)) from None
        if not req.headers.get("authorization"):
            raise _AuthError("x-auth-token not found")
        settings = self.settings
        try:
            verify_signature(
                req.method,
                req.path,
                req.query,
                req.headers,
                req.body,
                lambda ak: settings.sk if ak == settings.ak else None,
                max_skew=timedelta(seconds=settings.max_clock_skew),
            )
        except SignatureError as exc:
            raise _AuthError(f"verify aksk signature fail, {exc}") from None
        return req.headers.get("x-project-id") or settings.project_id

    def _create_token(self, req: Request) -> Response:
        settings = self.settings
        try:
            auth = json.loads(req.body)["auth"]
            methods = auth["identity"]["methods"]
            user = auth["identity"]["password"]["user"]
            name, password, domain = user["name"], user["password"], user["domain"]["name"]
            project = auth["scope"]["project"]
            if not all(isinstance(v, str) for v in (name, password, domain)) or not isinstance(project, dict):
                raise TypeError("wrong types")
        except (ValueError, KeyError, TypeError):
            return iam_error(400, "The request body is invalid.", "Bad Request")
        if methods != ["password"]:
            return iam_error(400, "Only the 'password' identity method is supported.", "Bad Request")
        if (name, password, domain) != (settings.user, settings.password, settings.domain):
            return iam_error(401, "The username or password is wrong.", "Unauthorized")
        if project.get("id") != settings.project_id and project.get("name") != settings.region:
            return iam_error(401, "The request you have made requires authentication.", "Unauthorized")
        token, issued, expires = self.store.issue_token(settings.project_id)
        domain_ref = {"id": settings.project_id[::-1], "name": settings.domain}
        body: dict[str, Any] = {
            "expires_at": _iso_z(expires),
            "issued_at": _iso_z(issued),
            "methods": ["password"],
            "project": {"id": settings.project_id, "name": settings.region, "domain": domain_ref},
            "user": {
                "id": settings.user.encode().hex()[:32],
                "name": settings.user,
                "domain": domain_ref,
                "password_expires_at": "",
            },
            "roles": [{"id": "0", "name": "op_service"}],
        }
        if dict(parse_qsl(req.query)).get("nocatalog") != "true":
            body["catalog"] = []
        return json_reply(201, {"token": body}, **{"X-Subject-Token": token})

    # --- GES calls --------------------------------------------------------------------------------

    @staticmethod
    @lru_cache(maxsize=256)
    def _paging(query: str) -> tuple[int, int]:
        params = dict(parse_qsl(query, keep_blank_values=True))
        values = []
        for key, default in (("offset", 0), ("limit", DEFAULT_LIMIT)):
            text = params.get(key)
            if text is None:
                values.append(default)
                continue
            if not text.strip().isdigit():
                raise GesError("GES.0001", f"Parameter '{key}' must be a non-negative integer.")
            values.append(int(text))
        return values[0], values[1]

    def _page(self, req: Request) -> tuple[int, int]:
        """``(offset, limit)`` of a list call; a ``limit`` over :attr:`max_limit` is refused."""
        offset, limit = self._paging(req.query)
        cap = self.max_limit
        if cap is not None and limit > cap:
            raise GesError("GES.0001", f"The parameter limit is invalid: it must be at most {cap}.")
        return offset, limit

    def _list_backups(self, req: Request, graph_id: str | None) -> Response:
        offset, limit = self._page(req)
        if graph_id is not None:
            self.store.require_live_graph(graph_id)
        hostile = self.hostile
        if hostile.ignore_offset:
            offset = 0
        total, items = self.store.backup_page(graph_id, offset, limit + hostile.oversize_pages)
        if hostile.grow_count:
            total += next(self._list_calls)
        total += hostile.inflate_count
        return Response(200, b'{"backupCount":%d,"backupList":[%b]}' % (total, items))

    def _list_graphs(self, req: Request) -> Response:
        offset, limit = self._page(req)
        graphs = self.store.live_graphs()
        return json_reply(200, {"graphCount": len(graphs), "graphs": graphs[offset : offset + limit]})

    def _list_jobs(self, req: Request) -> Response:
        offset, limit = self._page(req)
        params = dict(parse_qsl(req.query))
        jobs = self.store.jobs(params.get("graph_name"), params.get("status"))
        return json_reply(200, {"jobCount": len(jobs), "jobList": jobs[offset : offset + limit]})

    def _graph_action(self, req: Request, params: dict[str, str]) -> Response:
        action = dict(parse_qsl(req.query)).get("action_id")
        if action not in GRAPH_ACTIONS:
            raise GesError("GES.0001", "The parameter action_id is invalid: it must be start or stop.")
        backup_id = None
        if action == "start" and req.body.strip():
            try:
                body = json.loads(req.body)
            except ValueError:
                raise GesError("GES.0001", "The request body is not valid JSON.") from None
            backup_id = body.get("graph_backup_id") if isinstance(body, dict) else None
            if not isinstance(backup_id, (str, type(None))):
                raise GesError("GES.0001", "The parameter graph_backup_id is invalid: it must be a string.")
        return json_reply(200, {"jobId": self.store.graph_action(params["graph"], action, backup_id or None)})

    def _delete_backup(self, req: Request, params: dict[str, str]) -> Response:
        self.store.delete_backup(params["graph"], params["backup"])
        return json_reply(200, {})
