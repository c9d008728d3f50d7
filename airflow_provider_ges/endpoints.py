"""Every GES and IAM call as a ``Request``: method, endpoint, path and body, built in one place."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import urlencode

from airflow_provider_ges.connection import GesConnectionConfig

_SAFE_PATH_PARAM = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")


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

    @cached_property
    def url(self) -> str:
        """The URL exactly as sent (and, with AK/SK, as signed), query included."""
        query = urlencode(self.params)
        return f"{self.base_url}{self.path}?{query}" if query else self.base_url + self.path

    @cached_property
    def body(self) -> bytes:
        return b"" if self.json_body is None else json.dumps(self.json_body).encode()

    @property
    def content_headers(self) -> dict[str, str]:
        """The headers the body needs (auth headers come separately, in ``Send.auth_headers``)."""
        return {"Content-Type": "application/json"} if self.json_body is not None else {}


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


#: The path prefix of each API version.
_PREFIX = {"v1": "/v1.0", "v2": "/v2"}


def _graphs_path(config: GesConnectionConfig, version: str | None = None) -> str:
    """``/v1.0/{project_id}/graphs`` or ``/v2/{project_id}/graphs`` (the connection's ``api_version``,
    unless a v2-only call asks for ``version``)."""
    project = check_path_param("project_id", config.project_id)
    return f"{_PREFIX[version or config.api_version]}/{project}/graphs"


def _graph_path(config: GesConnectionConfig, graph_id: str, version: str | None = None) -> str:
    return f"{_graphs_path(config, version)}/{check_path_param('graph_id', graph_id)}"


def list_graphs_request(config: GesConnectionConfig, offset: int, limit: int) -> Request:
    """``GET /{v}/{project_id}/graphs?offset=&limit=``."""
    return Request("GET", config.endpoint, _graphs_path(config), {"offset": offset, "limit": limit})


def list_backups_request(
    config: GesConnectionConfig, graph_id: str | None, offset: int, limit: int
) -> Request:
    """``GET /{v}/{project_id}/graphs[/{graph_id}]/backups?offset=&limit=``."""
    path = _graphs_path(config) if graph_id is None else _graph_path(config, graph_id)
    return Request("GET", config.endpoint, path + "/backups", {"offset": offset, "limit": limit})


def list_jobs_request(
    config: GesConnectionConfig, graph_name: str | None, offset: int, limit: int
) -> Request:
    """``GET /{v}/{project_id}/graphs/jobs?graph_name=&offset=&limit=`` (every job type of the project)."""
    params: dict[str, str | int] = {"offset": offset, "limit": limit}
    if graph_name:
        params["graph_name"] = graph_name
    return Request("GET", config.endpoint, _graphs_path(config) + "/jobs", params)


def show_graph_request(config: GesConnectionConfig, graph_id: str) -> Request:
    """``GET /{v}/{project_id}/graphs/{graph_id}``."""
    return Request("GET", config.endpoint, _graph_path(config, graph_id))


def create_backup_request(config: GesConnectionConfig, graph_id: str) -> Request:
    """``POST /{v}/{project_id}/graphs/{graph_id}/backups`` (no body) -> ``{"jobId"}`` (v2: ``job_id``)."""
    return Request("POST", config.endpoint, _graph_path(config, graph_id) + "/backups")


def delete_backup_request(config: GesConnectionConfig, graph_id: str, backup_id: str) -> Request:
    """``DELETE /{v}/{project_id}/graphs/{graph_id}/backups/{backup_id}``."""
    backup = check_path_param("backup_id", backup_id)
    return Request("DELETE", config.endpoint, f"{_graph_path(config, graph_id)}/backups/{backup}")


def job_status_request(config: GesConnectionConfig, graph_id: str, job_id: str) -> Request:
    """``GET /{v}/{project_id}/graphs/{graph_id}/jobs/{job_id}/status``."""
    job = check_path_param("job_id", job_id)
    return Request("GET", config.endpoint, f"{_graph_path(config, graph_id)}/jobs/{job}/status")


def graph_action_request(
    config: GesConnectionConfig, graph_id: str, action: str, backup_id: str | None = None
) -> Request:
    """Stop or start a graph -> ``{"jobId"}``: v1 ``POST .../graphs/{graph_id}/action?action_id=stop|start``,
    v2 ``POST .../graphs/{graph_id}/stop|start``.

    A start with ``backup_id`` sends the SDK's ``StartGraphReq`` body ``{"graph_backup_id": ...}``:
    the graph then starts from that backup (GES's restore). Stop, and a plain start, send no body.
    """
    if action not in ("start", "stop"):
        raise ValueError(f"action must be 'start' or 'stop', got {action!r}")
    if backup_id is not None and action != "start":
        raise ValueError("only a start can name a backup")
    body = None if backup_id is None else {"graph_backup_id": check_path_param("backup_id", backup_id)}
    path = _graph_path(config, graph_id)
    if config.api_version == "v2":
        return Request("POST", config.endpoint, f"{path}/{action}", {}, body)
    return Request("POST", config.endpoint, path + "/action", {"action_id": action}, body)


# --- v2 only: whatever ``api_version`` says ------------------------------------------------------


def export_backup_request(
    config: GesConnectionConfig, graph_id: str, backup_id: str, export_path: str
) -> Request:
    """``POST /v2/{project_id}/graphs/{graph_id}/backups/export`` ``{backup_id, export_path}``
    -> ``{job_id}``."""
    body = {"backup_id": check_path_param("backup_id", backup_id), "export_path": export_path}
    return Request("POST", config.endpoint, _graph_path(config, graph_id, "v2") + "/backups/export", {}, body)


def import_backup_request(config: GesConnectionConfig, graph_id: str, import_path: str) -> Request:
    """``POST /v2/{project_id}/graphs/{graph_id}/backups/import`` ``{import_path}`` -> ``{job_id}``."""
    path = _graph_path(config, graph_id, "v2") + "/backups/import"
    return Request("POST", config.endpoint, path, {}, {"import_path": import_path})


def backup_files_request(config: GesConnectionConfig, graph_id: str, backup_id: str) -> Request:
    """``GET /v2/{project_id}/graphs/{graph_id}/backup-files?backup_id=`` -> ``{bucket, files}``."""
    params = {"backup_id": check_path_param("backup_id", backup_id)}
    return Request("GET", config.endpoint, _graph_path(config, graph_id, "v2") + "/backup-files", params)


def quotas_request(config: GesConnectionConfig) -> Request:
    """``GET /v2/{project_id}/graphs/quotas`` -> ``{"quotas": {"resources": [{type, available}]}}``."""
    return Request("GET", config.endpoint, _graphs_path(config, "v2") + "/quotas")
