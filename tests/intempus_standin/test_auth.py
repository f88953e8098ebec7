"""Authentication (contract section 2): ApiKey and Basic, casing, the split, the bare 401."""

from __future__ import annotations

import base64

import pytest

from tests.intempus_standin.conftest import BASIC, Intempus, StartIntempus

EMPTY_401 = (401, b"")


@pytest.mark.parametrize("scheme", ["ApiKey", "apikey", "APIKEY"])
async def test_the_scheme_word_is_matched_in_any_casing(intempus: Intempus, scheme: str) -> None:
    headers = {"Authorization": f"{scheme} sync@example.com:secret-key"}
    answer = await intempus.call("GET", "/web/v1/case/", headers=headers)
    assert answer.status == 200
    assert answer.headers["x-django-user"] == "sync@example.com"


async def test_the_username_is_case_sensitive(intempus: Intempus) -> None:
    headers = {"Authorization": "ApiKey Sync@example.com:secret-key"}
    answer = await intempus.call("GET", "/web/v1/case/", headers=headers)
    assert (answer.status, answer.raw) == EMPTY_401


async def test_the_credentials_split_at_the_first_colon_so_a_key_may_hold_one(
    start_intempus: StartIntempus,
) -> None:
    intempus = await start_intempus(users={"a@example.com": "k:with:colons"})
    ok = await intempus.call(
        "GET", "/web/v1/case/", headers={"Authorization": "ApiKey a@example.com:k:with:colons"}
    )
    assert ok.status == 200


@pytest.mark.parametrize(
    "header",
    [None, "", "ApiKey", "ApiKey sync@example.com", "Bearer sync@example.com:secret-key",
     "ApiKey nobody@example.com:secret-key"],
)  # fmt: skip
async def test_a_missing_or_bad_header_gets_a_bare_401_with_the_challenge(
    intempus: Intempus, header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}
    answer = await intempus.call("GET", "/web/v1/case/", headers=headers)
    assert (answer.status, answer.raw) == EMPTY_401
    assert answer.headers["WWW-Authenticate"] == 'CustomBasic realm="django-tastypie"'


async def test_basic_auth_is_accepted_by_default_and_refused_when_switched_off(
    intempus: Intempus,
) -> None:
    assert (await intempus.call("GET", "/web/v1/case/", headers=BASIC)).status == 200
    await intempus.switch(basic_auth=False)
    answer = await intempus.call("GET", "/web/v1/case/", headers=BASIC)
    assert (answer.status, answer.raw) == EMPTY_401


async def test_basic_auth_with_a_wrong_key_is_refused(intempus: Intempus) -> None:
    wrong = base64.b64encode(b"sync@example.com:nope").decode()
    answer = await intempus.call(
        "GET", "/web/v1/case/", headers={"Authorization": f"Basic {wrong}"}
    )
    assert (answer.status, answer.raw) == EMPTY_401


async def test_a_method_not_allowed_answers_405_with_allow_before_authentication(
    intempus: Intempus,
) -> None:
    answer = await intempus.call("DELETE", "/web/v1/case/", headers={})
    assert (answer.status, answer.raw) == (405, b"")
    assert answer.headers["Allow"] == "GET,POST"
    detail = await intempus.call("POST", "/web/v1/case/1/", {})
    assert detail.headers["Allow"] == "GET,PUT,PATCH,DELETE"
    customer = await intempus.call("POST", "/web/v1/customer/", {})
    assert (customer.status, customer.headers["Allow"]) == (405, "GET")
