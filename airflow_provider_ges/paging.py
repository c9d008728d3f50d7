"""Offset/limit paging that never asks more than the page size, ends, and skips nothing."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar

from airflow_provider_ges.exceptions import GesApiError

#: The documented default ``limit``: the smallest page size a refused ``limit`` is halved to.
REFUSED_LIMIT_FLOOR = 10
#: The smallest ``page_size`` a listing takes: each page starts at the last item of the page
#: before, so a page of one would never move on.
PAGER_MIN_PAGE_SIZE = 2
_MAX_PAGES_SLACK = 5
_MAX_UNCOUNTED = 100_000
_PAGING_WORDS = re.compile(r"\b(limit|offset)\b", re.IGNORECASE)
_PARAMETER_ERRORS = frozenset({"GES.0001", "APIGW.0201"})


class Identified(Protocol):
    @property
    def id(self) -> str: ...


ItemT = TypeVar("ItemT", bound=Identified)
ItemT_co = TypeVar("ItemT_co", bound=Identified, covariant=True)


class Listed(Protocol[ItemT_co]):
    """A page of an offset/limit listing: ``BackupPage``, ``GraphPage``."""

    @property
    def items(self) -> Sequence[ItemT_co]: ...

    @property
    def total(self) -> int | None: ...


def check_page_size(page_size: object) -> int:
    """``page_size`` if it is an integer of at least ``PAGER_MIN_PAGE_SIZE``, else a ``ValueError``."""
    if not isinstance(page_size, int) or isinstance(page_size, bool) or page_size < PAGER_MIN_PAGE_SIZE:
        raise ValueError(f"page_size must be an integer of at least {PAGER_MIN_PAGE_SIZE}, got {page_size!r}")
    return page_size


def refuses_paging(err: GesApiError) -> bool:
    """Whether a 400 refuses the paging parameters: its message names ``limit``/``offset``, or it is
    a parameter error (GES.0001) of a listing."""
    if err.status_code != 400:
        return False
    return err.error_code in _PARAMETER_ERRORS or bool(_PAGING_WORDS.search(err.error_message or ""))


class Pager(Generic[ItemT]):
    """Which page to ask for next, and which items of a page are new.

    Invariants:
    - every request asks ``limit=page_size`` (never more: servers cap ``limit``);
    - each page after the first starts at the last item of the page before (the *anchor*), so a
      listing that does not change costs ``1 + ceil((N - page_size) / (page_size - 1))`` requests;
      once items were seen to move left, pages start a fixed guard (a quarter page) before it;
    - an item listed from start to end is returned exactly once; nothing is returned twice;
    - a page holding no item returned before (items before the offset were removed, the rest
      moved left past it) is dropped and the pager steps back, by the drop in the total (at least
      one), twice as far each time, until a page holds one;
    - work is bounded: the listing ends on an empty page, the total reached, a short page without a
      total, or a page with nothing past its anchor; the same page for three offsets running (a
      server ignoring ``offset``) or pages past twice the first total are a ``GesApiError``.
    """

    def __init__(self, page_size: int) -> None:
        self.page_size = check_page_size(page_size)
        #: where the next request starts; None once the listing has ended
        self.offset: int | None = 0
        self.pages = 0
        self._seen: set[str] = set()
        self._total: int | None = None
        self._max_pages = 0
        self._misses = 0
        self._guard = 0  # how far before the anchor pages start: 0 until items were seen to move
        self._overlap = 0  # items before the anchor the current request starts with
        self._last_ids: list[str] = []
        self._repeats = 0

    def feed(self, page: Listed[ItemT]) -> list[ItemT]:
        """Take the page asked for; return its new items and set the next ``offset``."""
        offset = self.offset
        assert offset is not None, "the listing has ended"
        items, total = page.items, page.total
        ids = [item.id for item in items]
        self.pages += 1
        if self.pages == 1:
            most = _MAX_UNCOUNTED if total is None else 2 * max(total, len(items))
            self._max_pages = -(-most // max(1, self.page_size - 1)) + _MAX_PAGES_SLACK
        seen = self._seen
        if offset > 0 and seen.isdisjoint(ids):
            # Items before the offset went and the rest moved left past it: look further back,
            # and from now on start pages a fixed guard before the anchor.
            drop = max(1, (self._total or 0) - (total or 0))
            self.offset = max(0, offset - (drop << self._misses))
            self._misses += 1
            self._guard = (self.page_size - 1) // 4
            self._overlap = 0
            self._check_bound(total)
            return []
        self._misses = 0
        self._total = total
        self._repeats = self._repeats + 1 if ids and ids == self._last_ids else 0
        self._last_ids = ids
        if self._repeats >= 2:
            raise GesApiError(
                f"the same page came back for three offsets running (now {offset}): the server ignores"
                " 'offset' (or new items come first as fast as they are read), so the listing cannot"
                " be completed"
            )
        before = len(seen)
        fresh = [item for item, key in zip(items, ids, strict=True) if key not in seen]
        seen.update(ids)
        if len(seen) - before != len(fresh):  # an id twice in one page: keep its first
            firsts: dict[str, ItemT] = {}
            for item in fresh:
                firsts.setdefault(item.id, item)
            fresh = list(firsts.values())
        moved_right = offset > 0 and len(items) > 1 and not fresh  # seen items only: don't end here
        reached = total is not None and offset + len(items) >= total
        short = total is None and len(items) < self.page_size
        past_anchor = len(items) - 1 - self._overlap  # items after the anchor, if it is where it was
        if not items or (not moved_right and (reached or short)) or (offset > 0 and past_anchor <= 0):
            self.offset = None
            return fresh
        self.offset = max(0, offset + len(items) - 1 - self._guard)
        self._overlap = offset + len(items) - 1 - self.offset
        self._check_bound(total)
        return fresh

    def _check_bound(self, total: int | None) -> None:
        if self.pages >= self._max_pages:
            raise GesApiError(
                f"the listing did not end after {self.pages} pages of {self.page_size}"
                f" (total now {total}): the server keeps reporting more"
            )
