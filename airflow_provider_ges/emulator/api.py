"""What the emulator answers: routing, faults, authentication and the GES and IAM replies (no sockets).

Control calls (under ``CONTROL_PREFIX``, see :mod:`.control`) skip all of this: they are served
only when a control handler is set and only to loopback clients (else 403). GES and IAM checks run
in this order: route (unknown path or method: 404 ``APIGW.0101``), faults, authentication
(401 ``APIGW.0301``), project (403 ``GES.0001`` when the path's project is not the one the token or AK
belongs to), then the call itself (GES errors are HTTP 400 ``{"errorCode", "errorMessage"}`` on v1,
``{"error_code", "error_msg"}`` on v2), and last, on a call that succeeded, the ``after`` faults that
replace its reply (see :mod:`.faults`).

Both API versions serve the same state: v1 under ``/v1.0/{project}/graphs``, v2 under
``/v2/{project}/graphs`` (snake_case, see :mod:`.v2`). A route's name is the counter it counts in,
whichever version it came through; ``v1_requests`` and ``v2_requests`` count the requests whose path
is a v1 (``/v1...``) or a v2 (``/v2/...``) one, routed or not. Download links (``/__files__/...``,
issued by v2's ``backup-files``) need no token but their own, see no faults and count in
``download_file``.
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
from .errors import GesError
from .faults import FaultPlan, FaultRule, Faults, Hostile
from .store import FILES_PREFIX, GRAPH_ACTIONS, UNLIMITED, Store, TokenError
from .v2 import snake_view

JSON_TYPE = "application/json;charset=UTF-8"
HTML_TYPE = "text/html;charset=UTF-8"
XML_TYPE = "application/xml"
LIST_ENDPOINTS = frozenset({"list_backups", "list_graph_backups", "list_graphs", "list_jobs"})
#: The fault scope of a single call (a stop or a start is also in scope "stop" or "start").
_CALL_SCOPES = {
    "create_backup": "create",
    "delete_backup": "delete",
    "graph_action": "action",
    "export_backup": "export",
    "import_backup": "import",
}
DEFAULT_LIMIT = 10
CONTROL_PREFIX = "/__emulator__"
#: The header on every control reply, refusals included: how ``ctl`` tells the emulator from another
#: server on the same port.
CONTROL_HEADER = "X-GES-Emulator"
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
_P2 = r"/v2/(?P<project>[^/]+)/graphs"
_G = r"/(?P<graph>[^/]+)"
_Routes = tuple[tuple[str, re.Pattern[str], str], ...]


def _compile(*routes: tuple[str, str, str]) -> _Routes:
    return tuple((method, re.compile(pattern + "/?"), name) for method, pattern, name in routes)


#: The routes of each path prefix, tried in order (``/graphs/backups`` before ``/graphs/{graph}``).
_ROUTES: dict[str, _Routes] = {
    "/v3/": _compile(("POST", r"/v3/auth/tokens", "create_token")),
    "/v1.0/": _compile(
        ("GET", _P + r"/backups", "list_backups"),
        ("GET", _P + r"/jobs", "list_jobs"),
        ("GET", _P + r"/quotas", "list_quotas"),
        ("GET", _P, "list_graphs"),
        ("GET", _P + _G, "show_graph"),
        ("POST", _P + _G + r"/action", "graph_action"),
        ("GET", _P + _G + r"/backups", "list_graph_backups"),
        ("POST", _P + _G + r"/backups", "create_backup"),
        ("DELETE", _P + _G + r"/backups/(?P<backup>[^/]+)", "delete_backup"),
        ("GET", _P + _G + r"/jobs/(?P<job>[^/]+)/status", "show_job"),
    ),
    "/v2/": _compile(
        ("GET", _P2 + r"/backups", "list_backups"),
        ("GET", _P2 + r"/jobs", "list_jobs"),
        ("GET", _P2 + r"/quotas", "list_quotas"),
        ("GET", _P2, "list_graphs"),
        ("GET", _P2 + _G, "show_graph"),
        ("POST", _P2 + _G + r"/(?P<action>stop|start)", "graph_action"),
        ("GET", _P2 + _G + r"/backups", "list_graph_backups"),
        ("POST", _P2 + _G + r"/backups", "create_backup"),
        ("POST", _P2 + _G + r"/backups/export", "export_backup"),
        ("POST", _P2 + _G + r"/backups/import", "import_backup"),
        ("DELETE", _P2 + _G + r"/backups/(?P<backup>[^/]+)", "delete_backup"),
        ("GET", _P2 + _G + r"/backup-files", "show_backup_files"),
        ("GET", _P2 + _G + r"/jobs/(?P<job>[^/]+)/status", "show_job"),
    ),
}


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


def ges_error(status: int, code: str, message: str, v2: bool = False) -> Response:
    """A GES error reply: ``{"errorCode", "errorMessage"}`` (v1) or ``{"error_code", "error_msg"}`` (v2)."""
    if v2:
        return json_reply(status, {"error_code": code, "error_msg": message})
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
        #: Where download links point when a request has no ``Host`` header (set by the server).
        self.base_url = "http://127.0.0.1"
        self._plan = FaultPlan(faults)
        self._list_calls = itertools.count(1)
        self._handlers: dict[str, Callable[[Request, dict[str, str], bool], Response]] = {
            "list_backups": lambda req, p, v2: self._list_backups(req, None, v2),
            "list_graph_backups": lambda req, p, v2: self._list_backups(req, p["graph"], v2),
            "list_graphs": self._list_graphs,
            "create_backup": lambda req, p, v2: self._job_reply(self.store.create_backup(p["graph"]), v2),
            "delete_backup": self._delete_backup,
            "show_job": lambda req, p, v2: json_reply(200, _job(self.store.job(p["graph"], p["job"]), v2)),
            "list_jobs": self._list_jobs,
            "show_graph": lambda req, p, v2: json_reply(
                200, {"graph": _graph(self.store.show_graph(p["graph"]), v2)}
            ),
            "graph_action": self._graph_action,
            "list_quotas": self._list_quotas,
            "export_backup": self._export_backup,
            "import_backup": self._import_backup,
            "show_backup_files": self._backup_files,
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
        path = req.path
        if path.startswith(CONTROL_PREFIX + "/"):
            return self._control(req)
        if path.startswith(FILES_PREFIX + "/"):
            return self._download(req)
        version = (
            ("v1_requests",)
            if path.startswith("/v1")
            else ("v2_requests",)
            if path.startswith("/v2/")
            else ()
        )
        route = self._route(req)
        if route is None:
            self.store.count("requests", "not_found", *version)
            message = "The API does not exist or has not been published in the environment"
            return self._gateway_error(404, "APIGW.0101", message, request_id)
        name, params, v2 = route
        self.store.count("requests", name, *version)
        iam = name == "create_token"
        scopes = self._scopes(req, name, params, v2)
        decision = self._plan.decide(scopes)
        if decision.latency:
            self.store.count("fault_latency")
            self.stopping.wait(decision.latency)
        rule = decision.rule
        if rule is not None:
            self.store.count("faults_injected", f"fault_{rule.kind}")
            if rule.kind != "stall":
                return self._fault_response(rule, iam, request_id, v2)
            self.stopping.wait(rule.s)
        response = self._create_token(req) if iam else self._ges_call(req, name, params, request_id, v2)
        if response.status >= 400:
            return response  # not carried out: no reply to lose
        lost = self._plan.decide(scopes, after=True).rule
        if lost is None:
            return response
        self.store.count("faults_injected", f"fault_{lost.kind}", "replies_lost")
        return self._fault_response(lost, iam, request_id, v2)

    def _ges_call(
        self, req: Request, name: str, params: dict[str, str], request_id: str, v2: bool
    ) -> Response:
        """Authenticate, check the project, and run the call."""
        try:
            project = self._authenticate(req)
        except _AuthError as exc:
            self.store.count("auth_failures")
            message = f"Incorrect IAM authentication information: {exc}"
            return self._gateway_error(401, "APIGW.0301", message, request_id)
        if params["project"] != project:
            message = "The project ID in the URL does not match the credentials."
            return ges_error(403, "GES.0001", message, v2)
        try:
            return self._handlers[name](req, params, v2)
        except GesError as exc:
            return ges_error(exc.status, exc.code, exc.message, v2)

    def _control(self, req: Request) -> Response:
        response = self._control_reply(req)
        response.headers[CONTROL_HEADER] = "control"
        return response

    def _control_reply(self, req: Request) -> Response:
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

    def _download(self, req: Request) -> Response:
        """A GET on a download link (no token but the link's own; no faults)."""
        self.store.count("requests", "download_file")
        if req.method != "GET":
            return Response(405, b"", XML_TYPE)
        token = dict(parse_qsl(req.query)).get("token", "")
        status, body = self.store.download(unquote(req.path), token)
        return Response(status, body, "application/octet-stream" if status == 200 else XML_TYPE)

    @staticmethod
    def _scopes(req: Request, name: str, params: dict[str, str], v2: bool) -> tuple[str, ...]:
        """The fault scopes a request belongs to."""
        if name == "create_token":
            return ("iam", "all")
        scopes = ["ges", "all", "v2" if v2 else "v1"]
        if name in LIST_ENDPOINTS:
            scopes.append("list")
        if name in _CALL_SCOPES:
            scopes.append(_CALL_SCOPES[name])
        if name == "graph_action":
            action = params.get("action") if v2 else dict(parse_qsl(req.query)).get("action_id")
            if action in GRAPH_ACTIONS:
                scopes.append(str(action))
        return tuple(scopes)

    @staticmethod
    def _route(req: Request) -> tuple[str, dict[str, str], bool] | None:
        """The route's name, its path parameters and whether it is a v2 call."""
        prefix = req.path[: req.path.find("/", 1) + 1]
        for method, pattern, name in _ROUTES.get(prefix, ()):
            match = pattern.fullmatch(req.path)
            if match and req.method == method:
                params = {key: unquote(value) for key, value in match.groupdict().items()}
                return name, params, prefix == "/v2/"
        return None

    # --- faults -----------------------------------------------------------------------------------

    def _fault_response(self, rule: FaultRule, iam: bool, request_id: str, v2: bool) -> Response | None:
        if rule.kind == "drop":
            return None
        if rule.kind == "html":
            return Response(200, _HTML_PAGE, HTML_TYPE)
        if rule.kind == "ges7006":
            return ges_error(400, "GES.7006", "The underlying graph engine has internal error.", v2)
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

    def _list_backups(self, req: Request, graph_id: str | None, v2: bool) -> Response:
        offset, limit = self._page(req)
        if graph_id is not None:
            self.store.require_live_graph(graph_id)
        hostile = self.hostile
        if hostile.ignore_offset:
            offset = 0
        total, items = self.store.backup_page(graph_id, offset, limit + hostile.oversize_pages, v2)
        if hostile.grow_count:
            total += next(self._list_calls)
        total += hostile.inflate_count
        if v2:
            return Response(200, b'{"backup_count":%d,"backup_list":[%b]}' % (total, items))
        return Response(200, b'{"backupCount":%d,"backupList":[%b]}' % (total, items))

    def _list_graphs(self, req: Request, params: dict[str, str], v2: bool) -> Response:
        offset, limit = self._page(req)
        graphs = self.store.live_graphs()
        page = [_graph(graph, v2) for graph in graphs[offset : offset + limit]]
        return json_reply(200, {"graph_count" if v2 else "graphCount": len(graphs), "graphs": page})

    def _list_jobs(self, req: Request, params: dict[str, str], v2: bool) -> Response:
        offset, limit = self._page(req)
        query = dict(parse_qsl(req.query))
        jobs = self.store.jobs(query.get("graph_name"), query.get("status"))
        page = [_job(job, v2) for job in jobs[offset : offset + limit]]
        if v2:
            return json_reply(200, {"job_count": len(jobs), "job_list": page})
        return json_reply(200, {"jobCount": len(jobs), "jobList": page})

    @staticmethod
    def _job_reply(job_id: str, v2: bool) -> Response:
        return json_reply(200, {"job_id" if v2 else "jobId": job_id})

    @staticmethod
    def _body(req: Request) -> dict[str, Any]:
        """The JSON object of a request body (none: ``{}``); anything else is GES.0001."""
        if not req.body.strip():
            return {}
        try:
            body = json.loads(req.body)
        except ValueError:
            raise GesError("GES.0001", "The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise GesError("GES.0001", "The request body must be a JSON object.")
        return body

    def _graph_action(self, req: Request, params: dict[str, str], v2: bool) -> Response:
        action = params["action"] if v2 else dict(parse_qsl(req.query)).get("action_id")
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
        return self._job_reply(self.store.graph_action(params["graph"], action, backup_id or None), v2)

    def _delete_backup(self, req: Request, params: dict[str, str], v2: bool) -> Response:
        self.store.delete_backup(params["graph"], params["backup"])
        return json_reply(200, {})

    def _list_quotas(self, req: Request, params: dict[str, str], v2: bool) -> Response:
        """The SDK's ``ListQuotas2Response`` (v1: ``edgeVolume``): backups the project can still
        hold, and -1 ("unlimited") for graphs, their edges and metadata."""
        backups = self.store.backup_slots()
        resources: list[dict[str, Any]] = [
            {"type": "graph", "available": UNLIMITED, "edge_volume" if v2 else "edgeVolume": UNLIMITED},
            {"type": "backup", "available": backups},
            {"type": "metadata", "available": UNLIMITED},
        ]
        return json_reply(200, {"quotas": {"resources": resources}})

    def _export_backup(self, req: Request, params: dict[str, str], v2: bool) -> Response:
        body = self._body(req)
        backup_id = body.get("backup_id")
        if not isinstance(backup_id, str) or not backup_id:
            raise GesError("GES.0001", "The parameter backup_id is invalid: it must be a non-empty string.")
        job_id = self.store.export_backup(params["graph"], backup_id, body.get("export_path"))
        return self._job_reply(job_id, v2)

    def _import_backup(self, req: Request, params: dict[str, str], v2: bool) -> Response:
        body = self._body(req)
        return self._job_reply(self.store.import_backup(params["graph"], body.get("import_path")), v2)

    def _backup_files(self, req: Request, params: dict[str, str], v2: bool) -> Response:
        backup_id = dict(parse_qsl(req.query)).get("backup_id")
        host = req.headers.get("host")
        base = f"http://{host}" if host else self.base_url
        return json_reply(200, self.store.backup_files(params["graph"], backup_id, base))


def _graph(graph: dict[str, Any], v2: bool) -> dict[str, Any]:
    return snake_view(graph) if v2 else graph


def _job(job: dict[str, Any], v2: bool) -> dict[str, Any]:
    return snake_view(job) if v2 else job
