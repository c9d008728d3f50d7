"""A real Airflow deployment for tests: PostgreSQL, LocalExecutor, and the API server, scheduler,
dag-processor and triggerer as separate processes, all pointed at an in-process GES emulator; or the
same with CeleryExecutor: a Redis broker, Celery workers and several triggerers.

A test module in this folder uses the module-scoped ``airflow_deployment`` fixture (conftest.py)::

    from tests.deployment.stack import Deployment

    def test_something(airflow_deployment: Deployment) -> None:
        run_id = airflow_deployment.trigger("example_ges_backup_gate", conf={"graph_name": "g"})
        assert airflow_deployment.wait_run("example_ges_backup_gate", run_id) == "success"

A test module may set ``DEPLOYMENT_CONFIG = {"SECTION__KEY": "value"}`` to override Airflow settings
(e.g. ``{"SCHEDULER__USE_JOB_SCHEDULE": "True"}`` for asset-triggered runs), and
``DEPLOYMENT_EXECUTOR = "CeleryExecutor"`` with ``DEPLOYMENT_WORKERS`` (default 2),
``DEPLOYMENT_WORKER_CONCURRENCY`` (4) and ``DEPLOYMENT_TRIGGERERS`` (default 1; names ``triggerer``, or
``triggerer-1``... when more) for the Celery shape: Debian's ``redis-server`` as the broker (as an
unprivileged user, no persistence), PostgreSQL as metadata DB and result backend, each
``airflow celery worker`` its own process group. Without ``redis-server`` such a module is skipped,
unless ``GES_REQUIRE_REDIS=1`` (CI), which makes it fail. Every process gets ``GES_TOKEN_CACHE_DIR``
(``base/token-cache``), the one place a token may be written.

The DAGs folder is a fresh directory filled with ``airflow_provider_ges/example_dags/*.py`` and
``tests/deployment/dags/*.py`` at start. PostgreSQL refuses to run as root, so its throw-away cluster
lives in a temp directory owned by an unprivileged user and runs as that user (``runuser``). Every
process runs in its own process group and is stopped by it at teardown; each one's output is kept
under the module's temp directory, and its tail is attached to the report of a failing test.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests

from airflow_provider_ges.emulator import GesEmulator

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_DAGS = ROOT / "airflow_provider_ges" / "example_dags"
DEPLOYMENT_DAGS = Path(__file__).resolve().parent / "dags"
PG_USER = "gesci"
CELERY = "CeleryExecutor"
#: Airflow's terminal task states.
TERMINAL = {"success", "failed", "skipped", "upstream_failed", "removed"}
RUN_TERMINAL = {"success", "failed"}

T = TypeVar("T")


class DeploymentError(RuntimeError):
    """The deployment could not be started or did not answer in time."""


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.25) -> T:
    """Call ``probe`` until it returns something other than None/False; TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = probe()
        except (requests.RequestException, OSError) as err:
            value, last_error = None, err
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: Lines of routine chatter left out of the tails shown for a failed test.
NOISE = (
    "[http.access]",
    "Refreshing bundle",
    "Searching for files in",
    "files for bundle",
    "next dagrun info",
)


def tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as err:
        return f"({err})"
    kept = [line for line in text.splitlines() if not any(n in line for n in NOISE)]
    return "\n".join(kept[-lines:])


def rss_kb(pid: int) -> int:
    """Resident set size of a process in kB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def group_members(pgid: int) -> list[int]:
    """The pids in a process group (from /proc)."""
    pids = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the name: state, ppid, pgrp, ...
            pids.append(int(stat.split("/")[2]))
    return sorted(pids)


def _find_pg_binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if candidates:
        return candidates[0]
    raise DeploymentError(
        f"PostgreSQL's {name!r} is not on PATH nor in /usr/lib/postgresql/*/bin: install PostgreSQL "
        "(Debian: apt-get install postgresql; .ci/run does this) to run the deployment tests"
    )


def _unprivileged_user() -> str | None:
    """The user PostgreSQL and Redis run as: None when we are not root (then we run them ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        result = subprocess.run(
            ["useradd", "--system", "--no-create-home", PG_USER], capture_output=True, text=True
        )
        if result.returncode != 0:
            return "nobody"
    return PG_USER


@dataclass
class Process:
    """One process of the deployment, started in its own process group."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the group, wait, then SIGKILL whatever of the group is left."""
        if self.alive():
            self.signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout)
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)

    def rss(self) -> dict[int, int]:
        """kB resident per pid of the process group (the triggerer's runner is a child process)."""
        return {pid: rss_kb(pid) for pid in group_members(self.pid)}


