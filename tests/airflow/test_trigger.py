"""GesBackupTrigger on a real event loop against the emulator: exactly one event per outcome."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_ges.emulator import GesEmulator
from airflow_provider_ges.triggers.ges import GesBackupTrigger

START = datetime.now(timezone.utc) - timedelta(hours=1)


def trigger(**gate: Any) -> GesBackupTrigger:
    gate.setdefault("graph_name", "movies")
    gate.setdefault("newer_than", START.isoformat())
    timeout = gate.pop("timeout", 30.0)
    return GesBackupTrigger(
        ges_conn_id="ges_default", gate=gate, poll_interval=0.2, end_time=time.time() + timeout
    )


def events(trig: GesBackupTrigger) -> list[dict[str, Any]]:
    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trig.run()]

    return asyncio.run(asyncio.wait_for(collect(), 60))


@pytest.fixture
def emu(ges_connection: GesEmulator) -> GesEmulator:
    ges_connection.add_graph("movies")
    ges_connection.add_backup("movies", status="success", start=START - timedelta(hours=1))  # too old
    return ges_connection


@pytest.mark.ges_emulator(graphs=0, backups=0)
def test_success_mid_wait_is_one_event_with_the_backup(emu: GesEmulator) -> None:
    new = emu.add_backup("movies", status="backing_up", start=START + timedelta(minutes=5))
    emu.set_backup_status_later(new["id"], "success", 0.7)
    (event,) = events(trigger())
    assert event["status"] == "success"
    assert event["backup"]["id"] == new["id"] and event["backup"]["status"] == "success"
    assert emu.counters["list_graph_backups"] >= 2  # the graph's own listing, after one look-up
    assert emu.counters["list_graphs"] == 1 and emu.counters["list_backups"] == 0
    assert emu.counters["tokens_issued"] == 1


@pytest.mark.ges_emulator(graphs=0, backups=0)
def test_failed_backup_is_a_failed_event(emu: GesEmulator) -> None:
    new = emu.add_backup("movies", status="backing_up", start=START + timedelta(minutes=5))
    emu.set_backup_status_later(new["id"], "failed", 0.5)
    (event,) = events(trigger())
    assert event["status"] == "failed" and event["backup"]["id"] == new["id"]
    assert new["id"] in event["message"] and "movies" in event["message"]


@pytest.mark.ges_emulator(graphs=0, backups=0)
def test_deadline_is_a_timeout_event(emu: GesEmulator) -> None:
    started = time.monotonic()
    (event,) = events(trigger(timeout=1.0))
    assert event["status"] == "timeout" and "movies" in event["message"]
    assert 0.9 <= time.monotonic() - started < 5


@pytest.mark.ges_emulator(graphs=0, backups=0)
def test_wrong_password_is_an_error_event_after_one_iam_call(
    emu: GesEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = emu.connection()
    conn["password"] = "wrong-password-123"
    monkeypatch.setenv("AIRFLOW_CONN_GES_DEFAULT", json.dumps(conn))
    (event,) = events(trigger())
    assert event["status"] == "error" and "401" in event["message"]
    assert "wrong-password-123" not in event["message"]
    assert emu.counters["create_token"] == 1


@pytest.mark.ges_emulator(graphs=0, backups=0, faults="503:every=2,ges7006:every=3,drop:every=5")
def test_transient_faults_are_retried_not_reported(emu: GesEmulator) -> None:
    new = emu.add_backup("movies", status="backing_up", start=START + timedelta(minutes=5))
    emu.set_backup_status_later(new["id"], "success", 1.0)
    (event,) = events(trigger())
    assert event["status"] == "success" and event["backup"]["id"] == new["id"]
    assert emu.counters["faults_injected"] >= 1


def test_bad_connection_is_an_error_event(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_GES_DEFAULT", '{"conn_type": "ges", "host": "https://ges.example.com"}')
    (event,) = events(trigger())
    assert event["status"] == "error" and "project_id" in event["message"]


def test_repr_names_the_gate_not_secrets() -> None:
    assert repr(trigger()) == "GesBackupTrigger(ges_conn_id='ges_default', graph 'movies')"


@pytest.mark.ges_emulator(graphs=0, backups=0)
def test_gate_with_the_graph_id_known_makes_no_look_up(emu: GesEmulator) -> None:
    movies = next(g for g in emu.graphs() if g["name"] == "movies")
    new = emu.add_backup("movies", status="success", start=START + timedelta(minutes=5))
    (event,) = events(trigger(graph_id=movies["id"]))  # graph_name "movies" too, as the sensor sends it
    assert event["status"] == "success" and event["backup"]["id"] == new["id"]
    assert emu.counters["list_graphs"] == 0 and emu.counters["list_backups"] == 0


@pytest.mark.ges_emulator(graphs=0, backups=0)
def test_graph_list_refused_falls_back_to_the_project_listing(
    emu: GesEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_ges.exceptions import GesAuthError
    from airflow_provider_ges.hooks.ges import GesAsyncHook

    def refused(self: GesAsyncHook, config: Any, page_size: int = 100) -> Any:
        path = f"/v1.0/{emu.project_id}/graphs"
        raise GesAuthError("no permission", status_code=403, error_code="GES.7041", method="GET", path=path)
        yield  # a plan: a generator

    monkeypatch.setattr(GesAsyncHook, "_graphs_plan", refused)
    new = emu.add_backup("movies", status="success", start=START + timedelta(minutes=5))
    (event,) = events(trigger())
    assert event["status"] == "success" and event["backup"]["id"] == new["id"]
    assert emu.counters["list_backups"] >= 1 and emu.counters["list_graph_backups"] == 0
