"""The Pipedrive-like stand-in: token costs, the 2-second burst, the abuse 403, cursor paging,
search by our custom field, soft delete, and webhooks v2 with change_source."""

from __future__ import annotations

from typing import Any

from crm_providers.core.settings import WebhookSettings
from crm_providers.pipedrive import OUR_ID_KEY, PipedriveLimits, PipedriveSettings, create_app
from tests.crm_providers.conftest import Receiver, Running, Start

PERSONS = "/api/v2/persons"


async def pipedrive(start: Start, **settings: Any) -> Running:
    return await start(create_app, PipedriveSettings(**settings))


async def person(pd: Running, name: str = "Ann Lee", **fields: Any) -> int:
    status, body = await pd.call("POST", PERSONS, json={"name": name, **fields})
    assert status == 200 and body["success"], body
    return int(body["data"]["id"])


async def test_each_call_costs_its_tokens_from_the_daily_budget(start: Start) -> None:
    pd = await pipedrive(start, limits=PipedriveLimits(daily_tokens=1000))
    pid = await person(pd)  # create: 10
    left = []
    for method, path in (
        ("GET", f"{PERSONS}/{pid}"),  # 1
        ("GET", PERSONS),  # 10
        ("GET", f"{PERSONS}/search?term=Ann"),  # 20
        ("PATCH", f"{PERSONS}/{pid}"),  # 10
        ("DELETE", f"{PERSONS}/{pid}"),  # 6
    ):
        _, _, headers = await pd.call_h(
            method, path, json={"name": "Ann"} if method == "PATCH" else None
        )
        left.append(int(headers["x-daily-requests-left"]))
    assert left == [989, 979, 959, 949, 943]


async def test_a_call_that_does_not_fit_the_tokens_left_answers_429(start: Start) -> None:
    pd = await pipedrive(start, limits=PipedriveLimits(daily_tokens=25))
    await pd.call("GET", PERSONS)  # 10
    await pd.call("GET", PERSONS)  # 10, 5 left
    status, body, headers = await pd.call_h("GET", PERSONS)
    assert status == 429 and body["success"] is False
    assert headers["x-daily-requests-left"] == "5"
    assert (await pd.call("GET", f"{PERSONS}/1"))[0] == 404  # a 1-token call still fits
    pd.clock.at += 86_400
    assert (await pd.call("GET", PERSONS))[0] == 200
    assert pd.core.stats.snapshot()["limited_by_policy"] == {"DAILY_TOKENS": 1}


async def test_the_burst_limit_is_20_requests_per_rolling_2_seconds(start: Start) -> None:
    pd = await pipedrive(start)
    for _ in range(10):
        await pd.call("GET", f"{PERSONS}/1")
    pd.clock.at += 1
    for _ in range(10):
        await pd.call("GET", f"{PERSONS}/1")
    status, _, headers = await pd.call_h("GET", f"{PERSONS}/1")
    assert status == 429
    assert (headers["x-ratelimit-limit"], headers["x-ratelimit-remaining"]) == ("20", "0")
    assert headers["x-ratelimit-reset"] == "1" and headers["Retry-After"] == "1"
    pd.clock.at += 1  # the first ten leave the window
    for _ in range(10):
        assert (await pd.call("GET", f"{PERSONS}/1"))[0] == 404
    assert (await pd.call("GET", f"{PERSONS}/1"))[0] == 429


async def test_persistent_abuse_turns_into_403_when_switched_on(start: Start) -> None:
    pd = await pipedrive(
        start, limits=PipedriveLimits(burst_limit=1, abuse_after=3, abuse_block_s=60)
    )
    await pd.call("GET", f"{PERSONS}/1")
    statuses = [(await pd.call("GET", f"{PERSONS}/1"))[0] for _ in range(4)]
    assert statuses == [429, 429, 429, 403]
    pd.clock.at += 30
    assert (await pd.call("GET", f"{PERSONS}/1"))[0] == 403
    pd.clock.at += 31
    assert (await pd.call("GET", f"{PERSONS}/1"))[0] == 404