class _Unprivileged:
    """A server run as an unprivileged user (when we are root) in a temp dir of its own. Not under
    pytest's tmp dir: that is 0700 root, so the user could not reach it."""

    def __init__(self, prefix: str) -> None:
        self.user = _unprivileged_user()
        self.root = Path(tempfile.mkdtemp(prefix=prefix))
        if self.user:
            shutil.chown(self.root, self.user)
            os.chmod(self.root, 0o700)
        self.port = free_port()
        self.process: Process | None = None

    def _as_user(self, *cmd: str) -> list[str]:
        return ["runuser", "-u", self.user, "--", *cmd] if self.user else list(cmd)


class RedisServer(_Unprivileged):
    """Debian's ``redis-server`` on a free loopback port: no persistence, its own process group."""

    def __init__(self, log_dir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise DeploymentError(
                "'redis-server' is not on PATH: install it (Debian: apt-get install redis-server; "
                ".ci/run does this) to run the CeleryExecutor deployment tests"
            )
        super().__init__("ges-redis-")
        self.binary = binary
        self.log = log_dir / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 30.0) -> None:
        with self.log.open("ab") as out:
            popen = subprocess.Popen(
                self._as_user(
                    self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.root),
                    "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", "",
                ),
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        self.process = Process("redis", popen, self.log)

        def pong() -> bool:
            if popen.poll() is not None:
                raise DeploymentError(f"redis-server exited:\n{tail(self.log)}")
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")

        wait_for("Redis to answer PING", pong, timeout, interval=0.1)

    def stop(self) -> None:
        if self.process:
            self.process.stop(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


class PostgresCluster(_Unprivileged):
    """A throw-away PostgreSQL cluster on a free loopback port, as an unprivileged user."""

    def __init__(self, log_dir: Path) -> None:
        self.initdb = _find_pg_binary("initdb")
        self.postgres = _find_pg_binary("postgres")
        super().__init__("ges-pg-")
        self.data = self.root / "data"
        self.log = log_dir / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://airflow@127.0.0.1:{self.port}/airflow"

    def start(self, timeout: float = 60.0) -> None:
        try:
            import psycopg2  # type: ignore[import-untyped]
        except ImportError as err:
            raise DeploymentError(
                "psycopg2 is needed for the PostgreSQL metadata DB: pip install psycopg2-binary "
                "(the [dev] extra)"
            ) from err
        with self.log.open("ab") as out:
            subprocess.run(
                self._as_user(
                    self.initdb, "-D", str(self.data), "-U", "airflow", "--auth=trust",
                    "--encoding=UTF8", "--no-sync",
                ),
                stdout=out, stderr=subprocess.STDOUT, check=True, timeout=120,
            )  # fmt: skip
        out = self.log.open("ab")
        popen = subprocess.Popen(
            self._as_user(
                self.postgres, "-D", str(self.data), "-p", str(self.port),
                "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.root}",
                "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                "-c", "max_connections=300",
            ),
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        out.close()
        self.process = Process("postgres", popen, self.log)

        def ready() -> bool:
            if not self.process or not self.process.alive():
                raise DeploymentError(f"postgres exited:\n{tail(self.log)}")
            try:
                conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="airflow", dbname="postgres")
            except psycopg2.OperationalError:
                return False  # not listening yet
            with contextlib.closing(conn):
                conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute("SELECT 1 FROM pg_database WHERE datname = 'airflow'")
                    if cur.fetchone() is None:
                        cur.execute("CREATE DATABASE airflow")
            return True

        wait_for("PostgreSQL to accept connections", ready, timeout, interval=0.2)

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        pid = self.postmaster_pid()
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)  # "fast" shutdown
        if self.process:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.popen.wait(20)
            self.process.stop(timeout=5)
        shutil.rmtree(self.root, ignore_errors=True)


