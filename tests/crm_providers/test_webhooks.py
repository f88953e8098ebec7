"""Webhook delivery shared by the three stand-ins: retries on the injected clock, giving up,
pausing, a target changed at run time, and the deliberate duplicates and reordering."""

from __future__ import annotations

from crm_providers.core.settings import WebhookSettings
from crm_providers.hubspot import HubSpotSettings
from crm_providers.hubspot import create_app as hubspot_app
from crm_providers.pipedrive import PipedriveSettings
from crm_providers.pipedrive import create_app as pipedrive_app
from tests.crm_providers.conftest import START, Receiver, Running, Start, SteppingClock

CONTACTS = "/crm/v3/objects/contacts"


async def create_contacts(hs: Running, *names: str) -> list[str]:
    inputs = [{"properties": {"firstname": n}} for n in names]
    status, body = await hs.call("POST", CONTACTS + "/batch/create", json={"inputs": inputs})
    assert status == 201, body
    return [r["id"] for r in body["results"]]


async def test_retries_wait_with_exponential_backoff_on_the_injected_clock(
    start: Start, receiver: Receiver
) -> None:
    receiver.failures = 3
    clock = SteppingClock(START)
    hooks = WebhookSettings(url=receiver.url, backoff_s=10, backoff_factor=3, max_attempts=5)
    hs = await start(hubspot_app, HubSpotSettings(webhook=hooks), clock)
    await create_contacts(hs, "A")
    assert await hs.core.emitter.drain()
    assert clock.slept == [10, 30, 90]
    assert receiver.answered == [500, 500, 500, 200]


async def test_after_the_last_attempt_the_delivery_is_given_up_and_later_ones_still_go(
    start: Start, receiver: Receiver
) -> None:
    receiver.failures = 2
    hooks = WebhookSettings(url=receiver.url, max_attempts=2)
    hs = await start(hubspot_app, HubSpotSettings(webhook=hooks))
    await create_contacts(hs, "Lost")
    assert await hs.core.emitter.drain()
    [kept] = await create_contacts(hs, "Kept")
    assert await hs.core.emitter.drain()
    assert [str(e["objectId"]) for post in receiver.delivered for e in post] == [kept]
    snapshot = await hs.standin("GET", "webhooks")
    assert snapshot["counts"]["gave_up"] == 1
    assert [a["outcome"] for a in snapshot["attempts"]] == [
        "failed",
        "failed",
        "gave_up",
        "delivered",
    ]


async def test_a_paused_emitter_queues_events_and_delivers_them_when_resumed(
    start: Start, receiver: Receiver
) -> None:
    hs = await start(
        hubspot_app, HubSpotSettings(webhook=WebhookSettings(url=receiver.url, paused=True))
    )
    await create_contacts(hs, "A", "B")
    assert await hs.core.emitter.drain()
    assert receiver.posts == [] and (await hs.standin("GET", "webhooks"))["pending"] == 2
    await hs.standin("PATCH", "webhooks", json={"paused": False})
    assert await hs.core.emitter.drain()
    assert len([e for post in receiver.delivered for e in post]) == 2


async def test_the_target_can_be_set_at_run_time(start: Start, receiver: Receiver) -> None:
    hs = await start(hubspot_app, HubSpotSettings())
    await create_contacts(hs, "Early")
    await hs.standin("PATCH", "webhooks", json={"url": receiver.url})
    assert await hs.core.emitter.drain()
    assert [e["subscriptionType"] for post in receiver.delivered for e in post] == [
        "contact.creation"
    ]


async def test_with_duplicates_on_every_delivery_arrives_twice_with_the_same_event_ids(
    start: Start, receiver: Receiver
) -> None:
    hs = await start(hubspot_app, HubSpotSettings(webhook=WebhookSettings(url=receiver.url)))
    await hs.standin("PATCH", "faults", json={"duplicate_rate": 1.0})
    await create_contacts(hs, "A")
    assert await hs.core.emitter.drain()
    assert len(receiver.delivered) == 2 and receiver.delivered[0] == receiver.delivered[1]
    assert (await hs.standin("GET", "faults"))["counts"]["duplicate"] == 1


async def test_with_reordering_on_events_arrive_out_of_commit_order(
    start: Start, receiver: Receiver
) -> None:
    hooks = WebhookSettings(url=receiver.url, paused=True)
    pd = await start(pipedrive_app, PipedriveSettings(webhook=hooks, reorder_rate=1.0))
    ids = []
    for name in ("Aa", "Bb", "Cc", "Dd"):
        _, body = await pd.call("POST", "/api/v2/persons", json={"name": name})
        ids.append(str(body["data"]["id"]))
        pd.clock.at += 1
    await pd.standin("PATCH", "webhooks", json={"paused": False})
    assert await pd.core.emitter.drain()
    arrived = [p["meta"]["entity_id"] for p in receiver.delivered]
    assert sorted(arrived) == sorted(ids) and arrived != ids
    assert arrived == [ids[1], ids[0], ids[3], ids[2]]
    # The timestamps still tell the commit order, which is what a receiver must go by.
    stamps = [p["meta"]["timestamp"] for p in receiver.delivered]
    assert sorted(stamps) == [stamps[1], stamps[0], stamps[3], stamps[2]]


async def test_pipedrive_counts_retries_in_meta_retry(start: Start, receiver: Receiver) -> None:
    receiver.failures = 1
    pd = await start(pipedrive_app, PipedriveSettings(webhook=WebhookSettings(url=receiver.url)))
    await pd.call("POST", "/api/v2/persons", json={"name": "Aa"})
    assert await pd.core.emitter.drain()
    assert [p["meta"]["retry"] for p in receiver.posts] == [0, 1]
    assert receiver.posts[0]["meta"]["id"] == receiver.posts[1]["meta"]["id"]