async def test_list_refuses_a_limit_over_500_and_pages_with_next_cursor(start: Start) -> None:
    pd = await pipedrive(start, records=7)
    assert (await pd.call("GET", PERSONS, params={"limit": "501"}))[0] == 400
    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        _, body = await pd.call("GET", PERSONS, params=params)
        seen += [p["id"] for p in body["data"]]
        cursor = body["additional_data"]["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 7 and seen == sorted(seen)


async def test_updated_since_paging_by_update_time_drifts_when_a_person_changes(
    start: Start,
) -> None:
    pd = await pipedrive(start)
    ids = []
    for name in ("Aa", "Bb", "Cc", "Dd"):
        ids.append(await person(pd, name))
        pd.clock.at += 1
    params = {"updated_since": "2000-01-01T00:00:00Z", "sort_by": "update_time", "limit": "2"}
    _, first = await pd.call("GET", PERSONS, params=params)
    await pd.standin("PATCH", f"users/persons/{ids[0]}", json={"fields": {"name": "Aa2"}})
    pd.clock.at += 1
    cursor = first["additional_data"]["next_cursor"]
    _, second = await pd.call("GET", PERSONS, params={**params, "cursor": cursor})
    assert [p["id"] for p in first["data"]] == ids[:2]
    assert [p["id"] for p in second["data"]] == [ids[3], ids[0]]


async def test_our_id_lives_in_a_custom_field_found_by_search(start: Start) -> None:
    pd = await pipedrive(start)
    pid = await person(pd, custom_fields={OUR_ID_KEY: "our-42"})
    await person(pd, "Other", custom_fields={OUR_ID_KEY: "our-420"})
    params = {"term": "our-42", "fields": "custom_fields", "exact_match": "true"}
    status, body = await pd.call("GET", f"{PERSONS}/search", params=params)
    assert status == 200
    assert [i["item"]["id"] for i in body["data"]["items"]] == [pid]
    status, body = await pd.call(
        "POST", PERSONS, json={"name": "X", "custom_fields": {"nope": "1"}}
    )
    assert status == 400 and "nope" in body["error"]


async def test_v2_refuses_loose_types(start: Start) -> None:
    pd = await pipedrive(start)
    status, body = await pd.call("POST", PERSONS, json={"name": "X", "org_id": "12"})
    assert status == 400 and "integer" in body["error"]
    emails = [{"value": "a@example.com", "primary": "yes"}]
    assert (await pd.call("POST", PERSONS, json={"name": "X", "emails": emails}))[0] == 400


async def test_delete_is_soft_the_record_reads_as_deleted_and_leaves_the_list(start: Start) -> None:
    pd = await pipedrive(start)
    pid = await person(pd)
    status, body = await pd.call("DELETE", f"{PERSONS}/{pid}")
    assert (status, body["data"]) == (200, {"id": pid})
    _, one = await pd.call("GET", f"{PERSONS}/{pid}")
    assert one["data"]["is_deleted"] is True
    _, listed = await pd.call("GET", PERSONS)
    assert listed["data"] == []
    assert (await pd.call("PATCH", f"{PERSONS}/{pid}", json={"name": "Z"}))[0] == 404


async def test_webhooks_say_api_for_our_writes_and_app_for_users(
    start: Start, receiver: Receiver
) -> None:
    pd = await pipedrive(start, webhook=WebhookSettings(url=receiver.url))
    pid = await person(pd, "Ours")
    await pd.call("PATCH", f"{PERSONS}/{pid}", json={"name": "Ours2"})
    await pd.standin("DELETE", f"users/persons/{pid}", params={"user_id": "5"})
    assert await pd.core.emitter.drain()
    metas = [p["meta"] for p in receiver.delivered]
    assert [
        (m["action"], m["entity"], m["entity_id"], m["change_source"], m["user_id"]) for m in metas
    ] == [
        ("create", "person", str(pid), "api", "9001"),
        ("change", "person", str(pid), "api", "9001"),
        ("delete", "person", str(pid), "app", "5"),
    ]
    change = receiver.delivered[1]
    assert (change["data"]["name"], change["previous"]) == ("Ours2", {"name": "Ours"})
    delete = receiver.delivered[2]
    assert delete["data"] is None and delete["previous"]["id"] == pid
    assert all(m["retry"] == 0 for m in metas)


async def test_an_unknown_route_costs_one_token_like_a_read(start: Start) -> None:
    pd = await pipedrive(start, limits=PipedriveLimits(daily_tokens=100))
    status, _, headers = await pd.call_h("GET", "/api/v1/nothing/here")
    assert status == 404 and headers["x-daily-requests-left"] == "99"
