"""The Salesforce-like stand-in: the 24 h allocation, upserts (300), collections, SOQL paging,
soft and hard delete, and CDC events carrying the writer's client id."""

from __future__ import annotations

from typing import Any

from crm_providers.core.settings import WebhookSettings
from crm_providers.salesforce import SalesforceLimits, SalesforceSettings, create_app
from crm_providers.salesforce.schema import checksum, normalise_id
from tests.crm_providers.conftest import Receiver, Running, Start

BASE = "/services/data/v60.0"
OURS = {"Sforce-Call-Options": "client=our-sync"}


async def salesforce(start: Start, **settings: Any) -> Running:
    return await start(create_app, SalesforceSettings(**settings))


async def contact(sf: Running, **fields: Any) -> str:
    fields.setdefault("LastName", "Doe")
    status, body = await sf.call("POST", f"{BASE}/sobjects/Contact", json=fields, headers=OURS)
    assert status == 201, body
    return str(body["id"])


def test_ids_carry_the_case_safe_checksum() -> None:
    # A known pair from Salesforce's documentation of 15- and 18-character ids.
    assert checksum("001A0000006Vm9r") == "IAC"
    assert normalise_id("001A0000006Vm9r") == "001A0000006Vm9rIAC"
    assert normalise_id("001A0000006Vm9rXXX") is None


