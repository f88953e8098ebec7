"""The HubSpot-like stand-in: limits, batches, upserts, search paging, archive, webhooks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from crm_providers.core.settings import WebhookSettings
from crm_providers.hubspot import HubSpotLimits, HubSpotSettings, create_app
from tests.crm_providers.conftest import Receiver, Running, Start

CONTACTS = "/crm/v3/objects/contacts"
RATE_HEADERS = (
    "X-HubSpot-RateLimit-Daily",
    "X-HubSpot-RateLimit-Daily-Remaining",
    "X-HubSpot-RateLimit-Interval-Milliseconds",
    "X-HubSpot-RateLimit-Max",
    "X-HubSpot-RateLimit-Remaining",
)


async def hubspot(start: Start, **settings: Any) -> Running:
    return await start(create_app, HubSpotSettings(**settings))


async def contact(hs: Running, **properties: str) -> str:
    status, body = await hs.call("POST", CONTACTS, json={"properties": properties})
    assert status == 201, body
    return str(body["id"])


async def test_the_burst_limit_answers_429_ten_secondly_rolling_until_the_window_passes(
    start: Start,
) -> None:
    hs = await hubspot(start, limits=HubSpotLimits(burst_limit=5))
    for expected_remaining in (4, 3, 2, 1, 0):
        status, _, headers = await hs.call_h("GET", CONTACTS)
        assert status == 200
        assert headers["X-HubSpot-RateLimit-Remaining"] == str(expected_remaining)
    status, body, headers = await hs.call_h("GET", CONTACTS)
    assert status == 429
    assert body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body["errorType"] == "RATE_LIMIT"
    assert headers["X-HubSpot-RateLimit-Max"] == "5"
    assert headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    hs.clock.at += 9.9
    assert (await hs.call("GET", CONTACTS))[0] == 429
    hs.clock.at += 0.1
    assert (await hs.call("GET", CONTACTS))[0] == 200
    assert hs.core.stats.snapshot()["limited_by_policy"] == {"TEN_SECONDLY_ROLLING": 2}


async def test_the_daily_budget_answers_429_daily_and_resets_at_the_accounts_midnight(
    start: Start,
) -> None:
    hs = await hubspot(start, limits=HubSpotLimits(daily_limit=3, burst_limit=100))
    for remaining in ("2", "1", "0"):
        _, _, headers = await hs.call_h("GET", CONTACTS)
        assert headers["X-HubSpot-RateLimit-Daily-Remaining"] == remaining
        assert headers["X-HubSpot-RateLimit-Daily"] == "3"
    status, body = await hs.call("GET", CONTACTS)
    assert (status, body["policyName"]) == (429, "DAILY")
    hs.clock.at += 86_400 - 1
    assert (await hs.call("GET", CONTACTS))[0] == 429
    hs.clock.at += 1
    assert (await hs.call("GET", CONTACTS))[0] == 200


async def test_every_api_response_carries_the_rate_limit_headers_errors_included(
    start: Start,
) -> None:
    hs = await hubspot(start)
    for method, path in (("GET", CONTACTS + "/404404"), ("POST", CONTACTS), ("GET", "/nope")):
        _, _, headers = await hs.call_h(method, path, json={})
        assert all(name in headers for name in RATE_HEADERS), (method, path)


async def test_search_has_its_own_limit_of_four_a_second(start: Start) -> None:
    hs = await hubspot(start)
    for _ in range(4):
        assert (await hs.call("POST", CONTACTS + "/search", json={}))[0] == 200
    status, body = await hs.call("POST", CONTACTS + "/search", json={})
    assert (status, body["policyName"]) == (429, "SECONDLY")
    assert (await hs.call("GET", CONTACTS))[0] == 200  # the other calls are not held back
    hs.clock.at += 1
    assert (await hs.call("POST", CONTACTS + "/search", json={}))[0] == 200


async def test_standin_routes_are_neither_counted_nor_limited(start: Start) -> None:
    hs = await hubspot(start, limits=HubSpotLimits(burst_limit=1))
    for _ in range(5):
        await hs.standin("GET", "records")
    assert (await hs.call("GET", CONTACTS))[0] == 200
    assert (await hs.standin("GET", "stats"))["total"] == 1


async def test_a_batch_create_with_one_bad_record_creates_the_others_and_answers_207(
    start: Start,
) -> None:
    hs = await hubspot(start)
    inputs = [
        {"properties": {"email": "a@example.com"}, "objectWriteTraceId": "a"},
        {"properties": {"email": "not-an-email"}, "objectWriteTraceId": "b"},
        {"properties": {"nosuchproperty": "x"}, "objectWriteTraceId": "c"},
        {"properties": {"email": "d@example.com"}, "objectWriteTraceId": "d"},
    ]
    status, body = await hs.call("POST", CONTACTS + "/batch/create", json={"inputs": inputs})
    assert status == 207
    assert [r["objectWriteTraceId"] for r in body["results"]] == ["a", "d"]
    assert body["numErrors"] == 2
    assert [e["context"]["objectWriteTraceId"] for e in body["errors"]] == [["b"], ["c"]]
    assert "INVALID_EMAIL" in body["errors"][0]["message"]
    assert "PROPERTY_DOESNT_EXIST" in body["errors"][1]["message"]
    emails = {
        r["fields"]["email"] for r in (await hs.standin("GET", "records"))["objects"]["contacts"]
    }
    assert emails == {"a@example.com", "d@example.com"}


async def test_a_batch_of_101_inputs_is_refused_whole(start: Start) -> None:
    hs = await hubspot(start)
    inputs = [{"properties": {"firstname": str(i)}} for i in range(101)]
    status, body = await hs.call("POST", CONTACTS + "/batch/create", json={"inputs": inputs})
    assert status == 400 and "101 > 100" in body["message"]
    assert hs.core.store.seq == 0


async def test_batch_update_reports_a_missing_id_and_updates_the_rest(start: Start) -> None:
    hs = await hubspot(start)
    known = await contact(hs, firstname="Old")
    inputs = [{"id": known, "properties": {"firstname": "New"}}, {"id": "1", "properties": {}}]
    status, body = await hs.call("POST", CONTACTS + "/batch/update", json={"inputs": inputs})
    assert status == 207
    assert body["results"][0]["properties"]["firstname"] == "New"
    assert body["errors"][0]["category"] == "OBJECT_NOT_FOUND"
    assert body["errors"][0]["context"]["ids"] == ["1"]


async def test_upsert_by_our_id_creates_then_updates_the_same_record(start: Start) -> None:
    hs = await hubspot(start)
    url = CONTACTS + "/batch/upsert"
    first = {"inputs": [{"id": "our-1", "idProperty": "our_id", "properties": {"firstname": "A"}}]}
    status, body = await hs.call("POST", url, json=first)
    assert status == 200 and body["results"][0]["new"] is True
    created = body["results"][0]["id"]
    second = {"inputs": [{"id": "our-1", "idProperty": "our_id", "properties": {"firstname": "B"}}]}
    status, body = await hs.call("POST", url, json=second)
    assert status == 200
    assert (body["results"][0]["new"], body["results"][0]["id"]) == (False, created)
    assert body["results"][0]["properties"]["firstname"] == "B"
    status, body = await hs.call("GET", f"{CONTACTS}/our-1", params={"idProperty": "our_id"})
    assert status == 200 and body["id"] == created


async def test_upsert_by_a_property_that_is_not_unique_is_a_per_record_error(start: Start) -> None:
    hs = await hubspot(start)
    inputs = [{"id": "Ann", "idProperty": "firstname", "properties": {}}]
    status, body = await hs.call("POST", CONTACTS + "/batch/upsert", json={"inputs": inputs})
    assert status == 207 and "not a unique identifier" in body["errors"][0]["message"]


async def test_a_second_contact_with_a_taken_email_answers_409_conflict(start: Start) -> None:
    hs = await hubspot(start)
    first = await contact(hs, email="x@example.com")
    status, body = await hs.call("POST", CONTACTS, json={"properties": {"email": "x@example.com"}})
    assert (status, body["category"]) == (409, "CONFLICT")
    assert body["message"].endswith(f"Existing ID: {first}")


async def test_list_pages_by_id_with_after_and_refuses_a_limit_over_100(start: Start) -> None:
    hs = await hubspot(start, records=5)
    seen: list[str] = []
    after: str | None = None
    while True:
        params = {"limit": "2", **({"after": after} if after else {})}
        status, body = await hs.call("GET", CONTACTS, params=params)
        assert status == 200
        seen += [r["id"] for r in body["results"]]
        if "paging" not in body:
            break
        after = body["paging"]["next"]["after"]
    assert len(seen) == 5 and seen == sorted(seen, key=int)
    assert (await hs.call("GET", CONTACTS, params={"limit": "101"}))[0] == 400


async def test_delete_archives_and_archived_true_lists_it(start: Start) -> None:
    hs = await hubspot(start)
    gone = await contact(hs, firstname="Gone")
    kept = await contact(hs, firstname="Kept")
    assert (await hs.call("DELETE", f"{CONTACTS}/{gone}"))[0] == 204
    live = [r["id"] for r in (await hs.call("GET", CONTACTS))[1]["results"]]
    archived = (await hs.call("GET", CONTACTS, params={"archived": "true"}))[1]["results"]
    assert live == [kept]
    assert [r["id"] for r in archived] == [gone] and archived[0]["archived"] is True
    assert (await hs.call("GET", f"{CONTACTS}/{gone}"))[0] == 404
    truth = (await hs.standin("GET", "records"))["objects"]["contacts"]
    assert {r["id"]: r["deleted"] for r in truth} == {gone: True, kept: False}


async def test_gdpr_delete_removes_a_contact_for_good_archived_or_not(start: Start) -> None:
    hs = await hubspot(start)
    live = await contact(hs, firstname="Live")
    archived = await contact(hs, firstname="Archived")
    await hs.call("DELETE", f"{CONTACTS}/{archived}")
    for gone in (live, archived):
        status, _ = await hs.call("POST", CONTACTS + "/gdpr-delete", json={"objectId": gone})
        assert status == 204
    assert (await hs.call("GET", CONTACTS, params={"archived": "true"}))[1]["results"] == []
    truth = await hs.standin("GET", "records")
    assert truth["objects"]["contacts"] == []
    assert sorted(r["id"] for r in truth["purged"]) == sorted([live, archived])


def since(ms: int, after: str | None = None, limit: int = 2) -> dict[str, Any]:
    body: dict[str, Any] = {
        "filterGroups": [
            {"filters": [{"propertyName": "lastmodifieddate", "operator": "GT", "value": str(ms)}]}
        ],
        "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        "limit": limit,
    }
    if after is not None:
        body["after"] = after
    return body


async def test_search_by_lastmodifieddate_drifts_when_a_record_changes_while_paging(
    start: Start,
) -> None:
    hs = await hubspot(start)
    ids = []
    for name in "ABCD":
        ids.append(await contact(hs, firstname=name))
        hs.clock.at += 1
    t0 = int((hs.clock.at - 10) * 1000)
    status, page1 = await hs.call("POST", CONTACTS + "/search", json=since(t0))
    assert status == 200 and [r["id"] for r in page1["results"]] == ids[:2]
    # A user edits A between pages: A moves to the end, C slides into the offset already read.
    await hs.standin("PATCH", f"users/contacts/{ids[0]}", json={"fields": {"firstname": "A2"}})
    hs.clock.at += 1
    after = page1["paging"]["next"]["after"]
    status, page2 = await hs.call("POST", CONTACTS + "/search", json=since(t0, after))
    assert [r["id"] for r in page2["results"]] == [ids[3], ids[0]]  # C skipped, A seen twice


async def test_search_refuses_to_page_past_10000_results(start: Start) -> None:
    hs = await hubspot(start)
    await contact(hs, firstname="A")
    status, body = await hs.call("POST", CONTACTS + "/search", json={"after": "10000"})
    assert status == 400 and body["category"] == "VALIDATION_ERROR"
    assert (await hs.call("POST", CONTACTS + "/search", json={"after": "9999"}))[0] == 200


async def test_webhooks_mark_our_writes_integration_and_user_edits_crm_ui(
    start: Start, receiver: Receiver
) -> None:
    hs = await hubspot(start, app_id=777, webhook=WebhookSettings(url=receiver.url))
    ours = await contact(hs, firstname="Ours")
    await hs.call("PATCH", f"{CONTACTS}/{ours}", json={"properties": {"firstname": "Ours2"}})
    theirs = await hs.standin(
        "POST", "users/contacts", json={"fields": {"firstname": "Theirs"}, "user_id": "55"}
    )
    await hs.standin("DELETE", f"users/contacts/{ours}", params={"user_id": "55"})
    assert await hs.core.emitter.drain()
    events = [e for batch in receiver.delivered for e in batch]
    seen = [
        (e["subscriptionType"], str(e["objectId"]), e["changeSource"], e["sourceId"])
        for e in events
    ]
    assert seen == [
        ("contact.creation", ours, "INTEGRATION", "777"),
        ("contact.propertyChange", ours, "INTEGRATION", "777"),
        ("contact.creation", theirs["id"], "CRM_UI", "userId:55"),
        ("contact.deletion", ours, "CRM_UI", "userId:55"),
    ]
    change = events[1]
    assert (change["propertyName"], change["propertyValue"]) == ("firstname", "Ours2")
    assert all(e["attemptNumber"] == 0 and e["portalId"] == 62515 for e in events)
    assert len({e["eventId"] for e in events}) == 4


async def test_deliveries_are_signed_with_the_client_secret(
    start: Start, receiver: Receiver
) -> None:
    hooks = WebhookSettings(url=receiver.url)
    hs = await hubspot(start, client_secret="s3cret", webhook=hooks)
    await contact(hs, firstname="A")
    assert await hs.core.emitter.drain()
    headers = receiver.headers[0]
    raw = json.dumps(receiver.posts[0])
    timestamp = headers["X-HubSpot-Request-Timestamp"]
    message = f"POST{receiver.url}{raw}{timestamp}".encode()
    expected = base64.b64encode(hmac.new(b"s3cret", message, hashlib.sha256).digest()).decode()
    assert headers["X-HubSpot-Signature-v3"] == expected


async def test_a_failing_receiver_gets_retries_with_a_growing_attempt_number(
    start: Start, receiver: Receiver
) -> None:
    receiver.failures = 2
    hs = await hubspot(start, webhook=WebhookSettings(url=receiver.url, backoff_s=30))
    began = hs.clock.at
    await contact(hs, firstname="A")
    assert await hs.core.emitter.drain()
    assert receiver.answered == [500, 500, 200]
    assert [batch[0]["attemptNumber"] for batch in receiver.posts] == [0, 1, 2]
    assert len({batch[0]["eventId"] for batch in receiver.posts}) == 1
    log = (await hs.standin("GET", "webhooks"))["attempts"]
    assert [a["outcome"] for a in log] == ["failed", "failed", "delivered"]
    assert hs.clock.at == began  # the manual clock's sleep does not move it: nothing waited


async def test_search_sorts_text_descending_when_asked(start: Start) -> None:
    hs = await hubspot(start)
    for name in ("b", "c", "a"):
        await contact(hs, firstname=name)
    body = {"sorts": [{"propertyName": "firstname", "direction": "DESCENDING"}]}
    _, found = await hs.call("POST", CONTACTS + "/search", json=body)
    assert [r["properties"]["firstname"] for r in found["results"]] == ["c", "b", "a"]
