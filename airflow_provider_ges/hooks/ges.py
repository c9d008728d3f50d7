"""``GesHook`` (requests, for tasks) and ``GesAsyncHook`` (httpx, for the triggerer).

Both are thin transports that run the same call plans (``airflow_provider_ges.plans``): the same
requests (``endpoints``), parsing (``replies``, ``models``), retries, token cache and paging.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from datetime import datetime
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk import BaseHook

from airflow_provider_ges import DEFAULT_CONN_ID, DEFAULT_PAGE_SIZE
from airflow_provider_ges._compat import amask_secret, mask_secret
from airflow_provider_ges.auth import TOKEN_CACHE, TokenKey
from airflow_provider_ges.connection import GesConnectionConfig
from airflow_provider_ges.endpoints import (
    Request,
    backup_files_request,
    create_backup_request,
    delete_backup_request,
    export_backup_request,
    graph_action_request,
    import_backup_request,
    job_status_request,
    list_backups_request,
    list_graphs_request,
    list_jobs_request,
    quotas_request,
    show_graph_request,
    token_request,
)
from airflow_provider_ges.enums import BackupMethod, BackupStatus
from airflow_provider_ges.exceptions import GesApiError, GesAuthError, GesTransientError
from airflow_provider_ges.form import field_behaviour, form_widgets
from airflow_provider_ges.gate import GraphListing, Verdict, Watch, graph_id_named
from airflow_provider_ges.models import (
    Backup,
    BackupFiles,
    BackupFilter,
    BackupPage,
    Graph,
    GraphPage,
    GraphReply,
    Job,
    JobCreated,
    JobPage,
    QuotaResource,
    QuotasReply,
    Token,
)
from airflow_provider_ges.plans import (
    Authorize,
    Plan,
    RetryPolicy,
    Send,
    Sleep,
    call,
    drive_async,
    drive_sync,
    listing,
    shared,
)
from airflow_provider_ges.replies import Response, parse_json, parse_token, raise_for_error
from airflow_provider_ges.shared import SHARED
from airflow_provider_ges.signer import sign_request

if TYPE_CHECKING:
    import httpx
    import requests

T = TypeVar("T")


def sign(config: GesConnectionConfig, need: Authorize) -> dict[str, str]:
    """AK/SK auth: the request's headers, signed (SDK-HMAC-SHA256). No token call is made."""
    request = need.request
    return sign_request(
        request.method,
        request.url,
        ak=config.login,
        sk=config.password,
        body=request.body,
        headers=request.content_headers,
        project_id=config.project_id,
        security_token=config.security_token,
    )


def explain(err: Exception, config: GesConnectionConfig | None) -> str:
    """A failed connection test, said so that a user knows what to fix."""
    if isinstance(err, GesAuthError):
        if err.status_code == 403:
            hint = "check extra 'project_id' and the user's GES permissions"
        elif config is not None and config.auth_type == "aksk":
            hint = "check the Access Key (login), the Secret Key (password) and the machine's clock"
        else:
            hint = "check login, password, extra 'domain_name' and extra 'project_id'"
        return f"Authentication failed: {err} ({hint})"
    if isinstance(err, GesTransientError) and err.status_code is None:
        return f"Cannot reach GES or IAM: {err} (check host, extra 'iam_endpoint' and 'proxies')"
    return str(err)


#: Replies that come from the API gateway or a load balancer before GES itself saw the request.
_REFUSED_BEFORE_ACTING = frozenset({429, 503})


def resend_is_safe(err: GesApiError) -> bool:
    """Whether a POST that starts a job (create backup, stop, start) may be sent again.

    Only a 429 (throttled) or a 503 (service unavailable) is retried: both are answered before
    the service acts, so a retry cannot start a second job. Everything else that is transient
    for a GET is not: a dropped connection, a timeout or a 500/502/504 after the request went out
    may have started the job (a second create would take a second backup, or fail on the first
    one's GES.7002), and a garbled 2xx certainly did; GES.7002 on a create means a backup is
    already running (the caller attaches to it). The callers re-read the state instead.
    """
    return err.status_code in _REFUSED_BEFORE_ACTING


