"""The HTTP server (threaded, HTTP/1.1 keep-alive) and :class:`GesEmulator`, its Python face."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar, cast, overload

from . import defaults as d
from .api import GesApi, Request, Response, Settings
from .control import Control
from .data import WireDict, generate, load, make_backup, make_graph, new_id
from .errors import GesError
from .faults import FaultRule, Faults, Hostile, as_faults
from .store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")

DataSource = str | os.PathLike[str] | Mapping[str, Any] | Sequence[Mapping[str, Any]]
FaultSource = str | Faults | Iterable[FaultRule] | None


def _wire_text(value: str) -> str:
    """Header values arrive as Latin-1 text; senders (like the SDK) put UTF-8 bytes there."""
    if value.isascii():
        return value
    try:
        return value.encode("iso-8859-1").decode("utf-8")
    except UnicodeError:
        return value


_MAX_LINE = 65536
_MAX_HEADERS = 100


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024  # a thousand triggers connecting at once, as a gateway would accept

    def __init__(self, address: tuple[str, int], api: GesApi) -> None:
        self.api = api
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up are normal here (faults, stops); anything else is logged."""
        if isinstance(sys.exc_info()[1], OSError):
            log.debug("connection from %s ended abruptly", client_address, exc_info=True)
        else:
            log.exception("error serving %s", client_address)

    def close_open_sockets(self) -> None:
        """End keep-alive connections so no client keeps talking to a stopped emulator."""
        with self.sockets_lock:
            for sock in self.open_sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    raw_requestline: bytes
    fields: dict[str, str]

    @property
    def _server(self) -> _Server:
        return cast(_Server, self.server)

    def setup(self) -> None:
        super().setup()
        with self._server.sockets_lock:
            self._server.open_sockets.add(self.connection)

    def finish(self) -> None:
        with self._server.sockets_lock:
            self._server.open_sockets.discard(self.connection)
        super().finish()

    def parse_request(self) -> bool:
        """A lean HTTP/1.x parser (the stdlib's goes through ``email`` and costs more than a reply)."""
        self.request_version = "HTTP/1.1"
        self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        parts = self.requestline.split()
        if len(parts) != 3 or parts[2] not in ("HTTP/1.0", "HTTP/1.1"):
            self.send_error(400, "Bad request line")
            return False
        self.command, self.path, self.request_version = parts
        fields: dict[str, str] = {}
        for _ in range(_MAX_HEADERS + 1):
            line = self.rfile.readline(_MAX_LINE + 1)
            if line in (b"\r\n", b"\n", b""):
                break
            name, sep, value = line.decode("iso-8859-1").partition(":")
            if not sep or len(line) > _MAX_LINE or len(fields) == _MAX_HEADERS:
                self.send_error(431 if sep else 400, "Bad or too many headers")
                return False
            fields[name.strip().lower()] = _wire_text(value.strip())
        self.fields = fields
        connection = fields.get("connection", "").lower()
        http10 = self.request_version == "HTTP/1.0"
        self.close_connection = connection == "close" or (http10 and connection != "keep-alive")
        return True

    def _dispatch(self) -> None:
        try:
            body = self.rfile.read(int(self.fields.get("content-length") or 0))
        except ValueError:
            self.send_error(400, "Bad Content-Length")
            return
        path, _, query = self.path.partition("?")
        try:
            request = Request(self.command, path, query, self.fields, body, self.client_address[0])
            response = self._server.api.handle(request)
        except Exception:
            log.exception("emulator failed on %s %s", self.command, self.path)
            response = Response(500, b'{"error_code":"APIGW.0002","error_msg":"Internal server error"}')
        if response is None:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(response)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def _send(self, response: Response) -> None:
        lines = [
            f"HTTP/1.1 {response.status} {self.responses.get(response.status, ('',))[0]}",
            f"Content-Type: {response.content_type}",
            f"Content-Length: {len(response.body)}",
            f"Date: {self.date_time_string()}",
            *(f"{name}: {value}" for name, value in response.headers.items()),
        ]
        if self.close_connection:
            lines.append("Connection: close")
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("iso-8859-1") + response.body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - " + format, self.address_string(), *args)


class _StoreSetting(Generic[T]):
    """A :class:`GesEmulator` attribute that reads and writes the store's attribute of that name."""

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, emu: None, owner: type) -> _StoreSetting[T]: ...
    @overload
    def __get__(self, emu: GesEmulator, owner: type) -> T: ...
    def __get__(self, emu: GesEmulator | None, owner: type) -> T | _StoreSetting[T]:
        return self if emu is None else cast(T, getattr(emu._store, self.name))

    def __set__(self, emu: GesEmulator, value: T) -> None:
        setattr(emu._store, self.name, value)


