"""Hostile and malformed input: none of it crashes the worker, stalls other conversations or
loses other events. Each test's name says the outcome: applied, dead-lettered (and why), or
retried/refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from .hostile import NOW, Hostile, Raw, T, conversation, run_against

GOOD = conversation(1, "hello there", "how can I help?")
"""A well-behaved conversation served beside every hostile input: it must always arrive."""


STILL_HERE = conversation(3, "still here", start=T + 10)


def hostile_with(*pages: list[dict[str, Any]] | Raw, **kwargs: Any) -> Hostile:
    return Hostile(
        windows=[[GOOD], *[[p] for p in pages]], histories={1: GOOD, 3: STILL_HERE}, **kwargs
    )


def assert_good_conversation_arrived(outcome: Any) -> None:
    assert outcome.texts(1) == ["hello there", "how can I help?"]
    chat = outcome.chats["1"][0]
    assert (int(chat.started_at.timestamp()), int(chat.ended_at.timestamp())) == (T, T + 3)


def event(**fields: Any) -> dict[str, Any]:
    return {"conversation_id": 2, "event_name": "START", "event_at": T, "data": None, **fields}


@pytest.mark.parametrize(
    "bad, reason",
    [
        (event(conversation_id=None), "conversation_id"),
        ({"event_name": "START", "event_at": T, "data": None}, "conversation_id: Field required"),
        (event(conversation_id="2"), "conversation_id: Input should be a valid integer"),
        (event(event_name="TYPING"), "event_name"),
        (event(event_at=-5), "event_at: Input should be greater than or equal to 0"),
        (event(event_at=T + 0.5), "event_at: Input should be a valid integer"),
        (event(event_at=int(NOW) + 30 * 86400), "s in the future"),
        (event(event_name="MESSAGE", data={"text": "wrong key"}), "MESSAGE data.message"),
        (event(event_name="TRANSFER", data={"old_advisor_id": 1}), "new_advisor_id"),
        ("not an object", "Input should be a valid dictionary"),
    ],
    ids=[
        "null-conversation-id",
        "missing-conversation-id",
        "conversation-id-as-string",
        "unknown-event-name",
        "negative-event-at",
        "float-event-at",
        "far-future-event-at",
        "message-without-text",
        "transfer-without-new-advisor",
        "not-an-object",
    ],
)
async def test_a_malformed_event_is_dead_lettered_with_its_reason_and_the_rest_flows(
    tmp_path: Path, bad: Any, reason: str
) -> None:
    outcome = await run_against(hostile_with([bad, *STILL_HERE]), tmp_path)

    assert_good_conversation_arrived(outcome)
    assert outcome.texts(3) == ["still here"]
    [letter] = outcome.dead
    assert reason in letter.reason
    assert not letter.blocking


async def test_a_one_character_message_is_dead_lettered_and_its_conversation_goes_on(
    tmp_path: Path,
) -> None:
    story = conversation(2, "k", "a proper message")
    outcome = await run_against(
        Hostile(windows=[[GOOD], [story]], histories={1: GOOD, 2: story}), tmp_path
    )

    assert_good_conversation_arrived(outcome)
    assert outcome.texts(2) == ["a proper message"]
    assert outcome.chats["2"][0].ended_at is not None
    [letter] = outcome.dead
    assert "shorter than 2 characters" in letter.reason


@pytest.mark.parametrize(
    "text",
    [
        "x" * 1_000_000,
        "Olá! 👋🏽 ça va? 你好",
        "مرحبا، كيف يمكنني مساعدتك؟",
        "a NUL \x00 inside",
    ],
    ids=["one-megabyte", "emoji-and-accents", "right-to-left", "nul-character"],
)
async def test_unusual_message_texts_are_applied_intact(tmp_path: Path, text: str) -> None:
    story = conversation(2, text)
    outcome = await run_against(
        Hostile(windows=[[GOOD], [story]], histories={1: GOOD, 2: story}), tmp_path
    )

    assert_good_conversation_arrived(outcome)
    assert outcome.texts(2) == [text.strip()]
    assert outcome.dead == []


@pytest.mark.parametrize(
    "answer",
    [
        Raw("<html><body>Bad gateway</body></html>", content_type="text/html"),
        Raw(""),
        Raw('{"nextPageUrl": null, "events": [{"conversation_id": 2, "event_'),
        Raw('{"next": null, "items": []}'),
        Raw("[1, 2, 3]"),
    ],
    ids=["html", "empty", "truncated-json", "wrong-shape", "a-list"],
)
async def test_a_broken_200_answer_is_retried_and_what_it_hid_is_healed_from_histories(
    tmp_path: Path, answer: Raw
) -> None:
    hidden = conversation(2, "behind the broken answer")
    hostile = Hostile(windows=[[GOOD], [answer]], histories={1: GOOD, 2: hidden})

    outcome = await run_against(hostile, tmp_path, stuck=True)

    # The broken window never completes, so the cursor stays before it and the worker keeps
    # asking; meanwhile recovery finds the conversation it may have hidden on /conversations.
    assert_good_conversation_arrived(outcome)
    assert outcome.engine.stats.poll_failures >= 3
    assert "not JSON" in (outcome.engine.stats.last_poll_error or "") or "shape" in (
        outcome.engine.stats.last_poll_error or ""
    )
    assert outcome.cursor == hostile.base + 1
    assert outcome.texts(2) == ["behind the broken answer"]


async def test_a_next_page_url_to_another_host_is_never_requested_and_the_next_page_still_comes(
    tmp_path: Path,
) -> None:
    second = conversation(2, "on page two")
    hostile = Hostile(
        windows=[[GOOD, second]],
        histories={1: GOOD, 2: second},
        next_page_url={(0, 0): "http://169.254.169.254/latest/meta-data?page=1"},
    )

    outcome = await run_against(hostile, tmp_path)

    # The link is refused; the contract's own next page (page=1, same request) is asked for
    # from the configured origin instead, so the window completes and nothing is lost.
    assert all("169.254" not in r for r in outcome.requests)
    assert_good_conversation_arrived(outcome)
    assert outcome.texts(2) == ["on page two"]


async def test_a_next_page_url_looping_back_is_not_followed(tmp_path: Path) -> None:
    second = conversation(2, "on page two")
    hostile = Hostile(windows=[[GOOD, second]], histories={1: GOOD, 2: second})
    original_app = hostile.app

    def looping_app() -> web.Application:
        app = original_app()

        @web.middleware
        async def loop_back(request: web.Request, handler: Any) -> web.StreamResponse:
            hostile.next_page_url[(0, 0)] = str(request.url.with_query(request.query))
            return await handler(request)

        app.middlewares.append(loop_back)
        return app

    hostile.app = looping_app  # type: ignore[method-assign]

    outcome = await run_against(hostile, tmp_path)

    first_pages = [r for r in outcome.requests if "page=0" in r]
    assert len(first_pages) == len(set(first_pages))  # no page asked twice in one window
    assert_good_conversation_arrived(outcome)
    assert outcome.texts(2) == ["on page two"]


async def test_ourapi_answering_404_for_a_chat_the_worker_created_is_dead_lettered(
    tmp_path: Path,
) -> None:
    victim = conversation(2, "this chat vanishes")
    created: dict[str, str] = {}

    @web.middleware
    async def lose_chat(request: web.Request, handler: Any) -> web.StreamResponse:
        response = await handler(request)
        if request.method == "POST" and request.path == "/chats" and response.status == 201:
            body = response.body.decode() if isinstance(response.body, bytes) else ""  # type: ignore[union-attr]
            if '"external_id": "2"' in body or '"external_id":"2"' in body:
                created["path"] = response.headers["Location"]
        if request.path.startswith(created.get("path", "//")) and request.method != "GET":
            return web.json_response({"detail": "Chat not found"}, status=404)
        return response

    outcome = await run_against(
        Hostile(windows=[[GOOD], [victim]], histories={1: GOOD, 2: victim}),
        tmp_path,
        ourapi_middleware=lose_chat,
    )

    assert_good_conversation_arrived(outcome)
    [letter] = outcome.dead
    assert letter.key == "2"
    assert "404 Chat not found" in letter.reason
    assert letter.blocking