def delete_retry_is_safe(err: GesApiError) -> bool:
    """Whether a backup delete may be sent again: any transient error but GES.7002.

    Deleting twice cannot do harm (the second answers GES.7024: gone). GES.7002 says the backup
    is still running: retrying would wait for it to end and then delete a backup someone wants.
    """
    return err.error_code != "GES.7002"


class _GesHookBase(BaseHook):
    """What the sync and async hooks share: connection attributes, settings and call plans."""

    conn_name_attr = "ges_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "ges"
    hook_name = "Huawei Cloud GES"

    def __init__(
        self, ges_conn_id: str = default_conn_name, *, retry_base_delay: float = 0.5, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.ges_conn_id = ges_conn_id
        self.retry_base_delay = retry_base_delay

    def __repr__(self) -> str:
        return f"{type(self).__name__}(ges_conn_id={self.ges_conn_id!r})"

    def _policy(self, config: GesConnectionConfig) -> RetryPolicy:
        return RetryPolicy(max_retries=config.max_retries, base_delay=self.retry_base_delay)

    def _token_plan(self, config: GesConnectionConfig) -> Plan[Token]:
        return call(token_request(config), parse_token, self._policy(config), authenticated=False)

    def _backups_plan(
        self, config: GesConnectionConfig, graph_id: str | None, page_size: int
    ) -> Plan[list[Backup]]:
        def page(offset: int, limit: int) -> Any:
            return list_backups_request(config, graph_id, offset, limit)

        return listing(page, BackupPage, self._policy(config), page_size)

    def _graphs_plan(
        self, config: GesConnectionConfig, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Plan[list[Graph]]:
        def page(offset: int, limit: int) -> Any:
            return list_graphs_request(config, offset, limit)

        return listing(page, GraphPage, self._policy(config), page_size)

    def _show_graph_plan(self, config: GesConnectionConfig, graph_id: str) -> Plan[GraphReply]:
        return call(
            show_graph_request(config, graph_id), partial(parse_json, GraphReply), self._policy(config)
        )

    def _job_plan(self, config: GesConnectionConfig, graph_id: str, job_id: str) -> Plan[Job]:
        return call(
            job_status_request(config, graph_id, job_id), partial(parse_json, Job), self._policy(config)
        )

    def _jobs_plan(self, config: GesConnectionConfig, graph_name: str | None) -> Plan[list[Job]]:
        def page(offset: int, limit: int) -> Any:
            return list_jobs_request(config, graph_name, offset, limit)

        return listing(page, JobPage, self._policy(config), DEFAULT_PAGE_SIZE)

    def _create_backup_plan(self, config: GesConnectionConfig, graph_id: str) -> Plan[JobCreated]:
        return self._job_start_plan(config, create_backup_request(config, graph_id))

    def _graph_action_plan(
        self, config: GesConnectionConfig, graph_id: str, action: str, backup_id: str | None = None
    ) -> Plan[JobCreated]:
        return self._job_start_plan(config, graph_action_request(config, graph_id, action, backup_id))

    def _job_start_plan(self, config: GesConnectionConfig, request: Request) -> Plan[JobCreated]:
        """A call that starts a job: retried only where a resend cannot start a second one."""
        return call(request, partial(parse_json, JobCreated), self._policy(config), retry_on=resend_is_safe)

    def _backup_files_plan(
        self, config: GesConnectionConfig, graph_id: str, backup_id: str
    ) -> Plan[BackupFiles]:
        request = backup_files_request(config, graph_id, backup_id)
        return call(request, partial(parse_json, BackupFiles), self._policy(config))

    def _quotas_plan(self, config: GesConnectionConfig) -> Plan[QuotasReply]:
        return call(quotas_request(config), partial(parse_json, QuotasReply), self._policy(config))

    def _delete_backup_plan(self, config: GesConnectionConfig, graph_id: str, backup_id: str) -> Plan[None]:
        yield from call(
            delete_backup_request(config, graph_id, backup_id),
            raise_for_error,
            self._policy(config),
            retry_on=delete_retry_is_safe,
        )

    def _look_plan(self, config: GesConnectionConfig, watch: Watch) -> Plan[Verdict]:
        """One look of a wait; its listings shared with other waiters on the same connection
        (endpoint, project, credentials) when ``watch.share_for`` is set."""
        watch.project_id = config.project_id
        who = (config.endpoint, TokenKey.of(config))
        return watch.look(
            lambda: shared((who, "graphs"), watch.share_for, self._graphs_plan(config)),
            lambda graph_id: shared(
                (who, "backups", graph_id),
                watch.share_for,
                self._backups_plan(config, graph_id, DEFAULT_PAGE_SIZE),
            ),
        )

    def _graph_backups_plan(
        self, config: GesConnectionConfig, listing: GraphListing
    ) -> Plan[list[Backup] | None]:
        return listing.backups(
            lambda: self._graphs_plan(config),
            lambda graph_id: self._backups_plan(config, graph_id, DEFAULT_PAGE_SIZE),
        )

    def _log_retry(self, effect: Sleep) -> None:
        self.log.warning("GES call failed, retrying in %.2fs: %s", effect.seconds, effect.reason)

    def _warn(self, message: str) -> None:
        self.log.warning("%s", message)

    @staticmethod
    def _no_auth(need: Authorize) -> Mapping[str, str]:
        raise AssertionError("an unauthenticated call asked for a token")


class GesHook(_GesHookBase):
    """Talk to Huawei Cloud GES with an Airflow connection of type ``ges``.

    :param ges_conn_id: the connection (default ``ges_default``). It is read on first use, not here.
    :param retry_base_delay: first back-off delay in seconds (doubled per retry, with jitter).
    """

    # On GesHook itself: Airflow 3.1 registers form fields only from the hook class's own __dict__
    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The GES fields of the connection form (Airflow 3.1; 3.2+ reads provider info)."""
        return form_widgets()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return field_behaviour()

    @cached_property
    def config(self) -> GesConnectionConfig:
        config = GesConnectionConfig.from_connection(self.get_connection(self.ges_conn_id))
        for secret in config.secrets:
            mask_secret(secret)
        return config

    def get_conn(self) -> requests.Session:
        return self.session

    @cached_property
    def session(self) -> requests.Session:
        import requests
        from requests.adapters import HTTPAdapter

        session = requests.Session()
        session.trust_env = False  # proxies and CA bundle come from the connection, not os.environ
        session.verify = self.config.verify
        if self.config.proxies:
            session.proxies.update(self.config.proxies)
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=16)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    def _send(self, effect: Send) -> Response:
        import requests
        import urllib3

        request, config = effect.request, self.config
        try:
            reply = self.session.send(
                self._prepare(effect),
                timeout=config.timeout,
                allow_redirects=False,  # credentials go to the configured endpoints only
                verify=config.verify,
                proxies=config.proxies or {},
                stream=True,  # then one read of the whole body, not requests' 10 KB chunks
            )
            content = reply.raw.read(decode_content=True)
        except (requests.exceptions.SSLError, urllib3.exceptions.SSLError):
            raise GesApiError(
                f"TLS verification failed for {request.base_url} (check extra 'verify')",
                method=request.method,
                path=request.path,
            ) from None
        except (
            requests.exceptions.ConnectionError,
            requests.exceptions.Timeout,
            requests.exceptions.ChunkedEncodingError,
            urllib3.exceptions.HTTPError,  # the body cut short, or timed out
        ) as err:
            raise GesTransientError(
                f"no reply from {request.base_url} ({type(err).__name__})",
                method=request.method,
                path=request.path,
            ) from None
        return Response(reply.status_code, reply.headers, content)

    def _prepare(self, effect: Send) -> requests.PreparedRequest:
        """The request as ``Session.prepare_request`` makes it, for a third of its CPU.

        Our URLs need none of its work (path ids are checked, queries urlencoded; a non-ASCII
        endpoint still goes through ``prepare_url``) and the session has no cookies, auth or hooks
        to merge: only its default headers. Sent with ``Session.send``, as ``Session.request`` does.
        """
        from requests import PreparedRequest
        from requests.structures import CaseInsensitiveDict

        request, body = effect.request, effect.request.body
        prepared = PreparedRequest()
        prepared.method = request.method
        if request.url.isascii():
            prepared.url = request.url
        else:
            prepared.prepare_url(request.url, None)  # IDNA host, percent-encoding
        headers: CaseInsensitiveDict[str] = CaseInsensitiveDict(self.session.headers)  # type: ignore[arg-type]
        headers.update(request.content_headers)
        headers.update(effect.auth_headers)
        if body or request.method not in ("GET", "HEAD"):
            headers["Content-Length"] = str(len(body))
        prepared.headers = headers
        prepared.prepare_cookies(None)  # an empty jar (requests copies it when it sees a redirect)
        prepared.body = body or None
        return prepared

    def _auth(self, need: Authorize) -> Mapping[str, str]:
        if self.config.auth_type == "aksk":
            return sign(self.config, need)
        return {"X-Auth-Token": self._token(need.stale)}

    def _run(self, make: Callable[[GesConnectionConfig], Plan[T]]) -> T:
        return drive_sync(make(self.config), self._send, self._auth, self._sleep, self._warn)

    def _sleep(self, effect: Sleep) -> None:
        self._log_retry(effect)
        time.sleep(effect.seconds)

    def _token(self, stale: str | None = None) -> str:
        config = self.config

        def fetch() -> Token:
            return drive_sync(self._token_plan(config), self._send, self._no_auth, self._sleep, self._warn)

        return TOKEN_CACHE.get_or_fetch(config, fetch, mask_secret, stale)

    def get_token(self) -> str:
        """A project-scoped IAM token: from this process's cache, else the host's (see
        ``airflow_provider_ges.token_cache``), else IAM."""
        return self._token()

    def iter_backups(
        self, graph_id: str | None = None, *, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[Backup]:
        """Every backup of the project (or of one graph), each id once, in listing order."""
        return iter(self._run(lambda config: self._backups_plan(config, graph_id, page_size)))

    def list_backups(
        self,
        graph_id: str | None = None,
        *,
        graph_name: str | None = None,
        status: BackupStatus | str | None = None,
        backup_method: BackupMethod | str | None = None,
        newer_than: datetime | str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> list[Backup]:
        """The backups matching every given criterion, newest first (by start time)."""
        selection = BackupFilter.of(
            graph_name=graph_name, status=status, backup_method=backup_method, newer_than=newer_than
        )
        return selection.select(self.iter_backups(graph_id, page_size=page_size))

    def iter_graphs(self, *, page_size: int = DEFAULT_PAGE_SIZE) -> Iterator[Graph]:
        """The project's graphs (GES lists those not deleted), each id once."""
        return iter(self._run(lambda config: self._graphs_plan(config, page_size)))

    def find_graph_id(self, name: str) -> str | None:
        """The id of the project's graph called ``name`` (None: no such graph, or several)."""
        return graph_id_named(self.iter_graphs(), name)

    def look(self, watch: Watch) -> Verdict:
        """One look of a backup wait (see ``airflow_provider_ges.gate``)."""
        return self._run(lambda config: self._look_plan(config, watch))

    def graph_backups(self, listing: GraphListing) -> list[Backup] | None:
        """The backups of a graph given by id or name (``gate.GraphListing``: by name, the project's
        when no one graph has it); None when the graph found for the name is gone."""
        return self._run(lambda config: self._graph_backups_plan(config, listing))

    def get_graph(self, graph_id: str) -> Graph:
        """One graph (``GET /graphs/{graph_id}``): its ``status`` code tells running (200) from
        stopped (900) and the states in between. A missing graph is ``GesNotFoundError`` (GES.7000)."""
        return self._run(lambda config: self._show_graph_plan(config, graph_id)).graph

    def get_job(self, graph_id: str, job_id: str) -> Job:
        """A job's status (pending, running, success, failed), fail reason and times."""
        return self._run(lambda config: self._job_plan(config, graph_id, job_id))

    def list_jobs(self, graph_name: str | None = None) -> list[Job]:
        """The project's jobs (of the graph called ``graph_name``): backups, stops, starts..."""
        return self._run(lambda config: self._jobs_plan(config, graph_name))

    def start_backup(self, graph_id: str) -> JobCreated:
        """Start a manual backup of a running graph: the reply (``job_id``, and ``backup_id`` when
        GES names the new backup).

        Retried only on 429/503 (see ``resend_is_safe``): a dropped connection after sending is
        raised, as a retry could start a second backup. GES.7002 (a backup already running) and
        GES.7019 (backup quota reached) are raised as they come.
        """
        return self._run(lambda config: self._create_backup_plan(config, graph_id))

    def create_backup(self, graph_id: str) -> str:
        """Start a manual backup (see ``start_backup``); the job's id."""
        return self.start_backup(graph_id).job_id

    def delete_backup(self, graph_id: str, backup_id: str) -> None:
        """Delete one backup of a graph. Retried on transient errors but GES.7002 (running backup).

        A missing backup is ``GesNotFoundError`` (GES.7024), also when a retry follows a first try
        that went through but whose reply was lost: callers that only want it gone accept that.
        """
        self._run(lambda config: self._delete_backup_plan(config, graph_id, backup_id))

    def stop_graph(self, graph_id: str) -> str:
        """Stop a running graph (200 -> 901 -> 900); the job's id. Retried only on 429/503."""
        return self._run(lambda config: self._graph_action_plan(config, graph_id, "stop")).job_id

    def start_graph(self, graph_id: str, *, backup_id: str | None = None) -> str:
        """Start a stopped graph; with ``backup_id``, **from that backup** (its current data is
        replaced: GES's restore). The job's id. Retried only on 429/503."""
        return self._run(lambda config: self._graph_action_plan(config, graph_id, "start", backup_id)).job_id

    def export_backup(self, graph_id: str, backup_id: str, export_path: str) -> str:
        """Export a backup to OBS (``export_path``, v2 only); the job's id. Retried only on 429/503."""
        request = export_backup_request(self.config, graph_id, backup_id, export_path)
        return self._run(lambda config: self._job_start_plan(config, request)).job_id

    def import_backup(self, graph_id: str, import_path: str) -> str:
        """Import a backup from OBS (``import_path``, v2 only) as a backup of the graph (method
        ``import``); the job's id. Retried only on 429/503."""
        request = import_backup_request(self.config, graph_id, import_path)
        return self._run(lambda config: self._job_start_plan(config, request)).job_id

    def backup_download_links(self, graph_id: str, backup_id: str) -> BackupFiles:
        """A backup's files with their download links (v2 only). Each link is a credential: it is
        masked in the logs and kept out of reprs."""
        files = self._run(lambda config: self._backup_files_plan(config, graph_id, backup_id))
        for link in filter(None, (f.download_link for f in files.files)):
            mask_secret(link)
        return files

    def get_quotas(self) -> list[QuotaResource]:
        """The project's quotas (v2 only): each resource's ``type`` and how many are ``available``."""
        return self._run(self._quotas_plan).quotas.resources

    def test_connection(self) -> tuple[bool, str]:
        """One cheap authenticated call (a token, then a one-item listing). Never raises."""
        config: GesConnectionConfig | None = None
        try:
            config = self.config
            page = self._run(
                lambda config: call(
                    list_backups_request(config, None, 0, 1),
                    partial(parse_json, BackupPage),
                    self._policy(config),
                )
            )
        except Exception as err:  # the UI's Test button must get an answer, never a traceback
            message, named = explain(err, config), f"GES connection {self.ges_conn_id!r}"
            return False, message if message.startswith(named) else f"{named}: {message}"
        how = "AK/SK" if config.auth_type == "aksk" else f"IAM user {config.login!r}"
        return True, f"Connected to {config.endpoint} as {how}: project has {page.backup_count} backups"


KEEPALIVE_SECONDS = 120.0
#: A connection read by one trigger serves the triggers on it that start within this many seconds:
#: a triggerer restart or a mapped sensor starts hundreds at once, and Airflow's lookup, our parsing
#: and the masking of its secrets cost ~0.3 ms of the event loop each (1,000 triggers: 0.3 s in one
#: pass of the loop). A connection edited in the UI reaches the triggers that start after that.
CONNECTION_SHARED_FOR = 10.0


def load_transport(verify: bool | str) -> ssl.SSLContext:
    """The TLS context, and the modules httpx's first request imports (anyio's asyncio backend,
    ~20 ms where the triggerer has not loaded it yet): run in a thread, off the event loop."""
    with contextlib.suppress(ImportError):
        importlib.import_module("anyio._backends._asyncio")
    return shared_ssl_context(verify)


@functools.lru_cache(maxsize=8)
def shared_ssl_context(verify: bool | str) -> ssl.SSLContext:
    """One TLS context per ``verify`` setting for the whole process.

    Loading the CA bundle costs ~33 ms and ~0.7 MB: a thousand triggers share one context.
    """
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    import certifi  # the bundle requests uses: tasks and triggers trust the same CAs

    context = ssl.create_default_context(cafile=certifi.where())
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class GesAsyncHook(_GesHookBase):
    """The async twin of ``GesHook`` for triggers: httpx on the event loop, never blocking it."""

    def __init__(self, ges_conn_id: str = _GesHookBase.default_conn_name, **kwargs: Any) -> None:
        super().__init__(ges_conn_id, **kwargs)
        self._config: GesConnectionConfig | None = None
        self._client: httpx.AsyncClient | None = None

    async def get_config(self) -> GesConnectionConfig:
        """The connection, read once per hook; hooks of the same connection starting together
        share one read (see ``CONNECTION_SHARED_FOR``)."""
        if self._config is None:
            key = ("connection", self.ges_conn_id)
            self._config = await SHARED.get(key, CONNECTION_SHARED_FOR, self._read_config)
        return self._config

    async def _read_config(self) -> GesConnectionConfig:
        conn = await self.aget_connection(self.ges_conn_id)
        config = GesConnectionConfig.from_connection(conn)
        for secret in config.secrets:
            await amask_secret(secret)
        return config

    async def _get_client(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            config = await self.get_config()
            # loading the CA bundle takes ~30 ms of CPU once per process: not on the event loop
            verify = await asyncio.to_thread(load_transport, config.verify)
            # Idle connections outlive a poll interval: a trigger reuses its connection.
            limits = httpx.Limits(keepalive_expiry=KEEPALIVE_SECONDS)
            mounts = {
                f"{scheme}://": httpx.AsyncHTTPTransport(proxy=url, verify=verify, limits=limits)
                for scheme, url in (config.proxies or {}).items()
            }
            self._client = httpx.AsyncClient(
                verify=verify, timeout=config.timeout, mounts=mounts or None, trust_env=False, limits=limits
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __aenter__(self) -> GesAsyncHook:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _send(self, effect: Send) -> Response:
        import httpx

        request = effect.request
        client = await self._get_client()
        try:
            reply = await client.request(
                request.method,
                request.url,
                content=request.body or None,
                headers={**request.content_headers, **effect.auth_headers},
            )
        except httpx.TransportError as err:
            if isinstance(err.__context__, ssl.SSLError) or isinstance(err.__cause__, ssl.SSLError):
                raise GesApiError(
                    f"TLS verification failed for {request.base_url} (check extra 'verify')",
                    method=request.method,
                    path=request.path,
                ) from None
            raise GesTransientError(
                f"no reply from {request.base_url} ({type(err).__name__})",
                method=request.method,
                path=request.path,
            ) from None
        return Response(reply.status_code, reply.headers, reply.content)

    async def _auth(self, need: Authorize) -> Mapping[str, str]:
        config = await self.get_config()
        if config.auth_type == "aksk":
            return sign(config, need)
        return {"X-Auth-Token": await self._token(need.stale)}

    async def _sleep(self, effect: Sleep) -> None:
        self._log_retry(effect)
        await asyncio.sleep(effect.seconds)

    async def _run(self, make: Callable[[GesConnectionConfig], Plan[T]]) -> T:
        plan = make(await self.get_config())
        return await drive_async(plan, self._send, self._auth, self._sleep, self._warn)

    async def _token(self, stale: str | None = None) -> str:
        config = await self.get_config()

        async def fetch() -> Token:
            return await drive_async(
                self._token_plan(config), self._send, self._no_auth_async, self._sleep, self._warn
            )

        return await TOKEN_CACHE.aget_or_fetch(config, fetch, amask_secret, stale)

    @staticmethod
    async def _no_auth_async(need: Authorize) -> Mapping[str, str]:
        raise AssertionError("an unauthenticated call asked for a token")

    async def get_token(self) -> str:
        return await self._token()

    async def list_backups(
        self,
        graph_id: str | None = None,
        *,
        graph_name: str | None = None,
        status: BackupStatus | str | None = None,
        backup_method: BackupMethod | str | None = None,
        newer_than: datetime | str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> list[Backup]:
        """The backups matching every given criterion, newest first (by start time)."""
        selection = BackupFilter.of(
            graph_name=graph_name, status=status, backup_method=backup_method, newer_than=newer_than
        )
        return selection.select([b async for b in self.iter_backups(graph_id, page_size=page_size)])

    async def iter_backups(
        self, graph_id: str | None = None, *, page_size: int = DEFAULT_PAGE_SIZE
    ) -> AsyncIterator[Backup]:
        """Every backup of the project (or of one graph), each id once (see ``GesHook.iter_backups``)."""
        for backup in await self._run(lambda config: self._backups_plan(config, graph_id, page_size)):
            yield backup

    async def iter_graphs(self, *, page_size: int = DEFAULT_PAGE_SIZE) -> AsyncIterator[Graph]:
        """The project's graphs, each id once (see ``GesHook.iter_graphs``)."""
        for graph in await self._run(lambda config: self._graphs_plan(config, page_size)):
            yield graph

    async def find_graph_id(self, name: str) -> str | None:
        """The id of the project's graph called ``name`` (None: no such graph, or several)."""
        return graph_id_named([g async for g in self.iter_graphs()], name)

    async def look(self, watch: Watch) -> Verdict:
        """One look of a backup wait (see ``airflow_provider_ges.gate``)."""
        return await self._run(lambda config: self._look_plan(config, watch))

    async def graph_backups(self, listing: GraphListing) -> list[Backup] | None:
        """The backups of a graph given by id or name (see ``GesHook.graph_backups``)."""
        return await self._run(lambda config: self._graph_backups_plan(config, listing))

    async def get_graph(self, graph_id: str) -> Graph:
        """One graph (see ``GesHook.get_graph``)."""
        return (await self._run(lambda config: self._show_graph_plan(config, graph_id))).graph

    async def get_job(self, graph_id: str, job_id: str) -> Job:
        """A job's status, fail reason and times (see ``GesHook.get_job``)."""
        return await self._run(lambda config: self._job_plan(config, graph_id, job_id))

    async def list_jobs(self, graph_name: str | None = None) -> list[Job]:
        """The project's jobs (see ``GesHook.list_jobs``)."""
        return await self._run(lambda config: self._jobs_plan(config, graph_name))

    async def create_backup(self, graph_id: str) -> str:
        """Start a manual backup; the job's id (see ``GesHook.create_backup``)."""
        return (await self._run(lambda config: self._create_backup_plan(config, graph_id))).job_id

    async def export_backup(self, graph_id: str, backup_id: str, export_path: str) -> str:
        """Export a backup to OBS; the job's id (see ``GesHook.export_backup``)."""
        request = export_backup_request(await self.get_config(), graph_id, backup_id, export_path)
        return (await self._run(lambda config: self._job_start_plan(config, request))).job_id

    async def import_backup(self, graph_id: str, import_path: str) -> str:
        """Import a backup from OBS; the job's id (see ``GesHook.import_backup``)."""
        request = import_backup_request(await self.get_config(), graph_id, import_path)
        return (await self._run(lambda config: self._job_start_plan(config, request))).job_id

    async def backup_download_links(self, graph_id: str, backup_id: str) -> BackupFiles:
        """A backup's files with their (masked) download links (see ``GesHook.backup_download_links``)."""
        files = await self._run(lambda config: self._backup_files_plan(config, graph_id, backup_id))
        for link in filter(None, (f.download_link for f in files.files)):
            await amask_secret(link)
        return files

    async def get_quotas(self) -> list[QuotaResource]:
        """The project's quotas (see ``GesHook.get_quotas``)."""
        return (await self._run(self._quotas_plan)).quotas.resources

    async def delete_backup(self, graph_id: str, backup_id: str) -> None:
        """Delete one backup of a graph (see ``GesHook.delete_backup``)."""
        await self._run(lambda config: self._delete_backup_plan(config, graph_id, backup_id))

    async def stop_graph(self, graph_id: str) -> str:
        """Stop a running graph; the job's id (see ``GesHook.stop_graph``)."""
        return (await self._run(lambda config: self._graph_action_plan(config, graph_id, "stop"))).job_id

    async def start_graph(self, graph_id: str, *, backup_id: str | None = None) -> str:
        """Start a stopped graph, from ``backup_id`` when given (see ``GesHook.start_graph``)."""
        started = await self._run(
            lambda config: self._graph_action_plan(config, graph_id, "start", backup_id)
        )
        return started.job_id
