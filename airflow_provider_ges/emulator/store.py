"""The emulator's state: graphs, backups, jobs, tokens and counters, behind one lock.

Backups keep insertion order (generated data oldest first; new backups go last), and each one's JSON
is cached until it changes. Scheduled status changes are applied lazily, on the next access after
they fall due, with the end time they would have had.
"""

from __future__ import annotations

import copy
import json
import math
import random
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from .data import (
    BACKUP_STATUSES,
    DELETED_GRAPH_STATUS,
    RUNNING_GRAPH_STATUS,
    WireDict,
    format_utc,
    make_backup,
    new_id,
    random_size,
    set_status,
)
from .faults import FAULT_KINDS

ENDPOINTS = (
    "create_token",
    "list_backups",
    "list_graph_backups",
    "list_graphs",
    "create_backup",
    "delete_backup",
    "show_job",
)
COUNTERS = (
    "requests",
    *ENDPOINTS,
    "not_found",
    "tokens_issued",
    "auth_failures",
    "faults_injected",
    *(f"fault_{kind}" for kind in FAULT_KINDS),
)
_JOB_STATUS = {"backing_up": "running", "success": "success", "failed": "failed"}
_MAX_CACHED_PAGES = 1024
_TOKEN_BYTES = 1536  # about 2 KB of text, the order of a real IAM token


class GesError(Exception):
    """A GES error reply: ``{"errorCode": code, "errorMessage": message}`` with HTTP ``status``."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.status = code, message, status


class TokenError(LookupError):
    """A token that is unknown or expired; the message is the gateway's reason."""


@dataclass
class _Job:
    job_id: str
    graph_id: str
    backup_id: str
    begin_ms: int
    status: str = "running"
    end_ms: int | None = None
    fail_reason: str | None = None


def _now_ms() -> int:
    return int(time.time() * 1000)


