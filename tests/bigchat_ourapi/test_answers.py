"""How the two clients read answers: validated from the bytes, and an answer that is not JSON
is still told apart from one of the wrong shape (the first may have been applied)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from yarl import URL

from integration.connectors.bigchat.client import _parse as bigchat_parse
from integration.connectors.bigchat.models import EventsPage
from integration.connectors.ourapi.client import _CHAT
from integration.connectors.ourapi.client import _parse as ourapi_parse
from integration.core.errors import TransientError
from integration.core.http import Response

CHAT = (
    b'{"chat_id": "6f1c2a52-2b1e-4d0a-9d5e-3c8f7f0a1b2c", "external_id": "12",'
    b' "started_at": "2026-01-01T00:00:00", "agent_id": null, "extra": 1}'
)


def answer(body: bytes) -> Response:
    return Response(200, {}, body, URL("http://127.0.0.1:1/x"))


def test_an_ourapi_answer_is_validated_from_its_bytes() -> None:
    chat = ourapi_parse(_CHAT, answer(CHAT), "POST /chats")

    assert (chat.external_id, chat.started_at.tzinfo is not None) == ("12", True)


def ourapi_chat(response: Response) -> object:
    return ourapi_parse(_CHAT, response, "POST /chats")


def bigchat_page(response: Response) -> object:
    return bigchat_parse(EventsPage, response, "GET /events")


@pytest.mark.parametrize(
    ("parse", "body", "message"),
    [
        (ourapi_chat, b"<html>", r"answer 200 is not JSON .*starts with '<html>'"),
        (ourapi_chat, b'{"chat_id": 1}', "answer has the wrong shape"),
        (bigchat_page, b"<html>", r"answer 200 is not JSON .*starts with '<html>'"),
        (bigchat_page, b"{}", r"answer has the wrong shape \(events: "),
    ],
)
def test_an_answer_that_is_not_json_is_told_apart_from_one_of_the_wrong_shape(
    parse: Callable[[Response], object], body: bytes, message: str
) -> None:
    with pytest.raises(TransientError, match=message):
        parse(answer(body))