class Deployment:
    """The running deployment: processes, emulator, and a small REST client.

    ``emulator`` is the in-process :class:`GesEmulator` behind ``ges_default`` (password auth) and
    ``ges_aksk`` (AK/SK auth); steer it with its methods. ``base`` holds everything written:
    ``home`` (AIRFLOW_HOME, task logs under ``home/logs``), ``dags`` and ``proc_logs`` (each process's
    output) and ``token_cache`` (``GES_TOKEN_CACHE_DIR``). ``executor`` is ``LocalExecutor`` or
    ``CeleryExecutor`` (then ``workers`` Celery workers, ``worker-1``..., with ``concurrency`` slots
    each, on a Redis broker); ``triggerers`` triggerers run (see :attr:`triggerer_names`).
    """

    SERVICES = ("api-server", "scheduler", "dag-processor")

    def __init__(
        self,
        base: Path,
        *,
        config: Mapping[str, str] | None = None,
        executor: str = "LocalExecutor",
        workers: int = 2,
        concurrency: int = 4,
        triggerers: int = 1,
    ) -> None:
        if executor not in ("LocalExecutor", CELERY):
            raise ValueError(f"executor: {executor!r}, expected 'LocalExecutor' or {CELERY!r}")
        for what, count in (("workers", workers), ("concurrency", concurrency), ("triggerers", triggerers)):
            if count < 1:
                raise ValueError(f"{what}: {count!r}, expected an integer >= 1")
        self.base = base
        self.home = base / "airflow-home"
        self.dags = base / "dags"
        self.proc_logs = base / "process-logs"
        self.token_cache = base / "token-cache"
        for path in (self.home, self.dags, self.proc_logs, self.token_cache):
            path.mkdir(parents=True, exist_ok=True)
        self.token_cache.chmod(0o700)
        self.executor = executor
        self.concurrency = concurrency
        #: ``triggerer`` alone (as before), or ``triggerer-1``, ``triggerer-2``, ...
        self.triggerer_names = (
            ["triggerer"] if triggerers == 1 else [f"triggerer-{i + 1}" for i in range(triggerers)]
        )
        self.worker_names = [f"worker-{i + 1}" for i in range(workers)] if executor == CELERY else []
        self.redis = RedisServer(self.proc_logs) if executor == CELERY else None
        # Secrets of this deployment alone, so a grep for them finds only leaks.
        self.emulator = GesEmulator(
            password=f"Pw-{secrets.token_urlsafe(18)}", sk=secrets.token_hex(20), backup_duration=3600
        )
        self.emulator.add_graph("movies")
        self.postgres = PostgresCluster(self.proc_logs)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_config = dict(config or {})
        self.processes: dict[str, Process] = {}
        self.retired: list[Process] = []  # triggerers killed or stopped by tests
        self._starts: dict[str, int] = {}
        self.session = requests.Session()
        self.timings: dict[str, float] = {}
        self.dag_files: list[str] = []

    # --- lifecycle ------------------------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        from cryptography.fernet import Fernet

        config = {
            "CORE__DAGS_FOLDER": str(self.dags),
            "CORE__LOAD_EXAMPLES": "False",
            "CORE__EXECUTOR": self.executor,
            "CORE__PARALLELISM": "8",
            "CORE__MAX_ACTIVE_TASKS_PER_DAG": "128",
            "CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "DATABASE__SQL_ALCHEMY_CONN": self.postgres.url,
            "API__HOST": "127.0.0.1",
            "API__PORT": str(self.port),
            "API__BASE_URL": self.url,
            "API__WORKERS": "1",
            "API__SECRET_KEY": secrets.token_hex(16),
            "API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            "LOGGING__LOGGING_LEVEL": "INFO",
            # New DAG files are noticed within 2 s; a file is re-parsed at most every 30 s.
            "DAG_PROCESSOR__REFRESH_INTERVAL": "2",
            "DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
            "DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL": "1",
            # A task's supervisor notices its task process ended within 1 s (default 5 s: every
            # task would hold its executor slot 5 s longer).
            "WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
            "SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "SCHEDULER__JOB_HEARTBEAT_SEC": "1",
            "SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
            # Manual and REST runs only: unpausing the @daily examples must not start scheduled runs
            # that would poll the emulator beside the tests' own (set True for asset-triggered runs).
            "SCHEDULER__USE_JOB_SCHEDULE": "False",
            # A SIGKILLed triggerer's triggers go to another one once its heartbeat is 5 s stale.
            "TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            "TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "5",
        }
        if self.redis:
            config.update({
                "CELERY__BROKER_URL": self.redis.url,
                "CELERY__RESULT_BACKEND": f"db+{self.postgres.url}",
                "CELERY__WORKER_CONCURRENCY": str(self.concurrency),
                "CORE__PARALLELISM": str(len(self.worker_names) * self.concurrency),
                # Free ports: several workers and triggerers share this host (and other deployments
                # may run beside); only the first of each serves logs (the rest read the same files).
                "LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            })  # fmt: skip
        config.update(self.extra_config)
        env.update({f"AIRFLOW__{key}": value for key, value in config.items()})
        env["AIRFLOW_HOME"] = str(self.home)
        env["GES_TOKEN_CACHE_DIR"] = str(self.token_cache)
        env.update(self.emulator.connection_env("ges_default"))
        env.update(self.emulator.connection_env("ges_aksk", auth_type="aksk"))
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def airflow_cmd(self, *args: str) -> list[str]:
        script = Path(sys.executable).parent / "airflow"
        return [str(script), *args] if script.exists() else [sys.executable, "-m", "airflow", *args]

    def start_process(self, name: str, *args: str) -> Process:
        count = self._starts.get(name, 0) + 1
        self._starts[name] = count
        log = self.proc_logs / (f"{name}.log" if count == 1 else f"{name}-{count}.log")
        with log.open("ab") as out:
            popen = subprocess.Popen(
                self.airflow_cmd(*args),
                env=self._env,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = Process(name, popen, log)
        self.processes[name] = process
        return process

    def copy_dags(self) -> None:
        for source in sorted([*EXAMPLE_DAGS.glob("*.py"), *DEPLOYMENT_DAGS.glob("*.py")]):
            if source.name.startswith("_"):
                continue
            shutil.copy2(source, self.dags / source.name)
            self.dag_files.append(source.name)

    def start(self, timeout: float = 180.0) -> None:
        t0 = time.monotonic()
        self.emulator.start()
        self.copy_dags()
        self.postgres.start()
        self.timings["postgres"] = time.monotonic() - t0
        if self.redis:
            self.redis.start()
            self.timings["redis"] = time.monotonic() - t0
        self._env = self.environment()
        with (self.proc_logs / "db-migrate.log").open("ab") as out:
            result = subprocess.run(
                self.airflow_cmd("db", "migrate"),
                env=self._env, cwd=self.home, stdout=out, stderr=subprocess.STDOUT, timeout=timeout,
            )  # fmt: skip
        if result.returncode != 0:
            raise DeploymentError(f"airflow db migrate failed:\n{tail(self.proc_logs / 'db-migrate.log')}")
        self.timings["db migrate"] = time.monotonic() - t0
        for name in self.SERVICES:
            self.start_process(name, name)
        for name in self.triggerer_names:
            self.start_triggerer(name)
        for i, name in enumerate(self.worker_names):
            self.start_process(
                name, "celery", "worker", "--concurrency", str(self.concurrency), "--celery-hostname",
                f"{name}@%h", *(["--skip-serve-logs"] if i else []),
            )  # fmt: skip
        self.wait_healthy(timeout=max(10.0, timeout - (time.monotonic() - t0)))
        self.timings["healthy"] = time.monotonic() - t0
        if self.worker_names:
            self.wait_workers(timeout=max(10.0, timeout - (time.monotonic() - t0)))
            self.timings["workers ready"] = time.monotonic() - t0
        self.wait_parsed(timeout=120.0)
        self.timings["dags parsed"] = time.monotonic() - t0

    def stop(self) -> None:
        for process in [*self.processes.values(), *self.retired]:
            t0 = time.monotonic()
            process.stop()
            self.timings[f"stop {process.name}"] = time.monotonic() - t0
        self.timings["stray processes killed"] = len(self.kill_strays())
        if self.redis:
            self.redis.stop()
        self.postgres.stop()
        self.emulator.stop()

    def kill_strays(self) -> list[int]:
        """Kill any process still carrying this deployment's AIRFLOW_HOME (e.g. a task that left
        its group); returns their pids. Only processes this deployment started carry it."""
        marker = f"AIRFLOW_HOME={self.home}".encode()
        strays = []
        for environ in glob.glob("/proc/[0-9]*/environ"):
            pid = int(environ.split("/")[2])
            if pid == os.getpid():
                continue
            try:
                if marker in Path(environ).read_bytes().split(b"\0"):
                    strays.append(pid)
            except OSError:
                continue
        for pid in strays:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return strays

    def check_alive(self) -> None:
        for process in self.processes.values():
            if not process.alive():
                raise DeploymentError(
                    f"airflow {process.name} exited with {process.popen.returncode}:\n{tail(process.log)}"
                )

    def wait_healthy(self, timeout: float = 120.0) -> dict[str, Any]:
        def healthy() -> dict[str, Any] | None:
            self.check_alive()
            reply = requests.get(f"{self.url}/api/v2/monitor/health", timeout=5)
            if reply.status_code != 200:
                return None
            health = reply.json()
            ok = all(
                (health.get(part) or {}).get("status") == "healthy"
                for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
            )
            return health if ok else None

        health = wait_for("the API server to report every component healthy", healthy, timeout, 0.5)
        # The execution API (what tasks call) loads on its first request, which takes seconds: take
        # that here rather than in the first task.
        requests.get(f"{self.url}/execution/health", timeout=60)
        token = self.session.get(f"{self.url}/auth/token", timeout=10)
        if token.status_code in (200, 201):  # needed before 3.3's all-admins middleware; harmless after
            self.session.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        return health

    def wait_workers(self, timeout: float = 60.0) -> None:
        """Every Celery worker connected to the broker and ready (its log says ``<name>@host ready.``)."""

        def ready() -> bool:
            self.check_alive()
            return all(
                re.search(rf"{name}@\S+ ready\.", self.processes[name].log.read_text(errors="replace"))
                for name in self.worker_names
            )

        wait_for(f"the Celery workers {self.worker_names} to be ready", ready, timeout, 0.5)

    def wait_parsed(self, timeout: float = 120.0) -> None:
        """Every copied DAG file parsed (a DAG from it listed) and no import errors."""

        def parsed() -> bool:
            self.check_alive()
            errors = self.get("/api/v2/importErrors")["import_errors"]
            if errors:
                raise DeploymentError(f"DAG import errors: {json.dumps(errors, indent=1)}")
            files = {Path(d["fileloc"]).name for d in self.get_all("/api/v2/dags", "dags")}
            return set(self.dag_files) <= files

        wait_for(f"the dag-processor to parse {self.dag_files}", parsed, timeout, 0.5)

    # --- the triggerer --------------------------------------------------------------------------------

    @property
    def triggerers(self) -> dict[str, Process]:
        """The running triggerers by name."""
        return {n: self.processes[n] for n in self.triggerer_names if n in self.processes}

    @property
    def triggerer(self) -> Process:
        """The first running triggerer (the only one in the default shape)."""
        return next(iter(self.triggerers.values()))

    def kill_triggerer(
        self, sig: int = signal.SIGKILL, timeout: float = 30.0, name: str | None = None
    ) -> Process:
        """SIGKILL a triggerer's whole process group (a crash, an OOM kill of the pod), or SIGTERM
        its main process (a deploy) and wait for it to exit; returns the retired process. ``name``:
        one of :attr:`triggerer_names`, by default the first running."""
        process = self.processes.pop(name or self.triggerer.name)
        self.retired.append(process)
        if sig == signal.SIGKILL:
            process.signal_group(signal.SIGKILL)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, sig)
        try:
            process.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise DeploymentError(f"triggerer {process.pid} still running {timeout} s after {sig}") from None
        return process

    def start_triggerer(self, name: str | None = None) -> Process:
        """Start triggerer ``name`` (by default the first of :attr:`triggerer_names` not running);
        only the first of them serves its logs."""
        name = name or next((n for n in self.triggerer_names if n not in self.processes), None)
        if name is None or name in self.processes:
            raise DeploymentError(f"triggerer {name or self.triggerer_names} already running")
        if name not in self.triggerer_names:
            raise ValueError(f"triggerer name: {name!r}, expected one of {self.triggerer_names}")
        skip = ["--skip-serve-logs"] if name != self.triggerer_names[0] else []
        return self.start_process(name, "triggerer", *skip)

    # --- REST -----------------------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        reply = self.session.request(method, f"{self.url}{path}", **kwargs)
        if reply.status_code >= 400:
            raise requests.HTTPError(
                f"{method} {path}: {reply.status_code} {reply.text[:500]}", response=reply
            )
        return reply

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params).json()

    def get_all(self, path: str, key: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a paged list (the API caps a page at ``[api] maximum_page_limit``, 100)."""
        items: list[dict[str, Any]] = []
        while True:
            page = self.get(path, offset=len(items), limit=100, **params)
            items.extend(page[key])
            if not page[key] or len(items) >= page.get("total_entries", 0):
                return items

    def unpause(self, dag_id: str) -> None:
        self.request("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None, *, unpause: bool = True) -> str:
        """Start a run as the UI's "Trigger" does with no logical date; returns its run id."""
        if unpause:
            self.unpause(dag_id)
        body = {"logical_date": None, "conf": dict(conf or {})}
        return str(self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body).json()["dag_run_id"])

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"))

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.get_all(f"/api/v2/dags/{dag_id}/dagRuns", "dag_runs")

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 120.0) -> str:
        """Wait for the run to finish; returns its state."""

        def done() -> str | None:
            self.check_alive()
            state = self.run(dag_id, run_id)["state"]
            return state if state in RUN_TERMINAL else None

        return wait_for(f"run {dag_id}/{run_id} to finish", done, timeout, 0.5)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.get_all(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", "task_instances")

    def states(self, dag_id: str, run_id: str) -> dict[str, tuple[str | None, int]]:
        """``{task_id (with [map_index] when mapped): (state, try_number)}``."""
        return {
            ti["task_id"] + (f"[{ti['map_index']}]" if ti["map_index"] >= 0 else ""): (
                ti["state"],
                ti["try_number"],
            )
            for ti in self.task_instances(dag_id, run_id)
        }

    def wait_task_state(
        self, dag_id: str, run_id: str, task_id: str, states: set[str], timeout: float = 60.0
    ) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            self.check_alive()
            path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
            ti = self.get(path)
            if ti["state"] in states:
                return dict(ti)
            if ti["state"] in TERMINAL:
                log = self.task_log(dag_id, run_id, task_id, max(1, ti["try_number"]))
                raise AssertionError(f"{task_id} ended {ti['state']}, not {sorted(states)}:\n{log}")
            return None

        return wait_for(f"{dag_id}/{run_id}/{task_id} to be {sorted(states)}", reached, timeout, 0.3)

    def xcom(
        self, dag_id: str, run_id: str, task_id: str, *, map_index: int = -1, key: str = "return_value"
    ) -> Any:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        value = self.get(path, map_index=map_index)["value"]
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return json.loads(value)
        return value

    def task_log(
        self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, *, map_index: int = -1
    ) -> str:
        """The task's log as the UI shows it (every line's ``event``, one a line)."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
        content = self.request(
            "GET", path, params={"full_content": "true", "map_index": map_index},
            headers={"Accept": "application/json"},
        ).json()["content"]  # fmt: skip
        lines = []
        for item in content:
            if isinstance(item, dict):
                lines.append(" ".join(str(item.get(k, "")) for k in ("timestamp", "level", "event")))
                extra = {k: v for k, v in item.items() if k not in ("timestamp", "level", "event")}
                if extra:
                    lines.append(f"    {extra}")
            else:
                lines.append(str(item))
        return "\n".join(lines)

    def released(
        self, dag_id: str, run_id: str, task_id: str, map_index: int = -1, try_number: int = 1
    ) -> bool:
        """Whether the scheduler has taken the executor's event for the worker that ran this try
        (for a deferred task: the worker that deferred it), as its log says.

        Until then a trigger that fires makes Airflow 3.3.2 retry or fail the task: the stale
        defer-exit "success" meets a task instance the scheduler already queued again
        (apache/airflow#67287, the queued-state variant of #66374; 3.3.2 guards only the scheduled
        state). Tests that flip a backup right after deferral wait for this first, so they test the
        provider, not that race."""
        return self._released(self.scheduler_log(), dag_id, run_id, task_id, map_index, try_number)

    def wait_released(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        map_indexes: list[int] | None = None,
        try_number: int = 1,
        timeout: float = 60.0,
    ) -> None:
        """Wait until :meth:`released` holds for the task (or each of its ``map_indexes``)."""
        wanted = map_indexes if map_indexes is not None else [-1]

        def all_released() -> bool:
            self.check_alive()
            text = self.scheduler_log()
            return all(self._released(text, dag_id, run_id, task_id, i, try_number) for i in wanted)

        wait_for(
            f"the scheduler to take the deferring workers' ends ({dag_id}/{task_id})",
            all_released,
            timeout,
            0.5,
        )
        time.sleep(0.5)  # the event is handled right after that line, in the same scheduler loop

    @staticmethod
    def _released(text: str, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> bool:
        key = (
            f"TaskInstanceKey(dag_id={dag_id!r}, task_id={task_id!r}, run_id={run_id!r}, "
            f"try_number={try_number}, map_index={map_index})"
        )
        return f"Received executor event with state success for task instance {key}" in text

    def state_mismatches(self, dag_id: str, run_id: str, task_id: str) -> list[str]:
        """The scheduler's "executor reported that the task instance ... finished with state X, but
        the task instance's state attribute is Y" lines for this task: Airflow failing or retrying a
        try on a stale executor event (apache/airflow#67287, #66374, #72716 after a deferral;
        #71172 in reschedule mode), not anything the task did."""
        prefix = f"<TaskInstance: {dag_id}.{task_id} {run_id} "
        return [
            line
            for line in self.scheduler_log().splitlines()
            if prefix in line and "but the task instance's state attribute is" in line
        ]

    def scheduler_log(self) -> str:
        logs = [p for p in [*self.retired, *self.processes.values()] if p.name == "scheduler"]
        return "\n".join(p.log.read_text(errors="replace") for p in logs)

    # --- what it wrote --------------------------------------------------------------------------------

    def written_files(self) -> list[Path]:
        """Every file the deployment wrote: AIRFLOW_HOME (task, triggerer, dag-processor logs, config)
        and each process's output; not the DAG copies (we wrote those) nor the token cache (the one
        place a token may be kept: :meth:`token_cache_files`)."""
        skip = (self.dags, self.token_cache)
        return sorted(
            p for p in self.base.rglob("*") if p.is_file() and not any(p.is_relative_to(s) for s in skip)
        )

    def token_cache_files(self) -> list[Path]:
        return sorted(p for p in self.token_cache.rglob("*") if p.is_file())

    def sql(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        """Rows of a query on the metadata DB (what REST does not show, e.g. a trigger's triggerer)."""
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.postgres.port, user="airflow", dbname="airflow")
        with contextlib.closing(conn), conn.cursor() as cur:
            cur.execute(query, args)
            return list(cur.fetchall())

    def failure_report(self, lines: int = 40) -> str:
        parts = [f"deployment under {self.base}; API {self.url}"]
        for process in [*self.retired, *self.processes.values()]:
            state = "running" if process.alive() else f"exited {process.popen.returncode}"
            parts.append(f"----- {process.name} (pid {process.pid}, {state}): {process.log}")
            parts.append(tail(process.log, lines))
        parts.append(f"----- postgres: {self.postgres.log}\n{tail(self.postgres.log, 15)}")
        task_logs = sorted((self.home / "logs").rglob("*.log"), key=lambda p: p.stat().st_mtime)[-4:]
        for path in task_logs:
            parts.append(f"----- {path.relative_to(self.home)}\n{tail(path, lines)}")
        return "\n".join(parts)


def say(config: pytest.Config, text: str) -> None:
    """Write a line to the terminal even while pytest captures output (figures for the CI log)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        print(text, file=sys.stderr)
        return
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        reporter.write_line(text)
