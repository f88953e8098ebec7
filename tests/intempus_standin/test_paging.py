"""Lists (contract section 4): the envelope, limit rules, offset and cursor paging, ordering."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from tests.intempus_standin.conftest import Intempus, StartIntempus


async def _all_pages(intempus: Intempus, path: str) -> list[int]:
    ids: list[int] = []
    next_path: str | None = path
    for _ in range(100):
        if next_path is None:
            return ids
        page = await intempus.call("GET", next_path)
        assert page.status == 200, page.raw
        ids += [c["id"] for c in page.body["objects"]]
        next_path = page.body["meta"]["next"]
    raise AssertionError("more than 100 pages")


async def test_the_default_limit_is_1000_and_meta_counts_the_filtered_set(
    start_intempus: StartIntempus,
) -> None:
    intempus = await start_intempus(cases=12)
    page = await intempus.call("GET", "/web/v1/case/")
    assert page.body["meta"] == {
        "limit": 1000, "next": None, "offset": 0, "previous": None, "total_count": 12,
    }  # fmt: skip
    active = [c for c in page.body["objects"] if c["active"]]
    filtered = await intempus.call("GET", "/web/v1/case/?active=true")
    assert filtered.body["meta"]["total_count"] == len(active)


async def test_a_limit_above_the_maximum_is_clamped_and_zero_means_the_maximum(
    intempus: Intempus,
) -> None:
    for limit in ("20000", "0"):
        page = await intempus.call("GET", f"/web/v1/case/?limit={limit}")
        assert page.body["meta"]["limit"] == 10_000


async def test_next_is_a_path_with_all_the_requests_parameters(
    start_intempus: StartIntempus,
) -> None:
    intempus = await start_intempus(cases=5)
    page = await intempus.call("GET", "/web/v1/case/?active=true&format=json&limit=2")
    next_path = page.body["meta"]["next"]
    assert next_path.startswith("/web/v1/case/?")
    assert dict(parse_qsl(urlsplit(next_path).query)) == {
        "active": "true", "format": "json", "limit": "2", "offset": "2",
    }  # fmt: skip
    second = await intempus.call("GET", next_path)
    assert (
        second.body["meta"]["previous"] == "/web/v1/case/?active=true&format=json&limit=2&offset=0"
    )


async def test_cursor_pages_carry_only_limit_next_and_previous(
    start_intempus: StartIntempus,
) -> None:
    intempus = await start_intempus(cases=5)
    page = await intempus.call("GET", "/web/v1/case/?pagination_type=cursor&limit=2")
    meta = page.body["meta"]
    assert set(meta) == {"limit", "next", "previous"} and meta["previous"] is None
    query = dict(parse_qsl(urlsplit(meta["next"]).query))
    assert query["pagination_type"] == "cursor" and query["limit"] == "2" and query["after"]
    await intempus.switch(cursor_meta_full=True)
    full = await intempus.call("GET", meta["next"])
    assert (full.body["meta"]["offset"], full.body["meta"]["total_count"]) == (2, 5)


async def test_cursor_paging_skips_nothing_when_cases_are_deleted_mid_scan(
    start_intempus: StartIntempus,
) -> None:
    intempus = await start_intempus(cases=9)
    everyone = [c["id"] for c in (await intempus.call("GET", "/web/v1/case/")).body["objects"]]
    first = await intempus.call("GET", "/web/v1/case/?pagination_type=cursor&limit=3")
    seen = [c["id"] for c in first.body["objects"]]
    for case_id in seen[:2]:
        assert (await intempus.call("DELETE", f"/web/v1/case/{case_id}/")).status == 204
    seen += await _all_pages(intempus, first.body["meta"]["next"])
    assert seen == everyone


async def test_offset_paging_with_drift_skips_rows_when_earlier_ones_are_deleted(
    start_intempus: StartIntempus,
) -> None:
    intempus = await start_intempus(cases=9, offset_drift=True)
    everyone = [c["id"] for c in (await intempus.call("GET", "/web/v1/case/")).body["objects"]]
    first = await intempus.call("GET", "/web/v1/case/?limit=3")
    seen = [c["id"] for c in first.body["objects"]]
    for case_id in seen[:2]:
        await intempus.call("DELETE", f"/web/v1/case/{case_id}/")
    seen += await _all_pages(intempus, first.body["meta"]["next"])
    missed = set(everyone) - set(seen)
    assert missed == set(everyone[3:5])  # the two rows that slid back before offset 3


async def test_offset_paging_without_drift_skips_nothing_when_rows_are_deleted(
    start_intempus: StartIntempus,
) -> None:
    intempus = await start_intempus(cases=9)
    everyone = [c["id"] for c in (await intempus.call("GET", "/web/v1/case/")).body["objects"]]
    first = await intempus.call("GET", "/web/v1/case/?limit=3")
    seen = [c["id"] for c in first.body["objects"]]
    for case_id in seen[:2]:
        await intempus.call("DELETE", f"/web/v1/case/{case_id}/")
    seen += await _all_pages(intempus, first.body["meta"]["next"])
    assert seen == everyone


async def test_an_invalid_cursor_is_a_400(intempus: Intempus) -> None:
    answer = await intempus.call("GET", "/web/v1/case/?pagination_type=cursor&after=%%%")
    assert (answer.status, answer.body) == (400, {"error": "Invalid cursor provided."})


async def test_order_by_sorts_on_the_allowed_fields_both_ways(intempus: Intempus) -> None:
    for name in ("b", "c", "a"):
        await intempus.create(name=name)
    up = await intempus.call("GET", "/web/v1/case/?order_by=name")
    down = await intempus.call("GET", "/web/v1/case/?order_by=-name")
    assert [c["name"] for c in up.body["objects"]] == ["a", "b", "c"]
    assert [c["name"] for c in down.body["objects"]] == ["c", "b", "a"]


async def test_the_read_only_resources_list_and_resolve(intempus: Intempus) -> None:
    customers = await intempus.call("GET", "/web/v1/customer/?limit=2")
    assert customers.body["meta"]["total_count"] == 4 and len(customers.body["objects"]) == 2
    first = customers.body["objects"][0]
    detail = await intempus.call("GET", first["resource_uri"])
    assert detail.body == first
    assert (await intempus.call("GET", "/web/v1/employee/1/")).raw == b""


async def test_paths_without_the_slash_are_served_unless_strict(intempus: Intempus) -> None:
    assert (await intempus.call("GET", "/web/v1/case")).status == 200
    await intempus.switch(strict_slash=True)
    answer = await intempus.call("GET", "/web/v1/case")
    assert (answer.status, answer.raw) == (404, b"")
