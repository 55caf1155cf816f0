"""Search request building: filters, relative dates, bad input."""

from __future__ import annotations

import pytest

from processors.search import Filters, SearchError, build_query, date_bound


def test_relative_and_absolute_dates() -> None:
    assert date_bound("7d") == "now-7d"
    assert date_bound("24h") == "now-24h"
    assert date_bound("2025-01-31") == "2025-01-31"
    assert date_bound("2025-01-31T10:00:00Z") == "2025-01-31T10:00:00Z"
    with pytest.raises(SearchError, match="relative"):
        date_bound("last tuesday")


def test_filters_become_case_insensitive_terms_and_a_range() -> None:
    query = build_query("wagner", Filters(topics=["foreign-fighters"], countries=["ua", "co"],
                                          since="7d"))
    flt = query["bool"]["filter"]
    countries = flt[1]["bool"]["should"]
    assert [c["term"]["countries"]["value"] for c in countries] == ["UA", "CO"]
    assert flt[0]["bool"]["should"][0]["term"]["topics"]["value"] == "foreign-fighters"
    assert flt[2] == {"range": {"published_at": {"gte": "now-7d"}}}
    assert query["bool"]["must"][0]["simple_query_string"]["query"] == "wagner"


def test_no_query_text_matches_all() -> None:
    assert build_query("  ", Filters())["bool"]["must"] == [{"match_all": {}}]
