"""GesListBackupsOperator: filtered, newest first, API field names, a short summary in the log."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_ges.operators.ges import GesListBackupsOperator
from tests.helpers import BACKUPS_URL, TOKEN_URL, backup, paged, token_reply


def test_returns_matching_backups_newest_first_as_api_dicts(
    ges_conn: Any, requests_mock: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    requests_mock.post(TOKEN_URL, **token_reply())
    items = [
        backup(1, graph="g1", status="failed"),
        backup(3, graph="g2", status="failed"),
        backup(2, graph="g1", status="success"),
        backup(4, graph="g1", status="failed", start_ms=1_600_000_000_000),
    ]
    requests_mock.get(BACKUPS_URL, json=paged(items))
    op = GesListBackupsOperator(task_id="ls", status="failed", newer_than="2023-11-14T00:00:00Z")
    result = op.execute({})
    assert [b["id"] for b in result] == ["b-00003", "b-00001"]
    assert result[0] == items[1]  # the API's own field names and values
    assert json.loads(json.dumps(result)) == result
    out = capsys.readouterr().out
    assert "2 backups of 2 graphs" in out and "newest: g2-3" in out


def test_empty_result_logged(ges_conn: Any, requests_mock: Any, capsys: pytest.CaptureFixture[str]) -> None:
    requests_mock.post(TOKEN_URL, **token_reply())
    requests_mock.get(BACKUPS_URL, json=paged([]))
    assert GesListBackupsOperator(task_id="ls", graph_name="nope").execute({}) == []
    assert "No backups match" in capsys.readouterr().out


def test_templated_fields() -> None:
    assert set(GesListBackupsOperator.template_fields) == {
        "graph_id",
        "graph_name",
        "status",
        "backup_method",
        "newer_than",
        "ges_conn_id",
    }


@pytest.mark.parametrize(
    ("kwargs", "named"), [({"newer_than": "soon"}, "newer_than"), ({"page_size": 0}, "page_size")]
)
def test_bad_arguments_fail_at_construction(kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        GesListBackupsOperator(task_id="ls", **kwargs)


@pytest.mark.parametrize("bad", [1, 0, -3, True, 2.5, "100"])
def test_page_size_below_the_pagers_minimum_is_refused_at_construction(bad: Any) -> None:
    from airflow_provider_ges.paging import PAGER_MIN_PAGE_SIZE

    expected = f"page_size must be an integer of at least {PAGER_MIN_PAGE_SIZE}, got {bad!r}"
    with pytest.raises(ValueError) as err:
        GesListBackupsOperator(task_id="ls", page_size=bad)
    assert str(err.value) == expected and PAGER_MIN_PAGE_SIZE == 2


def test_the_pagers_minimum_page_size_lists(ges_conn: Any, requests_mock: Any) -> None:
    requests_mock.post(TOKEN_URL, **token_reply())
    requests_mock.get(BACKUPS_URL, json=paged([backup(n) for n in range(1, 6)]))
    result = GesListBackupsOperator(task_id="ls", page_size=2).execute({})
    assert [b["id"] for b in result] == [f"b-{n:05d}" for n in range(5, 0, -1)]
    assert {r.qs["limit"][0] for r in requests_mock.request_history if r.url.startswith(BACKUPS_URL)} == {"2"}