class Store:
    """Thread-safe state. Reads return copies; callers never hold references into the store."""

    def __init__(
        self,
        graphs: Iterable[WireDict],
        backups: Iterable[WireDict],
        *,
        seed: int = 0,
        backup_duration: float = 5.0,
        backup_outcome: str = "success",
        token_ttl: float = 86_400.0,
    ) -> None:
        self.backup_duration = backup_duration
        self.backup_outcome = backup_outcome
        self.token_ttl = token_ttl
        self._lock = threading.RLock()
        self._rng = random.Random(seed + 1)
        self._graphs: dict[str, WireDict] = {}
        self._backups: dict[str, WireDict] = {}
        self._ids: list[str] = []
        self._ids_by_graph: dict[str, list[str]] = {}
        self._blobs: dict[str, bytes] = {}
        self._pages: dict[tuple[str | None, int, int], tuple[int, bytes]] = {}
        self._pending: dict[str, tuple[float, str]] = {}
        self._next_due = math.inf
        self._jobs: dict[str, _Job] = {}
        self._tokens: dict[str, tuple[str, float]] = {}
        self._counters = dict.fromkeys(COUNTERS, 0)
        for graph in graphs:
            self.add_graph(graph)
        for backup in backups:
            self.add_backup(backup)

    # --- counters ---------------------------------------------------------------------------------

    def count(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._counters[key] = self._counters.get(key, 0) + 1

    def counters(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counters)

    def reset_counters(self) -> None:
        with self._lock:
            self._counters = dict.fromkeys(COUNTERS, 0)

    # --- graphs -----------------------------------------------------------------------------------

    def add_graph(self, graph: WireDict) -> WireDict:
        with self._lock:
            if graph["id"] in self._graphs:
                raise ValueError(f"graph {graph['id']!r} already exists")
            self._graphs[graph["id"]] = copy.deepcopy(graph)
            self._ids_by_graph.setdefault(graph["id"], [])
            return copy.deepcopy(graph)

    def find_graph(self, id_or_name: str) -> WireDict | None:
        """A copy of the graph with this ID, else of the live one with this name (else a deleted one)."""
        with self._lock:
            named = [g for g in self._graphs.values() if g["name"] == id_or_name]
            live = [g for g in named if g["status"] != DELETED_GRAPH_STATUS]
            graph = self._graphs.get(id_or_name) or next(iter(live + named), None)
            return copy.deepcopy(graph)

    def delete_graph(self, graph_id: str) -> None:
        """Delete a graph: it leaves the graph list, its own listing answers GES.7000, and its
        backups stay in the project's listing with ``graphStatus`` "400", as GES keeps them."""
        with self._lock:
            self._live_graph(graph_id)["status"] = DELETED_GRAPH_STATUS
            for backup_id in self._ids_by_graph[graph_id]:
                self._backups[backup_id]["graphStatus"] = DELETED_GRAPH_STATUS
                self._changed(backup_id)

    def live_graphs(self) -> list[WireDict]:
        """Copies of the graphs that are not deleted, in insertion order."""
        with self._lock:
            return [copy.deepcopy(g) for g in self._graphs.values() if g["status"] != DELETED_GRAPH_STATUS]

    def _live_graph(self, graph_id: str) -> WireDict:
        graph = self._graphs.get(graph_id)
        if graph is None or graph["status"] == DELETED_GRAPH_STATUS:
            raise GesError("GES.7000", "The graph does not exist or has been deleted.")
        return graph

    def require_live_graph(self, graph_id: str) -> None:
        with self._lock:
            self._live_graph(graph_id)

    # --- backups ----------------------------------------------------------------------------------

    def add_backup(self, backup: WireDict) -> WireDict:
        with self._lock:
            self._apply_due()
            backup_id, graph_id = backup["id"], backup["graphId"]
            if backup_id in self._backups:
                raise ValueError(f"backup {backup_id!r} already exists")
            if graph_id not in self._graphs:
                raise ValueError(f"backup {backup_id!r} belongs to unknown graph {graph_id!r}")
            self._backups[backup_id] = copy.deepcopy(backup)
            self._pages.clear()
            self._ids.append(backup_id)
            self._ids_by_graph[graph_id].append(backup_id)
            return copy.deepcopy(backup)

    def backups(self, graph_id: str | None = None) -> list[WireDict]:
        with self._lock:
            self._apply_due()
            return [copy.deepcopy(self._backups[i]) for i in self._scope(graph_id)]

    def backup(self, backup_id: str) -> WireDict:
        with self._lock:
            self._apply_due()
            return copy.deepcopy(self._get_backup(backup_id))

    def backup_page(self, graph_id: str | None, offset: int, limit: int) -> tuple[int, bytes]:
        """The total and the comma-joined JSON of the backups at ``[offset, offset + limit)``."""
        key = (graph_id, offset, limit)
        with self._lock:
            self._apply_due()
            page = self._pages.get(key)
            if page is None:
                ids = self._scope(graph_id)
                page = len(ids), b",".join(self._blob(i) for i in ids[offset : offset + limit])
                if len(self._pages) >= _MAX_CACHED_PAGES:
                    self._pages.clear()
                self._pages[key] = page
            return page

    def set_backup_status(self, backup_id: str, status: str) -> WireDict:
        """Change a backup's status now; this cancels a scheduled change of it."""
        with self._lock:
            self._apply_due()
            self._get_backup(backup_id)
            self._pending.pop(backup_id, None)
            self._set_status(backup_id, status, _now_ms())
            return copy.deepcopy(self._backups[backup_id])

    def set_backup_status_later(self, backup_id: str, status: str, seconds: float) -> None:
        """Schedule a status change (replacing any scheduled one)."""
        with self._lock:
            self._apply_due()
            self._get_backup(backup_id)
            if status not in BACKUP_STATUSES:
                raise ValueError(f"backup status must be one of {BACKUP_STATUSES}, not {status!r}")
            due = time.monotonic() + seconds
            self._pending[backup_id] = (due, status)
            self._next_due = min(self._next_due, due)

    def remove_backup(self, backup_id: str) -> None:
        with self._lock:
            self._apply_due()
            backup = self._get_backup(backup_id)
            del self._backups[backup_id]
            self._ids.remove(backup_id)
            self._ids_by_graph[backup["graphId"]].remove(backup_id)
            self._changed(backup_id)
            self._pending.pop(backup_id, None)
            for job in self._jobs.values():
                if job.backup_id == backup_id and job.status == "running":
                    job.status, job.end_ms, job.fail_reason = "failed", _now_ms(), "The backup was deleted."

    def delete_backup(self, graph_id: str, backup_id: str) -> None:
        """The API's delete: the graph must be known (deleted graphs too, backups outlive them)."""
        with self._lock:
            if graph_id not in self._graphs:
                raise GesError("GES.7000", "The graph does not exist or has been deleted.")
            backup = self._backups.get(backup_id)
            if backup is None or backup["graphId"] != graph_id:
                raise GesError("GES.7024", "The backup does not exist.")
            self.remove_backup(backup_id)

    def create_backup(self, graph_id: str) -> str:
        """Start a manual backup of a running graph; return the job ID."""
        with self._lock:
            self._apply_due()
            graph = self._live_graph(graph_id)
            if graph["status"] != RUNNING_GRAPH_STATUS:
                raise GesError("GES.7001", "The graph is not running.")
            if any(self._backups[i]["status"] == "backing_up" for i in self._ids_by_graph[graph_id]):
                raise GesError("GES.7002", "The graph is being backed up.")
            start_ms = _now_ms()
            backup = make_backup(
                graph, backup_id=new_id(), method="manual", status="backing_up", start_ms=start_ms
            )
            self.add_backup(backup)
            self.set_backup_status_later(backup["id"], self.backup_outcome, self.backup_duration)
            job = _Job(new_id(), graph_id, backup["id"], start_ms)
            self._jobs[job.job_id] = job
            return job.job_id

    def job(self, graph_id: str, job_id: str) -> WireDict:
        """The job-status reply for a backup job."""
        with self._lock:
            self._apply_due()
            graph = self._live_graph(graph_id)
            job = self._jobs.get(job_id)
            if job is None or job.graph_id != graph_id:
                raise GesError("GES.8301", "The job does not exist.")
            done = job.status != "running"
            return {
                "jobId": job.job_id,
                "status": job.status,
                "jobType": "GraphManagement",
                "jobName": "BackupGraph",
                "relatedGraph": graph["name"],
                "beginTime": format_utc(job.begin_ms),
                "endTime": format_utc(job.end_ms) if job.end_ms is not None else None,
                "jobDetail": None,
                "failReason": job.fail_reason,
                "jobProgress": 1.0 if done else 0.0,
            }

    def _scope(self, graph_id: str | None) -> list[str]:
        return self._ids if graph_id is None else self._ids_by_graph.get(graph_id, [])

    def _get_backup(self, backup_id: str) -> WireDict:
        try:
            return self._backups[backup_id]
        except KeyError:
            raise KeyError(f"no backup {backup_id!r}") from None

    def _blob(self, backup_id: str) -> bytes:
        blob = self._blobs.get(backup_id)
        if blob is None:
            blob = json.dumps(self._backups[backup_id], separators=(",", ":"), ensure_ascii=False).encode()
            self._blobs[backup_id] = blob
        return blob

    def _changed(self, backup_id: str) -> None:
        self._blobs.pop(backup_id, None)
        self._pages.clear()

    def _set_status(self, backup_id: str, status: str, end_ms: int) -> None:
        backup = self._backups[backup_id]
        if backup["status"] == status:
            return
        set_status(backup, status, end_ms=end_ms, size=random_size(self._rng))
        self._changed(backup_id)
        for job in self._jobs.values():
            if job.backup_id == backup_id:
                job.status = _JOB_STATUS[status]
                job.end_ms = None if status == "backing_up" else backup["endTimestamp"]
                job.fail_reason = "Backing up the graph failed." if status == "failed" else None

    def _apply_due(self) -> None:
        now = time.monotonic()
        if self._next_due > now:
            return
        now_ms = _now_ms()
        for backup_id, (due, status) in list(self._pending.items()):
            if due <= now:
                del self._pending[backup_id]
                self._set_status(backup_id, status, now_ms - int((now - due) * 1000))
        self._next_due = min((due for due, _ in self._pending.values()), default=math.inf)

    # --- tokens -----------------------------------------------------------------------------------

    def issue_token(self, project_id: str) -> tuple[str, float, float]:
        """A new token for ``project_id``: ``(token, issued_at, expires_at)`` as epoch seconds."""
        token = "MII" + secrets.token_urlsafe(_TOKEN_BYTES)
        issued = time.time()
        with self._lock:
            self._tokens[token] = (project_id, time.monotonic() + self.token_ttl)
            self._counters["tokens_issued"] += 1
        return token, issued, issued + self.token_ttl

    def token_project(self, token: str) -> str:
        """The project a valid token is scoped to; :class:`TokenError` if unknown or expired."""
        with self._lock:
            entry = self._tokens.get(token)
        if entry is None:
            raise TokenError("decrypt token fail")
        if entry[1] <= time.monotonic():
            raise TokenError("token expires")
        return entry[0]

    def tokens(self) -> list[str]:
        """Every token issued so far (expired ones too), oldest first."""
        with self._lock:
            return list(self._tokens)

    def expire_tokens(self) -> None:
        """Make every token issued so far expired."""
        with self._lock:
            self._tokens = {token: (project, 0.0) for token, (project, _) in self._tokens.items()}
