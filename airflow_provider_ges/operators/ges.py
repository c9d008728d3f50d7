"""``GesListBackupsOperator``: list (filtered) backups and hand them on through XCom."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_ges import DEFAULT_CONN_ID, DEFAULT_PAGE_SIZE
from airflow_provider_ges.times import check_time

if TYPE_CHECKING:
    from airflow.sdk import Context


class GesListBackupsOperator(BaseOperator):
    """List a project's (or one graph's) backups matching every given criterion.

    Returns (pushes to XCom) the backups as a list of dicts with the API's own field names,
    newest first, and logs a short summary.

    :param graph_id: only this graph's backups (uses the per-graph listing). Templated.
    :param graph_name: only backups of the graph with this name. Templated.
    :param status: ``"success"``, ``"failed"``, ``"backing_up"`` or None for any. Templated.
    :param backup_method: ``"auto"``, ``"manual"`` or None for either. Templated.
    :param newer_than: only backups started at or after this time (datetime, ISO-8601 string or
        template such as ``"{{ data_interval_start }}"``). Templated.
    :param ges_conn_id: the ``ges`` connection. Templated.
    :param page_size: backups asked for per request.
    """

    template_fields: Sequence[str] = (
        "graph_id",
        "graph_name",
        "status",
        "backup_method",
        "newer_than",
        "ges_conn_id",
    )
    ui_color = "#c7e9f9"

    def __init__(
        self,
        *,
        graph_id: str | None = None,
        graph_name: str | None = None,
        status: str | None = None,
        backup_method: str | None = None,
        newer_than: datetime | str | None = None,
        ges_conn_id: str = DEFAULT_CONN_ID,
        page_size: int = DEFAULT_PAGE_SIZE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_time("newer_than", newer_than)
        if not isinstance(page_size, int) or page_size < 1:
            raise ValueError(f"page_size must be a positive integer, got {page_size!r}")
        self.graph_id = graph_id
        self.graph_name = graph_name
        self.status = status
        self.backup_method = backup_method
        self.newer_than = newer_than
        self.ges_conn_id = ges_conn_id
        self.page_size = page_size

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from airflow_provider_ges.hooks.ges import GesHook  # at run time: DAG parsing stays cheap

        backups = GesHook(self.ges_conn_id).list_backups(
            self.graph_id or None,
            graph_name=self.graph_name or None,
            status=self.status or None,
            backup_method=self.backup_method or None,
            newer_than=self.newer_than or None,
            page_size=self.page_size,
        )
        by_graph = Counter(b.graph_name or b.graph_id or "?" for b in backups)
        if backups:
            newest = backups[0]
            self.log.info(
                "%d backups of %d graphs (%s); newest: %s (%s, %s, started %s)",
                len(backups),
                len(by_graph),
                ", ".join(f"{name}: {n}" for name, n in by_graph.most_common(5)),
                newest.name or newest.id,
                newest.graph_name,
                newest.status,
                newest.start_time.isoformat() if newest.start_time else "?",
            )
        else:
            self.log.info("No backups match")
        return [b.to_api() for b in backups]