async def test_the_allocation_answers_403_request_limit_exceeded_not_429(start: Start) -> None:
    sf = await salesforce(start, limits=SalesforceLimits(allocation=3))
    for used in (1, 2, 3):
        status, _, headers = await sf.call_h("GET", f"{BASE}/limits")
        assert status == 200
        assert headers["Sforce-Limit-Info"] == f"api-usage={used}/3"
    status, body, headers = await sf.call_h("GET", f"{BASE}/limits")
    assert status == 403
    assert body == [
        {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]
    assert headers["Sforce-Limit-Info"] == "api-usage=3/3"
    assert sf.core.stats.snapshot()["limited"] == 1


async def test_the_allocation_is_a_rolling_24_hours(start: Start) -> None:
    sf = await salesforce(start, limits=SalesforceLimits(allocation=2))
    await sf.call("GET", f"{BASE}/limits")
    sf.clock.at += 12 * 3600
    await sf.call("GET", f"{BASE}/limits")
    assert (await sf.call("GET", f"{BASE}/limits"))[0] == 403
    sf.clock.at += 12 * 3600  # the first request leaves the window, the second does not
    status, body = await sf.call("GET", f"{BASE}/limits")
    assert status == 200 and body["DailyApiRequests"] == {"Max": 2, "Remaining": 0}
    assert (await sf.call("GET", f"{BASE}/limits"))[0] == 403


async def test_create_read_update_with_15_or_18_character_ids(start: Start) -> None:
    sf = await salesforce(start)
    cid = await contact(sf, FirstName="Ann", Email="ann@example.com")
    assert len(cid) == 18 and cid.startswith("003")
    assert (await sf.call("PATCH", f"{BASE}/sobjects/Contact/{cid[:15]}", json={"Title": "CEO"}))[
        0
    ] == 204
    status, body = await sf.call("GET", f"{BASE}/sobjects/Contact/{cid}")
    assert status == 200
    assert (body["Id"], body["FirstName"], body["Title"], body["IsDeleted"]) == (
        cid,
        "Ann",
        "CEO",
        False,
    )
    assert body["SystemModstamp"].endswith("+0000")


async def test_a_missing_last_name_is_required_field_missing(start: Start) -> None:
    sf = await salesforce(start)
    status, body = await sf.call("POST", f"{BASE}/sobjects/Contact", json={"FirstName": "A"})
    assert status == 400 and body[0]["errorCode"] == "REQUIRED_FIELD_MISSING"


async def test_upsert_by_external_id_creates_201_then_updates_200(start: Start) -> None:
    sf = await salesforce(start)
    url = f"{BASE}/sobjects/Contact/Our_Id__c/our-1"
    status, body = await sf.call("PATCH", url, json={"LastName": "One"}, headers=OURS)
    assert status == 201 and body["created"] is True
    status, again = await sf.call("PATCH", url, json={"LastName": "Uno"}, headers=OURS)
    assert status == 200 and again == {
        "id": body["id"],
        "success": True,
        "errors": [],
        "created": False,
    }


async def test_upsert_with_update_only_and_no_match_answers_404(start: Start) -> None:
    sf = await salesforce(start)
    url = f"{BASE}/sobjects/Contact/Our_Id__c/nobody"
    status, body = await sf.call(
        "PATCH", url, json={"LastName": "X"}, params={"updateOnly": "true"}
    )
    assert status == 404 and body[0]["errorCode"] == "NOT_FOUND"
    assert sf.core.store.seq == 0


async def test_upsert_of_an_external_id_held_by_two_records_answers_300(start: Start) -> None:
    sf = await salesforce(start)
    first = await contact(sf, Our_Id__c="dup")
    second = await contact(sf, Our_Id__c="dup")
    url = f"{BASE}/sobjects/Contact/Our_Id__c/dup"
    status, body = await sf.call("PATCH", url, json={"LastName": "X"})
    assert status == 300
    assert sorted(body) == sorted(f"{BASE}/sobjects/Contact/{i}" for i in (first, second))


async def test_a_collection_with_one_bad_record_saves_the_others(start: Start) -> None:
    sf = await salesforce(start)
    records = [
        {"attributes": {"type": "Contact"}, "LastName": "A"},
        {"attributes": {"type": "Contact"}, "FirstName": "no last name"},
        {"attributes": {"type": "Account"}, "Name": "Acme"},
    ]
    body = {"allOrNone": False, "records": records}
    status, results = await sf.call("POST", f"{BASE}/composite/sobjects", json=body)
    assert status == 200
    assert [r["success"] for r in results] == [True, False, True]
    assert results[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert results[1]["errors"][0]["fields"] == ["LastName"]
    assert results[2]["id"].startswith("001")


async def test_a_collection_with_all_or_none_rolls_every_record_back(start: Start) -> None:
    sf = await salesforce(start)
    records = [
        {"attributes": {"type": "Contact"}, "LastName": "A"},
        {"attributes": {"type": "Contact"}, "Email": "broken"},
    ]
    body = {"allOrNone": True, "records": records}
    _, results = await sf.call("POST", f"{BASE}/composite/sobjects", json=body)
    assert [r["success"] for r in results] == [False, False]
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert sf.core.store.seq == 0


async def test_a_collection_of_201_records_is_refused(start: Start) -> None:
    sf = await salesforce(start)
    records = [{"attributes": {"type": "Contact"}, "LastName": str(i)} for i in range(201)]
    status, body = await sf.call("POST", f"{BASE}/composite/sobjects", json={"records": records})
    assert status == 400 and body[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


async def test_a_collection_upsert_reports_duplicate_external_id_per_record(start: Start) -> None:
    sf = await salesforce(start)
    await contact(sf, Our_Id__c="dup")
    await contact(sf, Our_Id__c="dup")
    records = [
        {"attributes": {"type": "Contact"}, "Our_Id__c": "dup", "LastName": "X"},
        {"attributes": {"type": "Contact"}, "Our_Id__c": "new", "LastName": "Y"},
    ]
    url = f"{BASE}/composite/sobjects/Contact/Our_Id__c"
    status, results = await sf.call("PATCH", url, json={"records": records})
    assert status == 200
    assert results[0]["errors"][0]["statusCode"] == "DUPLICATE_EXTERNAL_ID"
    assert (results[1]["success"], results[1]["created"]) == (True, True)


def q(text: str) -> dict[str, str]:
    return {"q": text}


async def test_query_pages_by_system_modstamp_with_next_records_url(start: Start) -> None:
    sf = await salesforce(start, records=450)
    soql = (
        "SELECT Id, LastName FROM Contact WHERE SystemModstamp > 2000-01-01T00:00:00Z "
        "ORDER BY SystemModstamp"
    )
    headers = {"Sforce-Query-Options": "batchSize=200"}
    status, first = await sf.call("GET", f"{BASE}/query", params=q(soql), headers=headers)
    assert status == 200
    assert (first["totalSize"], first["done"], len(first["records"])) == (450, False, 200)
    assert set(first["records"][0]) == {"attributes", "Id", "LastName"}
    ids = [r["Id"] for r in first["records"]]
    url = first["nextRecordsUrl"]
    while url:
        _, page = await sf.call("GET", url)
        ids += [r["Id"] for r in page["records"]]
        url = page.get("nextRecordsUrl")
    assert len(set(ids)) == 450


async def test_a_query_batch_holds_at_most_2000_records(start: Start) -> None:
    sf = await salesforce(start, records=2001)
    _, first = await sf.call("GET", f"{BASE}/query", params=q("SELECT Id FROM Contact"))
    assert len(first["records"]) == 2000 and not first["done"]


async def test_query_paging_drifts_when_a_record_changes_between_batches(start: Start) -> None:
    sf = await salesforce(start, records=400)
    soql = "SELECT Id FROM Contact ORDER BY SystemModstamp"
    headers = {"Sforce-Query-Options": "batchSize=200"}
    _, first = await sf.call("GET", f"{BASE}/query", params=q(soql), headers=headers)
    moved = first["records"][0]["Id"]
    sf.clock.at += 1
    await sf.standin("PATCH", f"users/Contact/{moved}", json={"fields": {"Title": "moved"}})
    _, second = await sf.call("GET", first["nextRecordsUrl"])
    ids = [r["Id"] for r in first["records"] + second["records"]]
    assert ids.count(moved) == 2 and len(set(ids)) == 399  # one seen twice, one never


async def test_with_cursor_drift_off_the_first_batch_fixes_the_result(start: Start) -> None:
    sf = await salesforce(start, records=400, cursor_drift=False)
    soql = "SELECT Id FROM Contact ORDER BY SystemModstamp"
    headers = {"Sforce-Query-Options": "batchSize=200"}
    _, first = await sf.call("GET", f"{BASE}/query", params=q(soql), headers=headers)
    sf.clock.at += 1
    await sf.standin(
        "PATCH", f"users/Contact/{first['records'][0]['Id']}", json={"fields": {"Title": "x"}}
    )
    _, second = await sf.call("GET", first["nextRecordsUrl"])
    assert len({r["Id"] for r in first["records"] + second["records"]}) == 400


async def test_a_malformed_query_answers_malformed_query(start: Start) -> None:
    sf = await salesforce(start)
    status, body = await sf.call("GET", f"{BASE}/query", params=q("SELECT Id FROM Contact WHERE"))
    assert status == 400 and body[0]["errorCode"] == "MALFORMED_QUERY"
    status, body = await sf.call("GET", f"{BASE}/query", params=q("SELECT Nope FROM Contact"))
    assert status == 400 and body[0]["errorCode"] == "INVALID_FIELD"


async def test_delete_is_soft_query_all_sees_it_and_a_purge_removes_it(start: Start) -> None:
    sf = await salesforce(start)
    cid = await contact(sf)
    assert (await sf.call("DELETE", f"{BASE}/sobjects/Contact/{cid}"))[0] == 204
    status, _body = await sf.call("GET", f"{BASE}/sobjects/Contact/{cid}")
    assert status == 404
    soql = "SELECT Id, IsDeleted FROM Contact"
    _, live = await sf.call("GET", f"{BASE}/query", params=q(soql))
    _, every = await sf.call("GET", f"{BASE}/queryAll", params=q(soql))
    assert live["records"] == []
    assert [(r["Id"], r["IsDeleted"]) for r in every["records"]] == [(cid, True)]
    await sf.standin("DELETE", f"users/Contact/{cid}", params={"hard": "true"})
    _, after = await sf.call("GET", f"{BASE}/queryAll", params=q(soql))
    assert after["records"] == []
    assert [r["id"] for r in (await sf.standin("GET", "records"))["purged"]] == [cid]


async def test_change_events_carry_our_client_id_and_user_edits_carry_none(
    start: Start, receiver: Receiver
) -> None:
    sf = await salesforce(start, webhook=WebhookSettings(url=receiver.url))
    ours = await contact(sf, FirstName="Ours")
    await sf.call("PATCH", f"{BASE}/sobjects/Contact/{ours}", json={"Title": "CTO"}, headers=OURS)
    await sf.standin("PATCH", f"users/Contact/{ours}", json={"fields": {"Title": "CEO"}})
    await sf.call("DELETE", f"{BASE}/sobjects/Contact/{ours}")  # no Sforce-Call-Options
    assert await sf.core.emitter.drain()
    events = [e for post in receiver.delivered for e in post["events"]]
    headers = [e["payload"]["ChangeEventHeader"] for e in events]
    assert [(h["changeType"], h["changeOrigin"]) for h in headers] == [
        ("CREATE", "com/salesforce/api/rest/60.0;client=our-sync"),
        ("UPDATE", "com/salesforce/api/rest/60.0;client=our-sync"),
        ("UPDATE", ""),
        ("DELETE", "com/salesforce/api/rest/60.0"),
    ]
    assert headers[1]["changedFields"] == ["Title", "LastModifiedDate"]
    assert events[1]["payload"]["Title"] == "CTO"
    assert all(h["recordIds"] == [ours] and h["entityName"] == "Contact" for h in headers)
    replay = [int(e["replayId"]) for e in events]
    assert replay == sorted(replay) and len(set(replay)) == 4


async def test_a_collection_is_one_transaction_with_increasing_sequence_numbers(
    start: Start, receiver: Receiver
) -> None:
    sf = await salesforce(start, webhook=WebhookSettings(url=receiver.url))
    records = [{"attributes": {"type": "Contact"}, "LastName": n} for n in "ABC"]
    await sf.call("POST", f"{BASE}/composite/sobjects", json={"records": records})
    assert await sf.core.emitter.drain()
    headers = [e["payload"]["ChangeEventHeader"] for p in receiver.delivered for e in p["events"]]
    assert len({h["transactionKey"] for h in headers}) == 1
    assert [h["sequenceNumber"] for h in headers] == [1, 2, 3]
