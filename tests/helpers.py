"""Builders of wire-format replies for requests-mock tests."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from tests.conftest import IAM, PROJECT, TOKEN

BACKUPS_URL = f"https://ges.cn-north-4.myhuaweicloud.com/v1.0/{PROJECT}/graphs/backups"
GRAPHS_URL = BACKUPS_URL.removesuffix("/backups")
TOKEN_URL = f"{IAM}/v3/auth/tokens"


def graph_backups_url(graph_id: str) -> str:
    return f"{GRAPHS_URL}/{graph_id}/backups"


def serve_project(requests_mock: Any, backups: list[dict[str, Any]]) -> None:
    """Serve ``backups`` through every listing: the project's, each graph's, and the graph list."""
    graphs = {b["graphId"]: b["graph_name"] for b in backups}
    graphs.setdefault("id-g1", "g1")
    requests_mock.get(BACKUPS_URL, json=paged(backups))
    requests_mock.get(
        GRAPHS_URL,
        json={
            "graphCount": len(graphs),
            "graphs": [{"id": graph_id, "name": name, "status": "200"} for graph_id, name in graphs.items()],
        },
    )
    for graph_id in graphs:
        own = [b for b in backups if b["graphId"] == graph_id]
        requests_mock.get(graph_backups_url(graph_id), json=paged(own))


def backup(
    n: int, *, graph: str = "g1", status: str = "success", method: str = "manual", start_ms: int | None = None
) -> dict[str, Any]:
    start = 1_700_000_000_000 + n * 60_000 if start_ms is None else start_ms
    return {
        "id": f"b-{n:05d}",
        "name": f"{graph}-{n}",
        "backupMethod": method,
        "graphId": f"id-{graph}",
        "graph_name": graph,
        "graphStatus": "200",
        "status": status,
        "startTimestamp": start,
        "endTimestamp": start + 30_000,
        "size": 1,
        "duration": 30,
        "encrypted": False,
    }


def token_reply(token: str = TOKEN, *, ttl: timedelta = timedelta(hours=24)) -> dict[str, Any]:
    expires = (datetime.now(timezone.utc) + ttl).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "status_code": 201,
        "headers": {"X-Subject-Token": token},
        "json": {"token": {"expires_at": expires, "methods": ["password"]}},
    }


def paged(backups: list[dict[str, Any]], *, count: int | None = None, ignore_offset: bool = False) -> Any:
    """A requests-mock callback serving ``backups`` with offset/limit like GES."""

    def reply(request: Any, context: Any) -> dict[str, Any]:
        offset = 0 if ignore_offset else int(request.qs.get("offset", ["0"])[0])
        limit = int(request.qs.get("limit", ["10"])[0])
        total = len(backups) if count is None else count
        return {"backupCount": total, "backupList": backups[offset : offset + limit]}

    return reply


def list_calls(emu: Any) -> int:
    """Every list call the emulator served (faulted or not): backups, one graph's backups, graphs."""
    return sum(emu.counters[kind] for kind in ("list_backups", "list_graph_backups", "list_graphs"))
