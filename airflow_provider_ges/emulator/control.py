"""The control API: steer a running emulator over HTTP, from another process.

Served under ``/__emulator__/`` (a path no real GES uses) only by an emulator started with
``control=True`` (CLI ``--control``) and only to loopback clients, else 403 (see :mod:`.api`). No
token, no faults, not counted. Bodies and replies are JSON; errors are ``{"error": message}``
(400 bad request, 404 unknown graph, backup or call). Graphs are named by ID or name.

- ``GET stats`` -> the counters
- ``GET graphs`` -> the live graphs; ``GET backups?graph=&status=`` -> the backups (of that graph, ID or
  name; with that status) in list order
- ``POST graphs`` ``{name?, graph_id?, status?}`` -> the graph
- ``DELETE graphs/{graph}`` -> ``{"id": ...}``
- ``PUT graphs/{graph}/status`` ``{status, then?, after?}`` -> the graph (see ``set_graph_status``)
- ``POST backups`` ``{graph, status?, method?, start?, duration?, size?, backup_id?}`` -> the
  backup (``start``: ISO 8601, UTC unless it has a zone, or epoch ms; default now, and then
  ``duration`` defaults to 0, not 60: a finished backup added now also ends now)
- ``PUT backups/{backup_id}/status`` ``{status}`` -> the backup
- ``PUT faults`` ``{spec}`` (the ``--faults`` syntax; "" for none) -> ``{spec}``
- ``POST fail-next-job`` ``{graph?, reason?}`` -> ``{graph_id, reason}``
- ``GET settings``, ``PUT settings`` ``{job_wait_state?, job_pending?, graph_action_duration?,
  backup_duration?}`` -> the settings, after the change
- ``GET backup-settings``, ``PUT backup-settings`` ``{export_duration?, import_duration?, link_ttl?,
  backup_quota?, project_backup_quota?}`` (a quota given as null: no quota) -> those settings, after
  the change
- ``GET exports`` -> ``[{backup_id, path}]``, oldest first (see ``GesEmulator.exports``)
- ``POST exports`` ``{path, backup_id?}`` -> ``{backup_id, path}`` (see ``GesEmulator.add_export``)
- ``POST expire-links`` -> ``{"expired": n}``: every download link issued so far expires
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

from .api import CONTROL_PREFIX, Request, Response, json_reply
from .data import BACKUP_STATUSES
from .store import GesError

if TYPE_CHECKING:
    from .server import GesEmulator

#: The emulator settings ``PUT settings`` changes, and their JSON types (numbers: seconds, >= 0).
#: ``job_wait_state`` comes first: its setter is the one check left, so a refusal changes nothing.
SETTINGS: dict[str, type | tuple[type, ...]] = {
    "job_wait_state": str,
    "job_pending": (int, float),
    "graph_action_duration": (int, float),
    "backup_duration": (int, float),
}
#: The settings ``PUT backup-settings`` changes (numbers: seconds, >= 0; quotas: int >= 0 or null).
BACKUP_SETTINGS: dict[str, type | tuple[type, ...]] = {
    "export_duration": (int, float),
    "import_duration": (int, float),
    "link_ttl": (int, float),
    "backup_quota": int,
    "project_backup_quota": int,
}
#: The backup settings that take null ("no quota").
NULLABLE_SETTINGS = frozenset({"backup_quota", "project_backup_quota"})


class ControlError(Exception):
    """A refused control call: ``{"error": message}`` with HTTP ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _field(body: dict[str, Any], name: str, kind: type | tuple[type, ...] = str, default: Any = None) -> Any:
    """``body[name]`` checked against ``kind``; ``default`` when absent (``...``: required)."""
    value = body.get(name)
    if value is None:
        if default is ...:
            raise ControlError(400, f"field {name!r} is required")
        return default
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ControlError(400, f"field {name!r} has the wrong type")
    return value


