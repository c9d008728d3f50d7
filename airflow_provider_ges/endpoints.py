"""Every GES and IAM call as a ``Request``: method, endpoint, path and body, built in one place."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
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

    @property
    def url(self) -> str:
        """The URL exactly as sent (and, with AK/SK, as signed), query included."""
        query = urlencode(self.params)
        return f"{self.base_url}{self.path}?{query}" if query else self.base_url + self.path

    @property
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


def list_graphs_request(config: GesConnectionConfig, offset: int, limit: int) -> Request:
    """``GET /v1.0/{project_id}/graphs?offset=&limit=``."""
    project = check_path_param("project_id", config.project_id)
    return Request("GET", config.endpoint, f"/v1.0/{project}/graphs", {"offset": offset, "limit": limit})


def list_backups_request(
    config: GesConnectionConfig, graph_id: str | None, offset: int, limit: int
) -> Request:
    """``GET /v1.0/{project_id}/graphs[/{graph_id}]/backups?offset=&limit=``."""
    project = check_path_param("project_id", config.project_id)
    graph = "" if graph_id is None else "/" + check_path_param("graph_id", graph_id)
    path = f"/v1.0/{project}/graphs{graph}/backups"
    return Request("GET", config.endpoint, path, {"offset": offset, "limit": limit})
