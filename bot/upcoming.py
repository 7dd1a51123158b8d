"""'Mes demandes': the requests a requester sees as upcoming, in one statement.

Their own requests, those at their installations (rule 7: colleagues act on them too) and their
undated ones; staff see everyone's. Read by the "statut" email reply, the chat's /mine and the
search bench.
"""

from __future__ import annotations

import functools
from datetime import date
from datetime import time as dtime

from sqlalchemy import Date, Integer, Select, String, bindparam, case, select, union
from sqlalchemy.orm import Session, lazyload, load_only

from store.models import Request, Requester

from .workflow import IS_ACTIVE

_RQ = Request.__table__


def upcoming(s: Session, requester: Requester, today: date, limit: int = 50) -> list[Request]:
    """By date and time (none first), then the undated ones by number; at most *limit*."""
    params: dict[str, object] = {"today": today, "n": limit}
    if requester.role == "staff":
        query = upcoming_query(None)
    else:
        sites = [i.id for i in requester.installations]
        query = upcoming_query(len(sites))
        params.update(requester=requester.id, **{f"site{k}": site for k, site in enumerate(sites)})
    return sorted(s.scalars(query, params).all(), key=_upcoming_key)


def upcoming_order(c) -> tuple:  # noqa: ANN001 - the columns of requests, or of a subquery of it
    """'mes demandes' order: dated first, by date, time (none first) and number; undated by number."""
    time_if_dated = case((c.date.is_(None), None), else_=c.start_time)
    return (c.date.is_(None), c.date, time_if_dated.is_not(None), time_if_dated, c.id)


def _upcoming_key(r: Request) -> tuple:
    """`upcoming_order` in Python, for the rows it chose."""
    if r.date is None:
        return (True, date.min, False, dtime.min, r.id)
    return (False, r.date, r.start_time is not None, r.start_time or dtime.min, r.id)


@functools.lru_cache(maxsize=32)
def upcoming_query(sites: int | None) -> Select:
    """'mes demandes' as one statement, for a requester with *sites* installations (None: staff,
    who see every request); parameters `today`, `n`, `requester`, `site0`, `site1`, ...

    Each branch (own requests, each installation, undated ones) is an index-ordered query with
    its own LIMIT: one query with an OR across columns scans every request. Their union, ordered
    and cut once more, names the requests to load, and only the columns the list shows are
    loaded. Built once per shape: building the union of subqueries, a statement per branch and
    whole rows had cost more than running them (bench/search_bench.py, "my requests")."""
    n = bindparam("n", type_=Integer)
    from_today = (IS_ACTIVE, _RQ.c.date >= bindparam("today", type_=Date))
    undated = (IS_ACTIVE, _RQ.c.date.is_(None))
    if sites is None:
        dated = [from_today]
    else:
        mine = _RQ.c.requester_id == bindparam("requester", type_=Integer)
        dated = [(mine, *from_today)] + [(_RQ.c.location_id == bindparam(f"site{k}", type_=String), *from_today)
                                         for k in range(sites)]
        undated = (mine, *undated)
    columns = (_RQ.c.id, _RQ.c.date, _RQ.c.start_time)
    # a dated branch is ordered by date first, as its index is: `date IS NULL` first would make
    # the database sort every matching row before the LIMIT
    branches = [select(*columns).where(*where).order_by(_RQ.c.date, _RQ.c.start_time.is_not(None), _RQ.c.start_time,
                                                        _RQ.c.id).limit(n) for where in dated]
    branches.append(select(*columns).where(*undated).order_by(_RQ.c.id).limit(n))
    candidates = union(*(select(branch.subquery()) for branch in branches)).subquery()
    kept = select(candidates.c.id).order_by(*upcoming_order(candidates.c)).limit(n)
    return (select(Request).where(Request.id.in_(kept))
            .options(lazyload(Request.requester),  # the list needs no requester row
                     load_only(Request.requester_id, Request.status, Request.date, Request.start_time,
                               Request.location_id, Request.target_language)))
