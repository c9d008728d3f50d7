"""The emulator's state: graphs, backups, jobs, tokens and counters, behind one lock.

Backups keep insertion order (generated data oldest first; new backups go last), and each one's JSON
is cached until it changes. Scheduled changes (a backup ending, a graph finishing a stop or start)
are applied lazily, on the next access after they fall due, with the end time they would have had.

Graph states: a graph shows 903 (backing up) while one of its backups is ``backing_up`` (it is
stored as 200); stop moves 200 -> 901 -> 900 and start 900 -> 920 -> 200, each taking
``graph_action_duration``. A failed stop leaves the graph running (200), a failed start stopped (900).
:meth:`Store.set_graph_status` sets any other status (e.g. 206 scaling out), optionally for a while.

Both API versions read and change this one state (v2 replies are snake_case views, see :mod:`.v2`).
v2's export job copies a successful backup to an OBS path (:meth:`Store.exports`); its import job
adds a backup (``backupMethod`` "import", ``backing_up`` while it runs, so the graph shows 903) with
the exported backup's times. Download links are random tokens valid ``link_ttl`` seconds.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .data import (
    BACKING_UP_GRAPH_STATUS,
    BACKUP_STATUSES,
    DELETED_GRAPH_STATUS,
    RUNNING_GRAPH_STATUS,
    STARTING_GRAPH_STATUS,
    STOPPED_GRAPH_STATUS,
    STOPPING_GRAPH_STATUS,
    WireDict,
    format_utc,
    make_backup,
    new_id,
    random_size,
    set_status,
)
from .errors import GesError as GesError
from .faults import FAULT_KINDS
from .v2 import obs_path, snake_view

ENDPOINTS = (
    "create_token",
    "list_backups",
    "list_graph_backups",
    "list_graphs",
    "create_backup",
    "delete_backup",
    "show_job",
    "list_jobs",
    "show_graph",
    "graph_action",
    "list_quotas",
    "export_backup",
    "import_backup",
    "show_backup_files",
)
COUNTERS = (
    "requests",
    "v1_requests",
    "v2_requests",
    *ENDPOINTS,
    "download_file",
    "not_found",
    "tokens_issued",
    "auth_failures",
    "faults_injected",
    "replies_lost",
    *(f"fault_{kind}" for kind in FAULT_KINDS),
)
#: What a job shows before it runs (for ``job_pending`` seconds); the SDK's ListJobs says "waiting".
JOB_WAIT_STATES = ("pending", "waiting")
_JOB_STATUS = {"backing_up": "running", "success": "success", "failed": "failed"}
#: action: (the status it starts from, the status while it runs, where it ends, the job's name)
_ACTIONS = {
    "stop": (RUNNING_GRAPH_STATUS, STOPPING_GRAPH_STATUS, STOPPED_GRAPH_STATUS, "StopGraph"),
    "start": (STOPPED_GRAPH_STATUS, STARTING_GRAPH_STATUS, RUNNING_GRAPH_STATUS, "StartGraph"),
}
GRAPH_ACTIONS = tuple(_ACTIONS)
_MAX_CACHED_PAGES = 1024
#: The bucket the backup files of ``GET /v2/.../backup-files`` are in, and the path their links use.
BACKUP_BUCKET = "ges-emulator-backups"
FILES_PREFIX = "/__files__"
#: What the quotas reply shows for a resource without a limit (GES documents -1 as "unlimited").
UNLIMITED = -1
_TOKEN_BYTES = 1536  # about 2 KB of text, the order of a real IAM token


def _refusal(action: str, status: str) -> GesError:
    """Why a graph in ``status`` cannot be stopped or started."""
    if status == BACKING_UP_GRAPH_STATUS:
        return GesError("GES.7002", "The graph is being backed up.")
    if status == STOPPING_GRAPH_STATUS or (action == "stop" and status == STOPPED_GRAPH_STATUS):
        return GesError("GES.7003", "The graph is being stopped or is stopped.")
    if action == "stop":
        return GesError("GES.7001", "The graph is not running.")
    return GesError("GES.7015", f"The graph is not stopped (status {status}).")


def _obs_error(code: str, message: str) -> bytes:
    """An OBS-style XML error body."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    ).encode()