class GesEmulator:
    """A local GES + IAM server on a loopback port, in a background thread.

    Use it as a context manager (``with GesEmulator(backups=20) as emu: ...``) or call :meth:`start` and
    :meth:`stop`. Data is generated from ``graphs``/``backups``/``seed`` (``now`` fixes the clock the
    times are relative to) unless ``data`` is given (a path, a list-backups response or a list of
    backups). All control methods are thread-safe and may be called while requests are served.
    """

    def __init__(
        self,
        *,
        graphs: int = d.DEFAULT_GRAPHS,
        backups: int = d.DEFAULT_BACKUPS,
        seed: int = d.DEFAULT_SEED,
        data: DataSource | None = None,
        faults: FaultSource = None,
        hostile: Hostile | None = None,
        token_ttl: float = d.DEFAULT_TOKEN_TTL,
        backup_duration: float = d.DEFAULT_BACKUP_DURATION,
        backup_outcome: Literal["success", "failed"] = "success",
        user: str = d.DEFAULT_USER,
        password: str = d.DEFAULT_PASSWORD,
        domain: str = d.DEFAULT_DOMAIN,
        project_id: str = d.DEFAULT_PROJECT_ID,
        region: str = d.DEFAULT_REGION,
        ak: str = d.DEFAULT_AK,
        sk: str = d.DEFAULT_SK,
        host: str = d.DEFAULT_HOST,
        port: int = 0,
        now: datetime | None = None,
        max_clock_skew: float = 900.0,
        max_limit: int | None = None,
        backup_quota: int | None = None,
        graph_action_duration: float = d.DEFAULT_GRAPH_ACTION_DURATION,
        job_pending: float = 0.0,
        job_wait_state: Literal["pending", "waiting"] = "pending",
        export_duration: float = d.DEFAULT_EXPORT_DURATION,
        import_duration: float = d.DEFAULT_IMPORT_DURATION,
        link_ttl: float = d.DEFAULT_LINK_TTL,
        project_backup_quota: int | None = None,
        graph_names: Sequence[str] = (),
        control: bool = False,
    ) -> None:
        self.user, self.password, self.domain = user, password, domain
        self.project_id, self.region, self.ak, self.sk = project_id, region, ak, sk
        self.host, self._port = host, port
        if data is not None:
            graph_list, backup_list = load(data, region=region)
        else:
            now_ms = int((now or datetime.now(timezone.utc)).timestamp() * 1000)
            graph_list, backup_list = generate(
                graphs, backups, seed=seed, now_ms=now_ms, region=region, names=graph_names
            )
        self._store = Store(
            graph_list,
            backup_list,
            seed=seed,
            backup_duration=backup_duration,
            backup_outcome=backup_outcome,
            token_ttl=token_ttl,
            backup_quota=backup_quota,
            graph_action_duration=graph_action_duration,
            job_pending=job_pending,
            job_wait_state=job_wait_state,
            export_duration=export_duration,
            import_duration=import_duration,
            link_ttl=link_ttl,
            project_backup_quota=project_backup_quota,
        )
        settings = Settings(user, password, domain, project_id, region, ak, sk, max_clock_skew)
        self._api = GesApi(settings, self._store, as_faults(faults, seed), hostile or Hostile())
        self.max_limit = max_limit
        self._api.control = Control(self).handle if control else None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> GesEmulator:
        """Bind the port and serve in a daemon thread; returns ``self``."""
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        self._api.stopping = threading.Event()
        self._server = _Server((self.host, self._port), self._api)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="ges-emulator",
            daemon=True,
        )
        self._thread.start()
        self._api.base_url = self.url
        return self

    def stop(self) -> None:
        """Stop serving, end open connections and free the port. Safe to call twice."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._api.stopping.set()
        server.shutdown()
        server.close_open_sockets()
        server.server_close()
        thread.join()
        self._server = self._thread = None

    def __enter__(self) -> GesEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "stopped"
        return f"GesEmulator({where}, project_id={self.project_id!r})"

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL of both GES and IAM, e.g. ``http://127.0.0.1:40123``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # --- connections ------------------------------------------------------------------------------

    def connection(self, auth_type: Literal["password", "aksk"] = "password") -> dict[str, Any]:
        """The Airflow connection (JSON form) for this emulator."""
        if auth_type == "aksk":
            return {
                "conn_type": "ges",
                "host": self.url,
                "login": self.ak,
                "password": self.sk,
                "extra": {"auth_type": "aksk", "project_id": self.project_id, "region": self.region},
            }
        if auth_type != "password":
            raise ValueError("auth_type must be 'password' or 'aksk'")
        return {
            "conn_type": "ges",
            "host": self.url,
            "login": self.user,
            "password": self.password,
            "extra": {"project_id": self.project_id, "domain_name": self.domain, "iam_endpoint": self.url},
        }

    def connection_env(
        self, conn_id: str = "ges_default", auth_type: Literal["password", "aksk"] = "password"
    ) -> dict[str, str]:
        """``{"AIRFLOW_CONN_<CONN_ID>": json}`` for ``os.environ`` or ``monkeypatch.setenv``."""
        return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(self.connection(auth_type))}

    # --- data -------------------------------------------------------------------------------------

    def graphs(self) -> list[WireDict]:
        """Copies of the graphs the graph list shows (deleted ones excluded)."""
        return self._store.live_graphs()

    def backups(self, graph_id: str | None = None) -> list[WireDict]:
        """Copies of the backups as the list calls return them, in list order."""
        return self._store.backups(graph_id)

    def backup(self, backup_id: str) -> WireDict:
        return self._store.backup(backup_id)

    def add_graph(
        self, name: str | None = None, *, graph_id: str | None = None, status: str = "200", **fields: Any
    ) -> WireDict:
        """Add a graph (``status`` "400" means deleted); extra wire ``fields`` override the defaults."""
        graph_id = graph_id or new_id()
        graph = make_graph(
            name or f"graph_{graph_id[:8]}",
            graph_id=graph_id,
            region=self.region,
            status=status,
            created_ms=int(time.time() * 1000),
        )
        graph.update(fields)
        return self._store.add_graph(graph)

    def find_graph(self, id_or_name: str) -> WireDict | None:
        """The graph with this ID, else the live one with this name (else a deleted one), or None."""
        return self._store.find_graph(id_or_name)

    def _find(self, id_or_name: str) -> WireDict:
        """:meth:`find_graph`, or ValueError when there is no such graph."""
        found = self._store.find_graph(id_or_name)
        if found is None:
            raise ValueError(f"no graph {id_or_name!r}")
        return found

    def set_graph_status(
        self, graph: str, status: str, *, then: str | None = None, after: float = 0.0
    ) -> WireDict:
        """Set the status code of ``graph`` (ID or name) now, e.g. "206" (scaling out), and with
        ``then`` change it to ``then`` ``after`` seconds later (unless it changed meanwhile). The
        graph refuses backups, stops and starts as in any state they don't start from. Returns it."""
        return self._store.set_graph_status(self._find(graph)["id"], status, then=then, after=after)

    def delete_graph(self, graph_id: str) -> None:
        """Delete a graph (its backups stay, as GES keeps them; see ``Store.delete_graph``)."""
        self._store.delete_graph(graph_id)

    def add_backup(
        self,
        graph: str,
        *,
        status: Literal["backing_up", "success", "failed"] = "success",
        method: Literal["auto", "manual", "import"] = "manual",
        start: datetime | None = None,
        duration: int = 60,
        size: int = 128,
        backup_id: str | None = None,
    ) -> WireDict:
        """Add a backup of ``graph`` (its ID or name) and return it as the wire shows it.

        ``start`` defaults to ``duration`` seconds ago, so a finished backup ends now.
        """
        found = self._find(graph)
        start = start or datetime.now(timezone.utc) - timedelta(seconds=duration)
        backup = make_backup(
            found,
            backup_id=backup_id or new_id(),
            method=method,
            status=status,
            start_ms=int(start.timestamp() * 1000),
            duration=duration,
            size=size,
        )
        return self._store.add_backup(backup)

    def set_backup_status(self, backup_id: str, status: str) -> WireDict:
        """Change a backup's status now (cancels a scheduled change); returns the updated backup."""
        return self._store.set_backup_status(backup_id, status)

    def set_backup_status_later(self, backup_id: str, status: str, seconds: float) -> None:
        """Change a backup's status ``seconds`` from now (replaces a scheduled change)."""
        self._store.set_backup_status_later(backup_id, status, seconds)

    def remove_backup(self, backup_id: str) -> None:
        self._store.remove_backup(backup_id)

    def job(self, graph_id: str, job_id: str) -> WireDict:
        """The job-status reply for a job, as the API would give it."""
        return self._store.job(graph_id, job_id)

    def jobs(self, graph_name: str | None = None, status: str | None = None) -> list[WireDict]:
        """Every job, oldest first, as the job-status reply shows it (optionally filtered)."""
        return self._store.jobs(graph_name, status)

    def job_names(self, graph: str) -> list[str]:
        """The ``jobName`` of every job of ``graph`` (ID or name), oldest first, e.g.
        ``["StopGraph", "StartGraph"]``."""
        return self._store.job_names(self._find(graph)["id"])

    def graph(self, graph_id: str) -> WireDict:
        """The graph as ``GET /v1.0/{project_id}/graphs/{graph_id}`` shows it (deleted: GesError)."""
        return self._store.show_graph(graph_id)

    def fail_next_job(self, graph_id: str | None = None, reason: str | None = None) -> None:
        """Make the next job (backup, stop or start) of ``graph_id``, or of any graph, fail with
        ``reason`` as its ``failReason``; calls queue up, one failure per job."""
        self._store.fail_next_job(graph_id, reason)

    @property
    def restores(self) -> list[tuple[str, str]]:
        """``(graph_id, backup_id)`` of every start-from-backup the API accepted, oldest first."""
        return self._store.restores()

    # --- exports, imports, download links (v2) ----------------------------------------------------

    @property
    def exports(self) -> list[tuple[str | None, str]]:
        """``(backup_id, path)`` of every backup exported to an OBS path (a v2 export job that
        succeeded, or :meth:`add_export`), oldest first; ``backup_id`` None: a foreign backup."""
        return self._store.exports()

    def add_export(self, path: str, backup_id: str | None = None) -> str:
        """Put a backup at an OBS ``path`` as if it had been exported there, without a job:
        ``backup_id``'s, or with None a foreign one (one exported elsewhere: imported, it gets times
        of now). Returns the path as stored (no trailing '/'); an invalid path is a ValueError."""
        try:
            return self._store.add_export(path, backup_id)
        except GesError as exc:
            raise ValueError(exc.message) from None

    def expire_links(self) -> int:
        """Expire every download link issued so far (a GET on one is 403); returns how many."""
        return self._store.expire_links()

    def issued_links(self) -> list[str]:
        """Every download link issued so far (expired ones too), oldest first: they carry tokens,
        so tests can check logs and outputs for them."""
        return self._store.links()

    # --- auth, faults, counters -------------------------------------------------------------------

    def issue_token(self) -> str:
        """A valid token for the project, without an IAM call (it still counts as issued)."""
        return self._store.issue_token(self.project_id)[0]

    def issued_tokens(self) -> list[str]:
        """Every token value issued so far (by IAM calls and :meth:`issue_token`, expired ones too),
        oldest first: for tests that check logs and outputs for leaked secrets."""
        return self._store.tokens()

    def expire_tokens(self) -> None:
        """Expire every token issued so far; GES calls with them get 401 ``token expires``."""
        self._store.expire_tokens()

    token_ttl = _StoreSetting[float]("Lifetime of new tokens, seconds.")
    backup_duration = _StoreSetting[float]("Seconds a backup created through the API runs.")
    backup_outcome = _StoreSetting[Literal["success", "failed"]]("How backups created through the API end.")
    backup_quota = _StoreSetting[int | None]("Backups a graph may have before create is 400 GES.7019.")
    project_backup_quota = _StoreSetting[int | None](
        "Backups the project may have (all graphs) before create or import is 400 GES.7019."
    )
    export_duration = _StoreSetting[float]("Seconds a v2 export of a backup runs.")
    import_duration = _StoreSetting[float]("Seconds a v2 import of a backup runs.")
    link_ttl = _StoreSetting[float]("Seconds a download link of v2's backup-files stays valid.")
    graph_action_duration = _StoreSetting[float]("Seconds a graph takes to stop or start.")
    job_pending = _StoreSetting[float]("Seconds a new job shows ``job_wait_state`` before ``running``.")
    job_wait_state = _StoreSetting[Literal["pending", "waiting"]](
        "What a job shows before it runs: ``pending`` (default) or ``waiting``."
    )

    @property
    def max_limit(self) -> int | None:
        """The largest ``limit`` a list call accepts (``None``: no cap); more is 400 ``GES.0001``."""
        return self._api.max_limit

    @max_limit.setter
    def max_limit(self, limit: int | None) -> None:
        if limit is not None and limit < 0:
            raise ValueError("max_limit must be None or a non-negative integer")
        self._api.max_limit = limit

    def set_faults(self, faults: FaultSource) -> None:
        """Replace the fault rules (string form, :class:`Faults`, rules, or ``None`` for none)."""
        self._api.set_faults(as_faults(faults))

    def set_hostile(self, hostile: Hostile | None = None, **options: Any) -> None:
        """Replace the hostile options: a :class:`Hostile`, or its fields as keywords."""
        self._api.hostile = hostile or Hostile(**options)

    @property
    def counters(self) -> dict[str, int]:
        """Requests per endpoint, through either API version (faulted and rejected ones included),
        ``v1_requests`` and ``v2_requests`` (requests whose path is a v1 or a v2 one, routed or not),
        ``download_file`` (GETs on download links), ``requests``, ``not_found``,
        ``tokens_issued``, ``auth_failures``, ``faults_injected`` (requests a non-latency fault hit),
        ``replies_lost`` (of those, ``after`` faults: replies lost after the call was carried out) and
        ``fault_<kind>`` (``fault_latency``: requests delayed)."""
        return self._store.counters()

    def reset_counters(self) -> None:
        self._store.reset_counters()
