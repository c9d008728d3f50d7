"""Generated and loaded data: deterministic, shaped like the seed page, loadable as-is."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from airflow_provider_ges.emulator import GesEmulator
from airflow_provider_ges.emulator.data import SEED_EXAMPLE, format_utc, generate, load

NOW_MS = int(datetime(2024, 5, 23, 12, 0, tzinfo=timezone.utc).timestamp() * 1000)
SEED = json.loads(SEED_EXAMPLE.read_text())


def test_seed_example_is_the_reference_page_example() -> None:
    reference = Path(__file__).resolve().parents[3] / "shared" / "reference" / "seed-list-all-backups.txt"
    if not reference.exists():
        pytest.skip("reference file not available")
    text = reference.read_text()
    start = text.index('{\n    "backupCount"')
    assert json.loads(text[start : text.index("Status code: 400")]) == SEED


def test_seed_example_round_trips_field_for_field() -> None:
    with GesEmulator(data=SEED_EXAMPLE) as emu:
        url = f"{emu.url}/v1.0/{emu.project_id}/graphs/backups"
        headers = {"X-Auth-Token": emu.issue_token()}
        full = requests.get(url, headers=headers, timeout=5)
        assert full.json() == SEED
        assert list(full.json()["backupList"][0]) == list(SEED["backupList"][0])
        page = requests.get(url, params={"offset": 0, "limit": 2}, headers=headers, timeout=5).json()
        assert page == {"backupCount": 3, "backupList": SEED["backupList"][:2]}
        graphs = {g["id"]: g for g in emu.graphs()}
        assert [g["name"] for g in graphs.values()] == ["ges060803_nodelete"]  # the other graph is deleted
        deleted = "9b9a05c2-0cdb-41ac-b55f-93caffb0519a"
        assert requests.get(f"{url[:-8]}/{deleted}/backups", headers=headers, timeout=5).json()[
            "errorCode"
        ] == ("GES.7000")


def test_load_shapes(tmp_path: Path) -> None:
    as_list = load(SEED["backupList"], region="r")
    as_file = tmp_path / "backups.json"
    as_file.write_text(json.dumps(SEED["backupList"]))
    assert load(str(as_file), region="r") == as_list == load(SEED, region="r")
    graphs, backups = as_list
    assert backups == SEED["backupList"]
    assert [(g["id"], g["status"]) for g in graphs] == [
        ("4c5f882d-a813-4d78-a8e3-6d3212ddd121", "200"),
        ("9b9a05c2-0cdb-41ac-b55f-93caffb0519a", "400"),
    ]
    own_graph = {"id": "g1", "name": "given_graph", "status": "200"}
    with_graphs = load(
        {"graphs": [own_graph], "backupList": [{"id": "b1", "graphName": "x", "graphId": "g1"}]}, region="r"
    )
    assert with_graphs == ([own_graph], [{"id": "b1", "graphName": "x", "graphId": "g1"}])


@pytest.mark.parametrize(
    "bad", [{"nothing": 1}, "not a list", [{"name": "no id"}], [{"id": "b", "graphId": 3}]]
)
def test_load_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        load(bad if not isinstance(bad, str) else {"backupList": bad}, region="r")  # type: ignore[arg-type]


def test_generate_is_deterministic() -> None:
    first = generate(3, 40, seed=5, now_ms=NOW_MS, region="r")
    assert first == generate(3, 40, seed=5, now_ms=NOW_MS, region="r")
    assert first != generate(3, 40, seed=6, now_ms=NOW_MS, region="r")
    with pytest.raises(ValueError):
        generate(0, 1, seed=0, now_ms=NOW_MS, region="r")
    assert generate(0, 0, seed=0, now_ms=NOW_MS, region="r") == ([], [])


def test_generated_data_looks_real() -> None:
    graphs, backups = generate(4, 400, seed=1, now_ms=NOW_MS, region="cn-north-4")
    assert len({g["name"] for g in graphs}) == 4
    for graph in graphs:
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{3,49}", graph["name"])
        assert graph["status"] == "200" and graph["regionCode"] == "cn-north-4"
        assert sum(b["graphId"] == graph["id"] for b in backups) == 100
    assert [b["startTimestamp"] for b in backups] == sorted(b["startTimestamp"] for b in backups)
    assert len({b["id"] for b in backups}) == 400
    methods = {b["backupMethod"] for b in backups}
    statuses = [b["status"] for b in backups]
    assert methods == {"auto", "manual"} and set(statuses) == {"success", "failed"}
    assert 0.02 < statuses.count("failed") / 400 < 0.2
    for backup in backups:
        assert list(backup) == list(SEED["backupList"][0])
        start = datetime.fromtimestamp(backup["startTimestamp"] / 1000, timezone.utc)
        assert backup["startTimestamp"] > NOW_MS - 31 * 86_400_000 and backup["endTimestamp"] <= NOW_MS
        assert (
            backup["startTime"] == format_utc(backup["startTimestamp"]) == start.strftime("%Y-%m-%dT%H:%M:%S")
        )
        assert backup["endTime"] == format_utc(backup["endTimestamp"])
        assert backup["duration"] == (backup["endTimestamp"] - backup["startTimestamp"]) // 1000
        local = (start + timedelta(hours=8)).strftime("%Y%m%d%H%M%S")
        if backup["backupMethod"] == "auto":
            assert backup["name"] == f"{backup['graph_name']}_{local}_auto"
        else:
            assert backup["name"] == f"{backup['graph_name']}-{local}"
        assert (backup["size"] > 0) == (backup["status"] == "success")


def test_emulator_now_pins_the_data() -> None:
    now = datetime(2024, 5, 23, 12, 0, tzinfo=timezone.utc)
    assert GesEmulator(seed=3, now=now).backups() == GesEmulator(seed=3, now=now).backups()


def test_names_rename_only_the_first_graphs() -> None:
    plain_graphs, plain_backups = generate(3, 9, seed=4, now_ms=NOW_MS, region="r")
    graphs, backups = generate(3, 9, seed=4, now_ms=NOW_MS, region="r", names=["movies"])
    assert [g["name"] for g in graphs] == ["movies", *(g["name"] for g in plain_graphs[1:])]
    assert [g["id"] for g in graphs] == [g["id"] for g in plain_graphs]
    assert [b["graph_name"] for b in backups if b["graphId"] == graphs[0]["id"]] == ["movies"] * 3
    assert [b["id"] for b in backups] == [b["id"] for b in plain_backups]
    assert GesEmulator(graphs=2, graph_names=("a_graph", "b_graph", "c_graph")).find_graph("b_graph")
