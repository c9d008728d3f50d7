"""The wire models: the seed page parsed to the last field, liberal input, API names on output."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from importlib import resources
from typing import Any

import pytest
from pydantic import ValidationError

from airflow_provider_ges.models import Backup, BackupFilter, BackupMethod, BackupPage, BackupStatus
from tests.helpers import backup


def seed_page() -> dict[str, Any]:
    text = resources.files("airflow_provider_ges.emulator").joinpath("seed_example.json").read_text()
    return dict(json.loads(text))


def test_seed_example_parses_to_the_last_field() -> None:
    page = BackupPage.model_validate(seed_page())
    assert page.backup_count == 3
    first = page.items[0]
    assert first.id == "ada3e720-ab87-48cb-bff7-3ec5ae1a9652"
    assert first.name == "ges060803_nodelete-20210608135513"
    assert first.backup_method == BackupMethod.MANUAL == "manual"
    assert first.graph_id == "4c5f882d-a813-4d78-a8e3-6d3212ddd121"
    assert first.graph_name == "ges060803_nodelete"
    assert first.graph_status == "200"
    assert first.graph_size_type_index == "1"
    assert first.data_store_version == "2.2.21"
    assert first.arch == "x86_64"
    assert first.status == BackupStatus.SUCCESS == "success"
    assert first.start_time == datetime(2021, 6, 8, 13, 55, 13, tzinfo=timezone.utc)
    assert first.start_time_text == "2021-06-08T13:55:13"
    assert first.end_time == datetime(2021, 6, 8, 13, 56, 8, tzinfo=timezone.utc)
    assert first.end_time_text == "2021-06-08T13:56:08"
    assert (first.size, first.duration, first.encrypted) == (1, 54, False)
    assert page.items[1].backup_method == "auto"
    assert page.items[2].graph_status == "400"  # a backup outliving its deleted graph


def test_seed_example_dumps_back_to_the_api_names() -> None:
    raw = seed_page()["backupList"]
    dumped = [b.to_api() for b in BackupPage.model_validate(seed_page()).items]
    assert dumped == raw
    assert json.loads(json.dumps(dumped)) == raw  # plain JSON: fit for XCom


def test_graph_name_accepted_under_the_old_key() -> None:
    wire = backup(1)
    wire["graphName"] = wire.pop("graph_name")
    parsed = Backup.model_validate(wire)
    assert parsed.graph_name == "g1"
    assert parsed.to_api()["graph_name"] == "g1"


def test_unknown_status_and_extra_fields_are_kept() -> None:
    wire = {**backup(1), "status": "frozen_by_admin", "newField": {"x": 1}}
    parsed = Backup.model_validate(wire)
    assert parsed.status == "frozen_by_admin"
    assert not parsed.is_success and not parsed.is_failed
    assert parsed.to_api()["newField"] == {"x": 1}
    assert parsed.to_api()["status"] == "frozen_by_admin"


def test_text_time_used_when_timestamp_missing() -> None:
    wire = backup(1)
    del wire["startTimestamp"]
    wire["startTime"] = "2024-05-23T01:02:03"
    assert Backup.model_validate(wire).start_time == datetime(2024, 5, 23, 1, 2, 3, tzinfo=timezone.utc)


def test_minimal_backup_has_no_times() -> None:
    parsed = Backup.model_validate({"id": "x"})
    assert parsed.start_time is None and parsed.end_time is None and parsed.status is None


@pytest.mark.parametrize(
    ("wire", "field"),
    [
        ({"status": "success"}, "id"),
        ({"id": ""}, "id"),
        ({"id": "x", "startTimestamp": "yesterday"}, "startTimestamp"),
        ({"id": "x", "startTimestamp": 10**30}, "startTimestamp"),
        ({"id": "x", "startTimestamp": float("nan")}, "startTimestamp"),
        ({"id": "x", "size": "big"}, "size"),
    ],
)
def test_bad_backups_name_the_field(wire: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        Backup.model_validate(wire)
    assert err.value.errors()[0]["loc"][0] == field


def test_v2_snake_case_page_and_null_list() -> None:
    page = BackupPage.model_validate({"backup_count": 1, "backup_list": [backup(1)]})
    assert page.backup_count == 1 and page.items[0].id == "b-00001"
    assert BackupPage.model_validate({"backupCount": 0, "backupList": None}).items == []
    assert BackupPage.model_validate_json(b'{"backupCount": 0}').items == []


def test_filter_round_trips_for_a_trigger() -> None:
    selection = BackupFilter(graph_name="g1", status="success", newer_than="2024-01-01T08:00:00+08:00")
    assert selection.newer_than == datetime(2024, 1, 1, tzinfo=timezone.utc)
    again = BackupFilter.model_validate(selection.model_dump(mode="json"))
    assert again == selection


def test_filter_rejects_a_bad_time() -> None:
    with pytest.raises(ValidationError, match="ISO-8601"):
        BackupFilter(newer_than="last tuesday")


def test_graph_id_named_wants_exactly_one_graph() -> None:
    from airflow_provider_ges.gate import graph_id_named
    from airflow_provider_ges.models import GraphPage

    page = GraphPage.model_validate_json(
        b'{"graphCount": 3, "graphs": [{"id": "a", "name": "g", "status": 200},'
        b' {"id": "b", "name": "twin"}, {"id": "c", "name": "twin"}]}'
    )
    assert page.total == 3 and page.items[0].status == "200"
    assert graph_id_named(page.items, "g") == "a"
    assert graph_id_named(page.items, "twin") is None  # ambiguous: not guessed
    assert graph_id_named(page.items, "none") is None
    assert GraphPage.model_validate({"graphCount": 0, "graphs": None}).items == []


def test_gate_on_a_found_graph_picks_backups_by_id_and_names_the_graph() -> None:
    from airflow_provider_ges.gate import BackupGate

    gate = BackupGate(graph_name="g1")
    nameless = {**backup(1, status="success"), "graph_name": None}
    assert gate.judge([Backup.model_validate(nameless)], "id-g1").state == "success"  # by id, not name
    assert gate.judge([Backup.model_validate(nameless)]).state == "waiting"  # by name: not this one
    assert gate.judge([Backup.model_validate(backup(2, graph="g2"))], "id-g1").state == "waiting"
    assert "graph 'g1'" in gate.failure_message(Backup.model_validate(backup(3, status="failed")))
    with pytest.raises(ValidationError, match="graph_id or graph_name"):
        BackupGate()