def parse_time(value: str | float) -> datetime:
    """An ISO 8601 time (no zone: UTC; ``Z`` allowed) or epoch milliseconds."""
    if not isinstance(value, str):
        return datetime.fromtimestamp(value / 1000, timezone.utc)
    try:
        moment = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    except ValueError:
        raise ControlError(400, f"field 'start' is not an ISO 8601 time: {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class Control:
    """Serves the control calls of one emulator."""

    def __init__(self, emu: GesEmulator) -> None:
        self.emu = emu
        handlers: tuple[tuple[str, str, Callable[[dict[str, Any], dict[str, str]], Any]], ...] = (
            ("GET", r"stats", lambda body, p: emu.counters),
            ("GET", r"graphs", lambda body, p: emu.graphs()),
            ("GET", r"backups", self._backups),
            ("POST", r"graphs", self._add_graph),
            ("DELETE", r"graphs/(?P<graph>[^/]+)", self._delete_graph),
            ("PUT", r"graphs/(?P<graph>[^/]+)/status", self._set_graph_status),
            ("POST", r"backups", self._add_backup),
            ("PUT", r"backups/(?P<backup>[^/]+)/status", self._set_status),
            ("PUT", r"faults", self._set_faults),
            ("POST", r"fail-next-job", self._fail_next_job),
            ("GET", r"settings", lambda body, p: self._settings({}, p)),
            ("PUT", r"settings", self._settings),
            ("GET", r"backup-settings", lambda body, p: self._backup_settings({}, p)),
            ("PUT", r"backup-settings", self._backup_settings),
            ("GET", r"exports", lambda body, p: [{"backup_id": b, "path": path} for b, path in emu.exports]),
            ("POST", r"exports", self._add_export),
            ("POST", r"expire-links", lambda body, p: {"expired": emu.expire_links()}),
        )
        self._routes = [
            (method, re.compile(f"{CONTROL_PREFIX}/{path}/?"), run) for method, path, run in handlers
        ]

    def handle(self, req: Request) -> Response:
        for method, pattern, run in self._routes:
            match = pattern.fullmatch(req.path)
            if match and req.method == method:
                params = {key: unquote(value) for key, value in match.groupdict().items()}
                try:
                    body = dict(parse_qsl(req.query)) if req.method == "GET" else self._body(req)
                    return json_reply(200, run(body, params))
                except ControlError as exc:
                    return json_reply(exc.status, {"error": str(exc)})
                except (GesError, ValueError) as exc:
                    return json_reply(400, {"error": getattr(exc, "message", str(exc))})
        return json_reply(404, {"error": f"unknown control call {req.method} {req.path}"})

    @staticmethod
    def _body(req: Request) -> dict[str, Any]:
        if not req.body.strip():
            return {}
        try:
            body = json.loads(req.body)
        except ValueError:
            raise ControlError(400, "the body is not JSON") from None
        if not isinstance(body, dict):
            raise ControlError(400, "the body must be a JSON object")
        return body

    def _graph_id(self, graph: str) -> str:
        found = self.emu.find_graph(graph)
        if found is None:
            raise ControlError(404, f"no graph {graph!r}")
        return str(found["id"])

    def _add_graph(self, body: dict[str, Any], params: dict[str, str]) -> Any:
        name, graph_id = _field(body, "name"), _field(body, "graph_id")
        return self.emu.add_graph(name, graph_id=graph_id, status=_field(body, "status", default="200"))

    def _delete_graph(self, body: dict[str, Any], params: dict[str, str]) -> Any:
        graph_id = self._graph_id(params["graph"])
        self.emu.delete_graph(graph_id)
        return {"id": graph_id}

    def _set_graph_status(self, body: dict[str, Any], params: dict[str, str]) -> Any:
        return self.emu.set_graph_status(
            self._graph_id(params["graph"]),
            _field(body, "status", default=...),
            then=_field(body, "then"),
            after=_field(body, "after", (int, float), 0.0),
        )

    def _backups(self, body: dict[str, Any], params: dict[str, str]) -> Any:
        graph, status = _field(body, "graph"), _field(body, "status")
        if status is not None and status not in BACKUP_STATUSES:
            raise ControlError(
                400, f"field 'status' is {status!r}, expected one of {', '.join(BACKUP_STATUSES)}"
            )
        backups = self.emu.backups(None if graph is None else self._graph_id(graph))
        return [b for b in backups if status is None or b["status"] == status]

    def _add_backup(self, body: dict[str, Any], params: dict[str, str]) -> Any:
        graph_id = self._graph_id(_field(body, "graph", default=...))
        start = _field(body, "start", (str, int, float))
        return self.emu.add_backup(
            graph_id,
            status=_field(body, "status", default="success"),
            method=_field(body, "method", default="manual"),
            start=datetime.now(timezone.utc) if start is None else parse_time(start),
            duration=_field(body, "duration", int, 0 if start is None else 60),
            size=_field(body, "size", int, 128),
            backup_id=_field(body, "backup_id"),
        )

    def _set_status(self, body: dict[str, Any], params: dict[str, str]) -> Any:
        try:
            return self.emu.set_backup_status(params["backup"], _field(body, "status", default=...))
        except KeyError:
            raise ControlError(404, f"no backup {params['backup']!r}") from None

    def _set_faults(self, body: dict[str, Any], params: dict[str, str]) -> Any:
        spec = _field(body, "spec", default="")
        self.emu.set_faults(spec or None)
        return {"spec": spec}

    def _fail_next_job(self, body: dict[str, Any], params: dict[str, str]) -> Any:
        graph = _field(body, "graph")
        graph_id = None if graph is None else self._graph_id(graph)
        reason = _field(body, "reason")
        self.emu.fail_next_job(graph_id, reason)
        return {"graph_id": graph_id, "reason": reason}

    def _settings(self, body: dict[str, Any], params: dict[str, str]) -> Any:
        unknown = sorted(set(body) - set(SETTINGS))
        if unknown:
            raise ControlError(400, f"unknown setting {unknown[0]!r}; known: {', '.join(SETTINGS)}")
        changes = {
            name: _field(body, name, kind) for name, kind in SETTINGS.items() if body.get(name) is not None
        }
        for name, value in changes.items():
            if not isinstance(value, str) and value < 0:
                raise ControlError(400, f"field {name!r} must not be negative")
        for name, value in changes.items():
            setattr(self.emu, name, value)
        return {name: getattr(self.emu, name) for name in SETTINGS}

    def _backup_settings(self, body: dict[str, Any], params: dict[str, str]) -> Any:
        unknown = sorted(set(body) - set(BACKUP_SETTINGS))
        if unknown:
            raise ControlError(400, f"unknown setting {unknown[0]!r}; known: {', '.join(BACKUP_SETTINGS)}")
        changes = {}
        for name, kind in BACKUP_SETTINGS.items():
            if name not in body or (body[name] is None and name not in NULLABLE_SETTINGS):
                continue
            value = _field(body, name, kind)
            if value is not None and value < 0:
                raise ControlError(400, f"field {name!r} must not be negative")
            changes[name] = value
        for name, value in changes.items():
            setattr(self.emu, name, value)
        return {name: getattr(self.emu, name) for name in BACKUP_SETTINGS}

    def _add_export(self, body: dict[str, Any], params: dict[str, str]) -> Any:
        backup_id = _field(body, "backup_id")
        try:
            path = self.emu.add_export(_field(body, "path", default=...), backup_id)
        except KeyError:
            raise ControlError(404, f"no backup {backup_id!r}") from None
        return {"backup_id": backup_id, "path": path}
