"""``python -m airflow_provider_ges.emulator`` as a user runs it."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
import requests

from airflow_provider_ges.emulator import DEFAULT_PROJECT_ID, DEFAULT_USER, __main__
from airflow_provider_ges.emulator import ctl as ctl_module
from airflow_provider_ges.emulator.data import SEED_EXAMPLE
from airflow_provider_ges.emulator.defaults import DEFAULT_PORT

from .test_emulator_lifecycle import wait_for


class Cli:
    """A running CLI process and what it printed."""

    def __init__(self, *args: str) -> None:
        cmd = [sys.executable, "-m", "airflow_provider_ges.emulator", "--port", "0", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        try:
            self.lines = [self.proc.stdout.readline()]
            while self.lines[-1] and not self.lines[-1].startswith("# AK/SK"):  # the banner's last line
                self.lines.append(self.proc.stdout.readline())
            name, _, value = self.lines[2].strip().partition("=")
            assert name == "export AIRFLOW_CONN_GES_DEFAULT", self.lines
            self.conn: dict[str, Any] = json.loads(shlex.split(value)[0])
        except BaseException:  # no process left behind by a banner this test does not expect
            self.proc.kill()
            self.proc.wait()
            raise

    def token(self) -> str:
        conn = self.conn
        user = {
            "name": conn["login"],
            "password": conn["password"],
            "domain": {"name": conn["extra"]["domain_name"]},
        }
        body = {
            "auth": {
                "identity": {"methods": ["password"], "password": {"user": user}},
                "scope": {"project": {"id": conn["extra"]["project_id"]}},
            }
        }
        response = requests.post(f"{conn['extra']['iam_endpoint']}/v3/auth/tokens", json=body, timeout=5)
        assert response.status_code == 201, response.text
        return response.headers["X-Subject-Token"]

    def list_backups(self, **params: Any) -> requests.Response:
        url = f"{self.conn['host']}/v1.0/{self.conn['extra']['project_id']}/graphs/backups"
        return requests.get(url, params=params, headers={"X-Auth-Token": self.token()}, timeout=5)

    def ges(self, method: str, path: str, **kw: Any) -> requests.Response:
        """A GES call (``path`` under ``/v1.0/{project}/graphs``) with a fresh token."""
        url = f"{self.conn['host']}/v1.0/{self.conn['extra']['project_id']}/graphs{path}"
        return requests.request(method, url, headers={"X-Auth-Token": self.token()}, timeout=5, **kw)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=10)


@pytest.fixture
def cli() -> Iterator[type[Cli]]:
    started: list[Cli] = []

    class Tracked(Cli):
        def __init__(self, *args: str) -> None:
            super().__init__(*args)
            started.append(self)

    yield Tracked
    for run in started:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()
        for stream in (run.proc.stdout, run.proc.stderr):
            if stream:
                stream.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_prints_connection_serves_and_exits_cleanly(cli: type[Cli], sig: int) -> None:
    run = cli("--backups", "7", "--graphs", "2")
    assert run.lines[0].startswith("# GES emulator on http://127.0.0.1:")
    port = int(run.conn["host"].rsplit(":", 1)[1])
    assert port > 0 and f"(port {port})" in run.lines[0]
    assert run.conn["conn_type"] == "ges" and run.conn["login"] == DEFAULT_USER
    assert run.conn["extra"]["project_id"] == DEFAULT_PROJECT_ID
    assert run.conn["extra"]["iam_endpoint"] == run.conn["host"]
    assert '"auth_type": "aksk"' in run.lines[3] and run.lines[3].startswith("# AK/SK")
    assert run.lines[1] == "# Paste the export line in the shell that runs Airflow:\n" and len(run.lines) == 4
    assert run.list_backups().json()["backupCount"] == 7
    assert run.stop(sig) == 0


def test_options_flow_through(cli: type[Cli]) -> None:
    options = f"--user alice --password s3cret --domain acme --project-id {'1' * 32} --inflate-count 5"
    run = cli("--data", str(SEED_EXAMPLE), "--faults", "503:every=2", *options.split())
    assert (run.conn["login"], run.conn["password"], run.conn["extra"]["domain_name"]) == (
        "alice",
        "s3cret",
        "acme",
    )
    first = run.list_backups(limit=2)
    assert first.status_code == 200
    assert first.json()["backupCount"] == 8
    assert [b["id"] for b in first.json()["backupList"]] == [
        b["id"] for b in json.loads(SEED_EXAMPLE.read_text())["backupList"][:2]
    ]
    assert run.list_backups().status_code == 503
    assert run.stop() == 0


def test_max_limit_option(cli: type[Cli]) -> None:
    run = cli("--max-limit", "3")
    assert run.list_backups(limit=3).status_code == 200
    refused = run.list_backups(limit=4)
    assert refused.status_code == 400 and refused.json()["errorCode"] == "GES.0001"
    assert "limit" in refused.json()["errorMessage"]
    assert run.stop() == 0


def test_bad_fault_spec_is_a_usage_error() -> None:
    cmd = [sys.executable, "-m", "airflow_provider_ges.emulator", "--port", "0", "--faults", "teapot:every=1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "unknown fault kind" in done.stderr


# --- the ctl CLI against a CLI server -----------------------------------------------------------------


def ctl(*args: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GES_EMULATOR_URL"}
    if url is not None:
        env["GES_EMULATOR_URL"] = url
    cmd = [sys.executable, "-m", "airflow_provider_ges.emulator", "ctl", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=env)


def test_ctl_steers_a_cli_server(cli: type[Cli]) -> None:
    run = cli("--control", "--backups", "6", "--backup-duration", "0.1")
    url = run.conn["host"]
    added = ctl("--url", url, "add-backup", "--graph", "movies", "--status", "backing_up")
    assert added.returncode == 0, added.stderr
    backup = json.loads(added.stdout)
    assert backup["graph_name"] == "movies" and backup["status"] == "backing_up"
    listed = run.list_backups(limit=100).json()["backupList"]
    assert listed[-1] == backup and len(listed) == 7
    done = ctl("set-status", backup["id"], "success", url=url)  # the URL from the environment
    assert done.returncode == 0 and json.loads(done.stdout)["status"] == "success"
    graph = json.loads(ctl("add-graph", "extra_graph", "--id", "g-1", url=url).stdout)
    assert graph["id"] == "g-1" and graph["name"] == "extra_graph"
    assert (
        json.loads(ctl("fail-next-job", "--graph", "g-1", "--reason", "boom", url=url).stdout)["reason"]
        == "boom"
    )
    assert json.loads(ctl("faults", "503:every=1", url=url).stdout) == {"spec": "503:every=1"}
    assert run.list_backups().status_code == 503
    assert ctl("faults", "", url=url).returncode == 0
    assert json.loads(ctl("delete-graph", "extra_graph", url=url).stdout) == {"id": "g-1"}
    stats = json.loads(ctl("stats", url=url).stdout)
    assert stats["list_backups"] == 2 and stats["tokens_issued"] == 2
    missing = ctl("set-status", "nope", "success", url=url)
    assert (missing.returncode, missing.stdout, missing.stderr) == (2, "", "error: no backup 'nope'\n")
    assert run.stop() == 0


def test_after_faults_job_states_and_graph_status(cli: type[Cli]) -> None:
    faults = "504:scope=create:after=1:count=1"
    run = cli("--control", "--faults", faults, "--job-pending", "30", "--job-wait-state", "waiting")
    url = run.conn["host"]
    movies = run.ges("GET", "").json()["graphs"][0]
    assert run.ges("POST", f"/{movies['id']}/backups").status_code == 504
    assert run.list_backups(limit=100).json()["backupList"][-1]["status"] == "backing_up"  # made anyway
    jobs = run.ges("GET", "/jobs", params={"graph_name": "movies"}).json()["jobList"]
    assert [(job["jobName"], job["status"]) for job in jobs] == [("BackupGraph", "waiting")]

    ctl("--url", url, "add-graph", "sales")
    shown = ctl("set-graph-status", "sales", "206", "--then", "200", "--after", "1", url=url)
    assert shown.returncode == 0, shown.stderr
    sales = json.loads(shown.stdout)
    assert sales["status"] == "206" and run.ges("GET", f"/{sales['id']}").json()["graph"]["status"] == "206"
    refused = run.ges("POST", f"/{sales['id']}/action", params={"action_id": "stop"})
    assert refused.status_code == 400 and refused.json()["errorCode"] == "GES.7001"

    assert json.loads(ctl("faults", "drop:scope=delete:after=1", url=url).stdout)["spec"]
    backup = run.list_backups().json()["backupList"][0]
    with pytest.raises(requests.ConnectionError):
        run.ges("DELETE", f"/{backup['graphId']}/backups/{backup['id']}")
    assert json.loads(ctl("faults", "--clear", url=url).stdout) == {"spec": ""}
    second = run.list_backups().json()["backupList"][0]
    assert second["id"] != backup["id"]  # the dropped delete was carried out
    assert run.ges("DELETE", f"/{second['graphId']}/backups/{second['id']}").status_code == 200

    settings = json.loads(ctl("settings", "--job-wait-state", "pending", url=url).stdout)
    assert (settings["job_wait_state"], settings["job_pending"]) == ("pending", 30.0)
    wait_for(lambda: run.ges("GET", f"/{sales['id']}").json()["graph"]["status"] == "200")  # 1 s on
    stats = json.loads(ctl("stats", url=url).stdout)
    assert (stats["faults_injected"], stats["replies_lost"], stats["fault_drop"]) == (2, 2, 1)
    assert ctl("faults", url=url).returncode == 2  # a spec or --clear
    assert run.stop() == 0


def test_ctl_errors(cli: type[Cli]) -> None:
    run = cli()  # no --control
    disabled = ctl("stats", url=run.conn["host"])
    assert disabled.returncode == 2 and "control API is disabled" in disabled.stderr
    assert "Traceback" not in disabled.stderr
    run.stop()
    gone = ctl("stats", url=run.conn["host"])
    assert gone.returncode == 2 and gone.stderr.startswith(
        f"error: the emulator at {run.conn['host']} is not reachable"
    )
    assert "Traceback" not in gone.stderr
    usage = ctl("set-status", "some-id", "finished", url=run.conn["host"])
    assert usage.returncode == 2 and "invalid choice" in usage.stderr


def test_cli_serves_a_movies_graph(cli: type[Cli]) -> None:
    run = cli("--graphs", "2")
    url = f"{run.conn['host']}/v1.0/{run.conn['extra']['project_id']}/graphs"
    graphs = requests.get(url, headers={"X-Auth-Token": run.token()}, timeout=5).json()["graphs"]
    assert [g["name"] for g in graphs][:1] == ["movies"] and len(graphs) == 2
    assert run.stop() == 0


# --- the first hour: port, banner, listings, help -----------------------------------------------------


def test_the_default_port_is_no_well_known_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GES_EMULATOR_URL", raising=False)
    assert __main__.build_parser().get_default("port") == DEFAULT_PORT
    assert ctl_module.build_parser().get_default("url") == f"http://127.0.0.1:{DEFAULT_PORT}"
    # not Airflow's API server (8080), nor another common development or database port, nor ephemeral
    assert DEFAULT_PORT not in {8000, 8080, 8443, 8793, 8794, 8888, 5432, 5555, 6379, 3306, 9090, 18080}
    assert 1024 < DEFAULT_PORT < 32768


def test_a_port_in_use_is_one_line_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cmd = [sys.executable, "-m", "airflow_provider_ges.emulator", "--port", str(port)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        f"error: port {port} on 127.0.0.1 is in use (another server listens there): "
        "use --port 0 for any free port, or --port N\n"
    )


def test_the_banner_is_a_line_to_paste_and_names_the_graphs(cli: type[Cli]) -> None:
    run = cli("--control", "--graphs", "3", "--graph-names", "movies,people")
    graphs = ", ".join(g["name"] for g in run.ges("GET", "").json()["graphs"])
    assert graphs.startswith("movies, people, ")
    assert f", 3 graphs ({graphs}), 20 backups." in run.lines[0]
    assert run.lines[1] == "# Paste the export lines in the shell that runs Airflow (and ctl):\n"
    pasted = subprocess.run(
        ["bash", "-c", f"{run.lines[2]}{run.lines[3]}printenv AIRFLOW_CONN_GES_DEFAULT GES_EMULATOR_URL"],
        capture_output=True,
        text=True,
    )
    conn, url = pasted.stdout.splitlines()
    assert (json.loads(conn), url) == (run.conn, run.conn["host"])
    assert run.lines[3].endswith("  # for: python -m airflow_provider_ges.emulator ctl --help\n")
    assert run.lines[4].startswith("# AK/SK instead: export AIRFLOW_CONN_GES_DEFAULT='{")
    assert run.stop() == 0


def test_many_graphs_are_named_in_part(cli: type[Cli]) -> None:
    run = cli("--graphs", "7", "--backups", "0")
    assert ", 7 graphs (movies, " in run.lines[0] and " and 2 more), 0 backups." in run.lines[0]
    assert run.stop() == 0


def test_help_lists_ctl_and_its_commands() -> None:
    cmd = [sys.executable, "-m", "airflow_provider_ges.emulator", "--help"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0
    assert "python -m airflow_provider_ges.emulator ctl [--url URL] COMMAND" in done.stdout
    assert f"(default {DEFAULT_PORT})" in done.stdout
    for name, text in ctl_module.commands():
        assert f"  {name:<17} {text}" in done.stdout
    assert {"graphs", "backups", "add-backup", "set-status", "stats"} <= {n for n, _ in ctl_module.commands()}


def test_ctl_lists_graphs_and_backups_as_tables(cli: type[Cli]) -> None:
    run = cli("--control", "--graphs", "2", "--backups", "0")
    url = run.conn["host"]
    assert ctl("backups", url=url).stdout.splitlines()[1:] == ["(none)"]
    ctl("add-backup", "--graph", "movies", "--id", "b-done", "--size", "64", url=url)
    ctl("add-backup", "--graph", "movies", "--status", "backing_up", "--id", "b-running", url=url)
    other = run.ges("GET", "").json()["graphs"][1]
    ctl("add-backup", "--graph", other["name"], "--status", "failed", "--id", "b-failed", url=url)
    graphs = ctl("graphs", url=url)
    assert graphs.returncode == 0, graphs.stderr
    rows = [line.split() for line in graphs.stdout.splitlines()]
    assert rows[0] == ["NAME", "ID", "STATUS", "BACKUPS"]
    movies = run.ges("GET", "").json()["graphs"][0]
    assert rows[1:] == [
        ["movies", movies["id"], "903", "2"],
        [other["name"], other["id"], "200", "1"],
    ]  # 903: b-running
    table = ctl("backups", "--graph", "movies", url=url).stdout.splitlines()
    assert table[0].split() == ["ID", "NAME", "STATUS", "METHOD", "START", "(UTC)", "END", "(UTC)", "MB"]
    assert [line.split()[0] for line in table[1:]] == ["b-done", "b-running"]
    running = table[2].split()
    assert (running[2], running[3], running[5], running[6]) == ("backing_up", "manual", "-", "0")
    assert table[1].split()[-1] == "64"
    failed = ctl("backups", "--status", "failed", url=url).stdout.splitlines()
    assert [line.split()[0] for line in failed[1:]] == ["b-failed"]
    missing = ctl("backups", "--graph", "nope", url=url)
    assert (missing.returncode, missing.stderr) == (2, "error: no graph 'nope'\n")
    assert ctl("backups", "--status", "done", url=url).returncode == 2  # argparse: invalid choice
    assert run.stop() == 0


def test_ctl_add_backup_starts_now_unless_told(cli: type[Cli]) -> None:
    run = cli("--control")
    url = run.conn["host"]
    before = time.time()
    now = json.loads(ctl("add-backup", "--graph", "movies", url=url).stdout)
    assert before - 1 <= now["startTimestamp"] / 1000 <= time.time()  # not backdated: a gate counts it
    assert (now["status"], now["endTimestamp"]) == ("success", now["startTimestamp"])  # ends now too
    then = json.loads(
        ctl("add-backup", "--graph", "movies", "--start", "2026-01-02T03:04:05Z", url=url).stdout
    )
    start = datetime.fromisoformat("2026-01-02T03:04:05+00:00").timestamp()
    assert (then["startTimestamp"], then["endTimestamp"]) == (start * 1000, (start + 60) * 1000)
    assert run.stop() == 0


class _NotTheEmulator(BaseHTTPRequestHandler):
    """Another web server on the port (Airflow's API server, say): an HTML page for any path."""

    def do_GET(self) -> None:
        body = b"<!doctype html><title>Airflow</title>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_PUT = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.parametrize("status", [200, 404])
def test_ctl_says_plainly_when_it_is_not_the_emulator(status: int) -> None:
    class Handler(_NotTheEmulator):
        def send_response(self, code: int, message: str | None = None) -> None:
            super().send_response(status, message)

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        for args in (["stats"], ["graphs"], ["add-backup", "--graph", "movies"]):
            done = ctl(*args, url=url)
            assert (done.returncode, done.stdout) == (2, "")
            assert done.stderr.startswith(f"error: {url} is not a GES emulator: another server (")
            assert f"answered there with HTTP {status}. Start the emulator with --control" in done.stderr
            assert len(done.stderr.splitlines()) == 1
    finally:
        server.shutdown()
        server.server_close()
