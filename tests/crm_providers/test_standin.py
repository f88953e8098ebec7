"""What the three stand-ins share: faults, /_standin/ controls and truth, user edits, the
documents, and the snapshot file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from crm_providers.core.app import PROVIDER
from crm_providers.core.settings import CommonSettings
from crm_providers.hubspot import HubSpotSettings
from crm_providers.hubspot import create_app as hubspot_app
from crm_providers.pipedrive import PipedriveSettings
from crm_providers.pipedrive import create_app as pipedrive_app
from crm_providers.salesforce import SalesforceSettings
from crm_providers.salesforce import create_app as salesforce_app
from integration.core.serving import serve_app
from tests.crm_providers.conftest import Running, Start

CONTACTS = "/crm/v3/objects/contacts"
PROVIDERS: list[tuple[Callable[..., web.Application], type[CommonSettings], str, str]] = [
    (hubspot_app, HubSpotSettings, "/crm/v3/objects/contacts", "contacts"),
    (
        salesforce_app,
        SalesforceSettings,
        "/services/data/v60.0/query?q=SELECT+Id+FROM+Contact",
        "Contact",
    ),
    (pipedrive_app, PipedriveSettings, "/api/v2/persons", "persons"),
]


async def hubspot(start: Start, **settings: Any) -> Running:
    return await start(hubspot_app, HubSpotSettings(**settings))


async def test_error_rate_answers_500_before_anything_is_stored(start: Start) -> None:
    hs = await hubspot(start, error_rate=1.0)
    status, body = await hs.call("POST", CONTACTS, json={"properties": {"firstname": "A"}})
    assert status == 500 and body["status"] == "error"
    assert hs.core.store.seq == 0


async def test_ambiguous_rate_stores_the_write_then_answers_500(start: Start) -> None:
    hs = await hubspot(start, ambiguous_rate=1.0)
    status, _ = await hs.call("POST", CONTACTS, json={"properties": {"firstname": "A"}})
    assert status == 500
    records = (await hs.standin("GET", "records"))["objects"]["contacts"]
    assert [r["fields"]["firstname"] for r in records] == ["A"]
    assert (await hs.call("GET", CONTACTS))[0] == 200  # reads are never ambiguous


async def test_faults_switch_at_run_time_and_bad_values_are_refused(start: Start) -> None:
    hs = await hubspot(start)
    assert (await hs.call("GET", CONTACTS))[0] == 200
    await hs.standin("PATCH", "faults", json={"error_rate": 1.0})
    assert (await hs.call("GET", CONTACTS))[0] == 500
    assert (await hs.call("PATCH", "/_standin/faults", json={"error_rate": 2}))[0] == 422
    assert (await hs.call("PATCH", "/_standin/faults", json={"nope": 1}))[0] == 422
    await hs.standin("PATCH", "faults", json={"error_rate": 0.0})
    assert (await hs.call("GET", CONTACTS))[0] == 200
    assert (await hs.standin("GET", "faults"))["counts"] == {"error": 1}


async def test_standin_routes_are_never_faulted(start: Start) -> None:
    hs = await hubspot(start, error_rate=1.0)
    assert (await hs.call("GET", "/_standin/records"))[0] == 200
    assert (await hs.call("GET", "/openapi.json"))[0] == 200


async def test_a_request_answered_500_by_a_fault_still_spends_budget(start: Start) -> None:
    hs = await hubspot(start, error_rate=1.0)
    await hs.call("GET", CONTACTS)
    budget = await hs.standin("GET", "budget")
    assert budget["TEN_SECONDLY_ROLLING"]["used"] == 1 and budget["DAILY"]["used"] == 1


async def test_stats_count_by_method_route_and_status_and_reset(start: Start) -> None:
    hs = await hubspot(start)
    await hs.call("GET", CONTACTS)
    await hs.call("GET", CONTACTS + "/1")
    stats = await hs.standin("GET", "stats")
    assert stats["total"] == 2 and stats["limited"] == 0
    assert {(r["route"], r["status"]) for r in stats["requests"]} == {
        ("/crm/v3/objects/{object}", 200),
        ("/crm/v3/objects/{object}/{id}", 404),
    }
    assert stats["by_status"] == {"200": 1, "404": 1}
    assert (await hs.call("POST", "/_standin/stats/reset"))[0] == 204
    assert (await hs.standin("GET", "stats"))["total"] == 0


async def test_budget_reset_and_limits_changed_at_run_time(start: Start) -> None:
    hs = await hubspot(start)
    await hs.standin("PATCH", "limits", json={"burst_limit": 1})
    await hs.call("GET", CONTACTS)
    assert (await hs.call("GET", CONTACTS))[0] == 429
    await hs.standin("POST", "budget/reset")
    assert (await hs.call("GET", CONTACTS))[0] == 200
    assert (await hs.call("PATCH", "/_standin/limits", json={"burst_limit": 0}))[0] == 422
    assert (await hs.standin("GET", "limits"))["burst_limit"] == 1


async def test_user_edits_are_validated_in_the_providers_own_field_names(start: Start) -> None:
    hs = await hubspot(start)
    status, body = await hs.call(
        "POST", "/_standin/users/contacts", json={"fields": {"FirstName": "A"}}
    )
    assert status == 400 and "PROPERTY_DOESNT_EXIST" in body["detail"][0]
    assert (await hs.call("POST", "/_standin/users/Contact", json={"fields": {}}))[0] == 404
    assert (await hs.call("PATCH", "/_standin/users/contacts/1", json={"fields": {}}))[0] == 404


async def test_the_change_log_names_each_changes_origin(start: Start) -> None:
    hs = await hubspot(start, app_id=9)
    _, body = await hs.call("POST", CONTACTS, json={"properties": {"firstname": "A"}})
    await hs.standin("PATCH", f"users/contacts/{body['id']}", json={"fields": {"firstname": "B"}})
    changes = (await hs.standin("GET", "changes"))["changes"]
    assert [(c["kind"], c["origin"]) for c in changes] == [
        ("create", {"kind": "integration", "actor": "9"}),
        ("update", {"kind": "user", "actor": "7001"}),
    ]
    assert changes[1]["changed"] == {"firstname": ["A", "B"]}
    assert (await hs.standin("GET", "changes", params={"after": "1"}))["changes"] == changes[1:]


async def test_a_restored_record_is_live_again(start: Start) -> None:
    hs = await hubspot(start)
    _, body = await hs.call("POST", CONTACTS, json={"properties": {"firstname": "A"}})
    await hs.call("DELETE", f"{CONTACTS}/{body['id']}")
    await hs.standin("POST", f"users/contacts/{body['id']}/restore")
    status, again = await hs.call("GET", f"{CONTACTS}/{body['id']}")
    assert status == 200 and again["archived"] is False


@pytest.mark.parametrize(("create_app", "settings", "listing", "obj"), PROVIDERS)
async def test_each_provider_serves_openapi_and_docs_uncounted(
    start: Start,
    create_app: Callable[..., web.Application],
    settings: type[CommonSettings],
    listing: str,
    obj: str,
) -> None:
    running = await start(create_app, settings())
    status, document = await running.call("GET", "/openapi.json")
    assert status == 200 and document["openapi"] == "3.1.0" and document["paths"]
    status, page = await running.call("GET", "/docs")
    assert status == 200 and "<table>" in page
    assert (await running.standin("GET", "stats"))["total"] == 0


@pytest.mark.parametrize(("create_app", "settings", "listing", "obj"), PROVIDERS)
async def test_each_provider_seeds_the_same_records_from_the_same_seed(
    start: Start,
    create_app: Callable[..., web.Application],
    settings: type[CommonSettings],
    listing: str,
    obj: str,
) -> None:
    first = await start(create_app, settings(records=5, seed=3))
    second = await start(create_app, settings(records=5, seed=3))
    one = (await first.standin("GET", "records"))["objects"][obj]
    two = (await second.standin("GET", "records"))["objects"][obj]
    assert len(one) == 5 and one == two
    assert (await first.call("GET", listing))[0] == 200


@pytest.mark.parametrize(("create_app", "settings", "listing", "obj"), PROVIDERS)
async def test_the_snapshot_file_keeps_records_across_a_restart(
    tmp_path: Path,
    create_app: Callable[..., web.Application],
    settings: type[CommonSettings],
    listing: str,
    obj: str,
) -> None:
    snapshot = tmp_path / "snap.json"
    async with serve_app(create_app(settings(records=3, snapshot=str(snapshot)))):
        pass
    app = create_app(settings(records=0, snapshot=str(snapshot)))
    async with serve_app(app):
        assert len(app[PROVIDER].store.table(obj)) == 3
