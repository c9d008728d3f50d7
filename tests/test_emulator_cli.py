"""``python -m airflow_provider_ges.emulator`` as a user runs it."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from airflow_provider_ges.emulator import DEFAULT_PROJECT_ID, DEFAULT_USER
from airflow_provider_ges.emulator.data import SEED_EXAMPLE


class Cli:
    """A running CLI process and what it printed."""

    def __init__(self, *args: str) -> None:
        cmd = [sys.executable, "-m", "airflow_provider_ges.emulator", "--port", "0", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.lines = [self.proc.stdout.readline() for _ in range(3)]
        name, _, value = self.lines[1].strip().partition("=")
        assert name == "AIRFLOW_CONN_GES_DEFAULT", self.lines
        self.conn: dict[str, Any] = json.loads(shlex.split(value)[0])

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
    assert '"auth_type": "aksk"' in run.lines[2] and run.lines[2].startswith("# AK/SK")
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