class TokenError(LookupError):
    """A token that is unknown or expired; the message is the gateway's reason."""


@dataclass
class _Job:
    job_id: str
    graph_id: str
    name: str
    begin_ms: int
    running_at: float  # monotonic time it stops showing the wait state ("pending")
    reason: str  # its failReason, should it fail
    fails: bool = False  # a failure was injected (fail_next_job)
    status: str = "running"
    end_ms: int | None = None


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
        backup_quota: int | None = None,
        graph_action_duration: float = 0.5,
        job_pending: float = 0.0,
        job_wait_state: str = "pending",
        export_duration: float = 5.0,
        import_duration: float = 5.0,
        link_ttl: float = 300.0,
        project_backup_quota: int | None = None,
    ) -> None:
        self.backup_duration = backup_duration
        self.export_duration = export_duration
        self.import_duration = import_duration
        self.link_ttl = link_ttl
        self.project_backup_quota = project_backup_quota
        self.backup_outcome = backup_outcome
        self.token_ttl = token_ttl
        self.backup_quota = backup_quota
        self.graph_action_duration = graph_action_duration
        self.job_pending = job_pending
        self.job_wait_state = job_wait_state
        self._lock = threading.RLock()
        self._rng = random.Random(seed + 1)
        self._graphs: dict[str, WireDict] = {}
        self._backups: dict[str, WireDict] = {}
        self._ids: list[str] = []
        self._ids_by_graph: dict[str, list[str]] = {}
        self._blobs: dict[tuple[str, bool], bytes] = {}  # (backup ID, v2) -> its JSON
        self._pages: dict[tuple[str | None, int, int, bool], tuple[int, bytes]] = {}
        self._running: dict[str, set[str]] = {}  # graph ID -> its backing_up backups
        self._timers: dict[tuple[str, str], tuple[float, Callable[[int], None]]] = {}
        self._next_due = math.inf
        self._jobs: dict[str, _Job] = {}
        self._backup_jobs: dict[str, _Job] = {}
        self._failures: list[tuple[str | None, str | None]] = []
        self._restores: list[tuple[str, str]] = []
        self._exports: list[tuple[str | None, str]] = []  # (backup ID or None, path), oldest first
        self._exported: dict[str, WireDict | None] = {}  # OBS path -> the backup there (None: foreign)
        self._links: dict[str, tuple[str, str, float]] = {}  # token -> (backup ID, file, expiry)
        self._link_urls: list[str] = []
        self._tokens: dict[str, tuple[str, float]] = {}
        self._counters = dict.fromkeys(COUNTERS, 0)
        for graph in graphs:
            self.add_graph(graph)
        for backup in backups:
            self.add_backup(backup)

    @property
    def job_wait_state(self) -> str:
        """What a job shows for its first ``job_pending`` seconds: one of :data:`JOB_WAIT_STATES`."""
        return self._job_wait_state

    @job_wait_state.setter
    def job_wait_state(self, state: str) -> None:
        if state not in JOB_WAIT_STATES:
            raise ValueError(f"job_wait_state must be one of {JOB_WAIT_STATES}, not {state!r}")
        self._job_wait_state = state

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
            self._running.setdefault(graph["id"], set())
            return self._view(self._graphs[graph["id"]])

    def find_graph(self, id_or_name: str) -> WireDict | None:
        """A copy of the graph with this ID, else of the live one with this name (else a deleted one)."""
        with self._lock:
            self._apply_due()
            named = [g for g in self._graphs.values() if g["name"] == id_or_name]
            live = [g for g in named if g["status"] != DELETED_GRAPH_STATUS]
            graph = self._graphs.get(id_or_name) or next(iter(live + named), None)
            return None if graph is None else self._view(graph)

    def show_graph(self, graph_id: str) -> WireDict:
        """The graph as ``GET /graphs/{graph_id}`` shows it (unknown or deleted: GES.7000)."""
        with self._lock:
            self._apply_due()
            return self._view(self._live_graph(graph_id))

    def _view(self, graph: WireDict) -> WireDict:
        """A copy of a stored graph as the API shows it: 903 while one of its backups runs."""
        view = copy.deepcopy(graph)
        if view["status"] == RUNNING_GRAPH_STATUS and self._running[graph["id"]]:
            view["status"] = BACKING_UP_GRAPH_STATUS
        return view

    def delete_graph(self, graph_id: str) -> None:
        """Delete a graph: it leaves the graph list, its own listing answers GES.7000, and its
        backups stay in the project's listing with ``graphStatus`` "400", as GES keeps them."""
        with self._lock:
            self._live_graph(graph_id)["status"] = DELETED_GRAPH_STATUS
            for backup_id in self._ids_by_graph[graph_id]:
                self._backups[backup_id]["graphStatus"] = DELETED_GRAPH_STATUS
                self._changed(backup_id)

    def set_graph_status(
        self, graph_id: str, status: str, *, then: str | None = None, after: float = 0.0
    ) -> WireDict:
        """Set a live graph's status now and, with ``then``, change it to ``then`` ``after`` seconds
        later unless it changed meanwhile (this replaces a scheduled change); returns the graph."""
        if DELETED_GRAPH_STATUS in (status, then):
            raise ValueError("delete a graph with delete_graph, not by its status")
        if after < 0:
            raise ValueError("'after' must not be negative")
        with self._lock:
            self._apply_due()
            graph = self._live_graph(graph_id)
            graph["status"] = status
            self._timers.pop(("graph", graph_id), None)
            if then is not None:

                def change(end_ms: int) -> None:
                    if graph["status"] == status:
                        graph["status"] = then

                self._schedule(("graph", graph_id), after, change)
            return self._view(graph)

    def live_graphs(self) -> list[WireDict]:
        """Copies of the graphs that are not deleted, in insertion order."""
        with self._lock:
            self._apply_due()
            return [self._view(g) for g in self._graphs.values() if g["status"] != DELETED_GRAPH_STATUS]

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
            if backup.get("status") == "backing_up":
                self._running[graph_id].add(backup_id)
            return copy.deepcopy(backup)

    def backups(self, graph_id: str | None = None) -> list[WireDict]:
        with self._lock:
            self._apply_due()
            return [copy.deepcopy(self._backups[i]) for i in self._scope(graph_id)]

    def backup(self, backup_id: str) -> WireDict:
        with self._lock:
            self._apply_due()
            return copy.deepcopy(self._get_backup(backup_id))

    def backup_page(
        self, graph_id: str | None, offset: int, limit: int, v2: bool = False
    ) -> tuple[int, bytes]:
        """The total and the comma-joined JSON of the backups at ``[offset, offset + limit)``, in the
        v1 wire form or (``v2``) the v2 one."""
        key = (graph_id, offset, limit, v2)
        with self._lock:
            self._apply_due()
            page = self._pages.get(key)
            if page is None:
                ids = self._scope(graph_id)
                page = len(ids), b",".join(self._blob(i, v2) for i in ids[offset : offset + limit])
                if len(self._pages) >= _MAX_CACHED_PAGES:
                    self._pages.clear()
                self._pages[key] = page
            return page

    def set_backup_status(self, backup_id: str, status: str) -> WireDict:
        """Change a backup's status now; this cancels a scheduled change of it."""
        with self._lock:
            self._apply_due()
            self._get_backup(backup_id)
            self._timers.pop(("backup", backup_id), None)
            self._set_status(backup_id, status, _now_ms())
            return copy.deepcopy(self._backups[backup_id])

    def set_backup_status_later(self, backup_id: str, status: str, seconds: float) -> None:
        """Schedule a status change (replacing any scheduled one)."""
        with self._lock:
            self._apply_due()
            self._get_backup(backup_id)
            if status not in BACKUP_STATUSES:
                raise ValueError(f"backup status must be one of {BACKUP_STATUSES}, not {status!r}")
            self._schedule(
                ("backup", backup_id), seconds, lambda end_ms: self._set_status(backup_id, status, end_ms)
            )

    def remove_backup(self, backup_id: str) -> None:
        with self._lock:
            self._apply_due()
            backup = self._get_backup(backup_id)
            del self._backups[backup_id]
            self._ids.remove(backup_id)
            self._ids_by_graph[backup["graphId"]].remove(backup_id)
            self._running[backup["graphId"]].discard(backup_id)
            self._changed(backup_id)
            self._timers.pop(("backup", backup_id), None)
            job = self._backup_jobs.pop(backup_id, None)
            if job is not None and job.status == "running":
                job.status, job.end_ms, job.reason = "failed", _now_ms(), "The backup was deleted."

    def delete_backup(self, graph_id: str, backup_id: str) -> None:
        """The API's delete: the graph must be known (deleted graphs too, backups outlive them);
        a running backup is refused with GES.7002."""
        with self._lock:
            self._apply_due()
            if graph_id not in self._graphs:
                raise GesError("GES.7000", "The graph does not exist or has been deleted.")
            self._graph_backup(graph_id, backup_id)
            if backup_id in self._running[graph_id]:
                raise GesError("GES.7002", "The graph is being backed up.")
            self.remove_backup(backup_id)

    def create_backup(self, graph_id: str) -> str:
        """Start a manual backup of a running graph; return the job ID."""
        with self._lock:
            self._apply_due()
            graph = self._live_graph(graph_id)
            if self._running[graph_id]:
                raise GesError("GES.7002", "The graph is being backed up.")
            if graph["status"] != RUNNING_GRAPH_STATUS:
                raise GesError("GES.7001", "The graph is not running.")
            self._check_quota(graph_id)
            job = self._new_job(graph_id, "BackupGraph", "Backing up the graph failed.")
            backup = make_backup(
                graph, backup_id=new_id(), method="manual", status="backing_up", start_ms=job.begin_ms
            )
            self.add_backup(backup)
            self._backup_jobs[backup["id"]] = job
            outcome = "failed" if job.fails else self.backup_outcome
            self.set_backup_status_later(backup["id"], outcome, self.backup_duration)
            return job.job_id

    def graph_action(self, graph_id: str, action: str, backup_id: str | None = None) -> str:
        """Stop a running graph, or start a stopped one (from ``backup_id``, a successful backup of
        it, when given); return the job ID."""
        source, transit, target, name = _ACTIONS[action]
        with self._lock:
            self._apply_due()
            graph = self._live_graph(graph_id)
            status = self._view(graph)["status"]
            if status != source:
                raise _refusal(action, status)
            if backup_id is not None:
                backup = self._graph_backup(graph_id, backup_id)
                if backup["status"] != "success":
                    message = f"The parameter graph_backup_id is invalid: the backup is {backup['status']}."
                    raise GesError("GES.0001", message)
                self._restores.append((graph_id, backup_id))
            job = self._new_job(graph_id, name, f"{name} failed.")
            graph["status"] = transit

            def finish(end_ms: int) -> None:
                if graph["status"] == transit:  # not deleted or changed meanwhile
                    graph["status"] = source if job.fails else target
                    if backup_id is not None and not job.fails:
                        graph["restoredBackupId"] = backup_id
                job.status, job.end_ms = ("failed" if job.fails else "success"), end_ms

            self._schedule(("job", job.job_id), self.graph_action_duration, finish)
            return job.job_id

    def restores(self) -> list[tuple[str, str]]:
        """``(graph_id, backup_id)`` of every start-from-backup accepted, oldest first."""
        with self._lock:
            return list(self._restores)

    # --- quotas, exports, imports and backup files (the v2 calls) ---------------------------------

    def _check_quota(self, graph_id: str) -> None:
        """GES.7019 when a new backup of the graph would go over ``backup_quota`` (per graph) or
        ``project_backup_quota`` (the project's backups, of any graph, deleted ones' too)."""
        quota = self.backup_quota
        if quota is not None and len(self._ids_by_graph[graph_id]) >= quota:
            raise GesError("GES.7019", f"The number of backups of the graph has reached the quota ({quota}).")
        project_quota = self.project_backup_quota
        if project_quota is not None and len(self._ids) >= project_quota:
            raise GesError(
                "GES.7019", f"The number of backups of the project has reached the quota ({project_quota})."
            )

    def backup_slots(self) -> int:
        """How many more backups the project can hold: the quotas reply's ``backup`` ``available``
        (``UNLIMITED``, -1, without a quota)."""
        with self._lock:
            self._apply_due()
            limits = []
            if self.backup_quota is not None:
                quota = self.backup_quota
                live = [g for g, graph in self._graphs.items() if graph["status"] != DELETED_GRAPH_STATUS]
                limits.append(sum(max(0, quota - len(self._ids_by_graph[g])) for g in live))
            if self.project_backup_quota is not None:
                limits.append(max(0, self.project_backup_quota - len(self._ids)))
            return min(limits) if limits else UNLIMITED

    def export_backup(self, graph_id: str, backup_id: str, path: object) -> str:
        """Export a successful backup of a live graph to an OBS path; return the job ID. The job runs
        ``export_duration``; when it succeeds the path holds the backup (see :meth:`exports`)."""
        with self._lock:
            self._apply_due()
            self._live_graph(graph_id)
            path = obs_path("export_path", path)
            backup = self._graph_backup(graph_id, backup_id)
            if backup["status"] != "success":
                raise GesError(
                    "GES.0001", f"The parameter backup_id is invalid: the backup is {backup['status']}."
                )
            job = self._new_job(graph_id, "ExportBackup", "Exporting the backup failed.")

            def finish(end_ms: int) -> None:
                exported = self._backups.get(backup_id)
                if exported is None and not job.fails:
                    job.fails, job.reason = True, "The backup was deleted."
                job.status, job.end_ms = ("failed" if job.fails else "success"), end_ms
                if exported is not None and not job.fails:
                    self._exported[path] = copy.deepcopy(exported)
                    self._exports.append((backup_id, path))

            self._schedule(("job", job.job_id), self.export_duration, finish)
            return job.job_id

    def import_backup(self, graph_id: str, path: object) -> str:
        """Import the backup at an OBS path into a live graph; return the job ID. A new backup of the
        graph (``backupMethod`` "import") is listed at once as ``backing_up`` and after
        ``import_duration`` ends ``success`` with the times, size and name of the backup exported
        there (a foreign one, see :meth:`add_export`: times of now), or ``failed`` (an injected
        failure, or nothing at the path: the job's failReason names it)."""
        with self._lock:
            self._apply_due()
            graph = self._live_graph(graph_id)
            path = obs_path("import_path", path)
            if self._running[graph_id]:
                raise GesError("GES.7002", "The graph is being backed up.")
            self._check_quota(graph_id)
            job = self._new_job(graph_id, "ImportBackup", "Importing the backup failed.")
            found = path in self._exported
            source = self._exported.get(path)
            if not found:
                job.fails, job.reason = True, f"No backup was found at the OBS path '{path}'."
            backup = make_backup(
                graph, backup_id=new_id(), method="import", status="backing_up", start_ms=job.begin_ms
            )
            if source is not None and source.get("name"):
                backup["name"] = source["name"]
            backup_id = backup["id"]
            self.add_backup(backup)
            self._backup_jobs[backup_id] = job

            def finish(end_ms: int) -> None:
                if job.fails or source is None:
                    self._set_status(backup_id, "failed" if job.fails else "success", end_ms)
                    return
                start_ms = int(source.get("startTimestamp") or job.begin_ms)
                old_end = source.get("endTimestamp")
                self._backups[backup_id].update(
                    status="success",
                    startTimestamp=start_ms,
                    startTime=source.get("startTime") or format_utc(start_ms),
                    endTimestamp=old_end,
                    endTime=source.get("endTime"),
                    size=source.get("size", 0),
                    duration=source.get("duration", 0),
                )
                self._changed(backup_id)
                self._running[graph_id].discard(backup_id)
                job.status, job.end_ms = "success", end_ms

            self._schedule(("backup", backup_id), self.import_duration, finish)
            return job.job_id

    def add_export(self, path: str, backup_id: str | None = None) -> str:
        """Put a backup at an OBS path without a job, as if exported there: ``backup_id``'s (any
        backup), or with ``None`` a foreign one (exported elsewhere: imported, it gets times of now).
        Returns the normalised path; an invalid one is GES.0001."""
        with self._lock:
            self._apply_due()
            path = obs_path("export_path", path)
            source = None if backup_id is None else copy.deepcopy(self._get_backup(backup_id))
            self._exported[path] = source
            self._exports.append((backup_id, path))
            return path

    def exports(self) -> list[tuple[str | None, str]]:
        """``(backup_id, path)`` of every export that succeeded (and :meth:`add_export`), oldest
        first; ``backup_id`` is None for a foreign backup."""
        with self._lock:
            self._apply_due()
            return list(self._exports)

    def backup_files(self, graph_id: str, backup_id: str | None, base_url: str) -> WireDict:
        """The ``backup-files`` reply for a successful backup of a live graph: its files, each with
        a fresh download link (a random token, valid ``link_ttl`` seconds) served under ``base_url``."""
        with self._lock:
            self._apply_due()
            self._live_graph(graph_id)
            if not backup_id:
                raise GesError("GES.0001", "The parameter backup_id is invalid: it is required.")
            backup = self._graph_backup(graph_id, backup_id)
            if backup["status"] != "success":
                raise GesError(
                    "GES.0001", f"The parameter backup_id is invalid: the backup is {backup['status']}."
                )
            expires = time.time() + self.link_ttl
            expires_text = time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(expires))
            files = []
            for name, content in self._files(backup):
                token = secrets.token_urlsafe(24)
                self._links[token] = (backup_id, name, time.monotonic() + self.link_ttl)
                link = f"{base_url}{FILES_PREFIX}/{BACKUP_BUCKET}/{backup_id}/{name}?token={token}"
                self._link_urls.append(link)
                size_kb = -(-len(content) // 1024)
                files.append(
                    {"name": name, "size": size_kb, "download_link": link, "link_expired_time": expires_text}
                )
            return {"bucket": BACKUP_BUCKET, "files": files}

    def download(self, path: str, token: str) -> tuple[int, bytes]:
        """A GET on a download link: ``(200, the file)``, 403 for an unknown or expired token or one
        of another file, 404 when the backup is gone. Non-200 bodies are OBS-style XML."""
        with self._lock:
            self._apply_due()
            entry = self._links.get(token)
            if entry is None or path != f"{FILES_PREFIX}/{BACKUP_BUCKET}/{entry[0]}/{entry[1]}":
                return 403, _obs_error(
                    "AccessDenied", "Access Denied: the token is not valid for this object."
                )
            backup_id, name, expiry = entry
            if expiry <= time.monotonic():
                return 403, _obs_error("AccessDenied", "Request has expired.")
            backup = self._backups.get(backup_id)
            if backup is None:
                return 404, _obs_error("NoSuchKey", "The specified key does not exist.")
            return 200, dict(self._files(backup))[name]

    def expire_links(self) -> int:
        """Make every download link issued so far expired; returns how many there were."""
        with self._lock:
            self._links = {token: (b, name, 0.0) for token, (b, name, _) in self._links.items()}
            return len(self._links)

    def links(self) -> list[str]:
        """Every download link issued so far (expired ones too), oldest first."""
        with self._lock:
            return list(self._link_urls)

    @staticmethod
    def _files(backup: WireDict) -> list[tuple[str, bytes]]:
        """A backup's files: small stand-ins, the same bytes every time (not the backup's size)."""
        backup_id = str(backup["id"])
        info = json.dumps(snake_view(backup), indent=2, sort_keys=True).encode()
        digest = hashlib.sha256(backup_id.encode()).digest()
        blocks = 32 * (1 + digest[0] % 8)  # 1 to 8 KB
        data = b"".join(hashlib.sha256(b"%s:%d" % (backup_id.encode(), i)).digest() for i in range(blocks))
        return [("backup_info.json", info), ("graph_data.bin", data)]

    def fail_next_job(self, graph_id: str | None = None, reason: str | None = None) -> None:
        """Make the next job (of ``graph_id``, or of any graph) fail, with ``reason`` as failReason."""
        with self._lock:
            self._failures.append((graph_id, reason))

    def _new_job(self, graph_id: str, name: str, reason: str) -> _Job:
        job = _Job(new_id(), graph_id, name, _now_ms(), time.monotonic() + self.job_pending, reason)
        for index, (wanted, injected) in enumerate(self._failures):
            if wanted in (None, graph_id):
                del self._failures[index]
                job.fails, job.reason = True, injected or reason
                break
        self._jobs[job.job_id] = job
        return job

    def job(self, graph_id: str, job_id: str) -> WireDict:
        """The job-status reply."""
        with self._lock:
            self._apply_due()
            self._live_graph(graph_id)
            job = self._jobs.get(job_id)
            if job is None or job.graph_id != graph_id:
                raise GesError("GES.8301", "The job does not exist.")
            return self._job_view(job)

    def jobs(self, graph_name: str | None = None, status: str | None = None) -> list[WireDict]:
        """Every job (oldest first) as the job-status reply shows it, optionally filtered."""
        with self._lock:
            self._apply_due()
            views = [self._job_view(job) for job in self._jobs.values()]
        return [
            view
            for view in views
            if graph_name in (None, view["relatedGraph"]) and status in (None, view["status"])
        ]

    def job_names(self, graph_id: str) -> list[str]:
        """The ``jobName`` of every job of a graph, oldest first."""
        with self._lock:
            return [job.name for job in self._jobs.values() if job.graph_id == graph_id]

    def _job_view(self, job: _Job) -> WireDict:
        status = job.status
        if status == "running" and time.monotonic() < job.running_at:
            status = self.job_wait_state
        done = status in ("success", "failed")
        return {
            "jobId": job.job_id,
            "status": status,
            "jobType": "GraphManagement",
            "jobName": job.name,
            "relatedGraph": self._graphs[job.graph_id]["name"],
            "beginTime": format_utc(job.begin_ms),
            "endTime": format_utc(job.end_ms) if job.end_ms is not None else None,
            "jobDetail": None,
            "failReason": job.reason if status == "failed" else None,
            "jobProgress": 1.0 if done else 0.0,
        }

    def _graph_backup(self, graph_id: str, backup_id: str) -> WireDict:
        backup = self._backups.get(backup_id)
        if backup is None or backup["graphId"] != graph_id:
            raise GesError("GES.7024", "The backup does not exist.")
        return backup

    def _scope(self, graph_id: str | None) -> list[str]:
        return self._ids if graph_id is None else self._ids_by_graph.get(graph_id, [])

    def _get_backup(self, backup_id: str) -> WireDict:
        try:
            return self._backups[backup_id]
        except KeyError:
            raise KeyError(f"no backup {backup_id!r}") from None

    def _blob(self, backup_id: str, v2: bool = False) -> bytes:
        blob = self._blobs.get((backup_id, v2))
        if blob is None:
            backup = self._backups[backup_id]
            view = snake_view(backup) if v2 else backup
            blob = json.dumps(view, separators=(",", ":"), ensure_ascii=False).encode()
            self._blobs[(backup_id, v2)] = blob
        return blob

    def _changed(self, backup_id: str) -> None:
        self._blobs.pop((backup_id, False), None)
        self._blobs.pop((backup_id, True), None)
        self._pages.clear()

    def _set_status(self, backup_id: str, status: str, end_ms: int) -> None:
        backup = self._backups[backup_id]
        if backup["status"] == status:
            return
        set_status(backup, status, end_ms=end_ms, size=random_size(self._rng))
        self._changed(backup_id)
        running = self._running[backup["graphId"]]
        (running.add if status == "backing_up" else running.discard)(backup_id)
        job = self._backup_jobs.get(backup_id)
        if job is not None:
            job.status = _JOB_STATUS[status]
            job.end_ms = None if status == "backing_up" else max(end_ms, job.begin_ms)

    def _schedule(self, key: tuple[str, str], seconds: float, action: Callable[[int], None]) -> None:
        """Run ``action(end_ms)`` (replacing any scheduled under ``key``) ``seconds`` from now."""
        due = time.monotonic() + seconds
        self._timers[key] = (due, action)
        self._next_due = min(self._next_due, due)

    def _apply_due(self) -> None:
        now = time.monotonic()
        if self._next_due > now:
            return
        now_ms = _now_ms()
        due_now = sorted((due, key) for key, (due, _) in self._timers.items() if due <= now)
        for due, key in due_now:
            action = self._timers.pop(key)[1]
            action(now_ms - int((now - due) * 1000))
        self._next_due = min((due for due, _ in self._timers.values()), default=math.inf)

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
