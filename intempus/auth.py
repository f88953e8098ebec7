"""tastypie's API-key authentication, with HTTP Basic beside it (contract section 2).

``Authorization: ApiKey <username>:<key>``: the scheme word in any casing, the username exact,
the rest split at the first ``:`` (so a key may contain one). ``Basic`` carries the same pair
base64-encoded and is accepted while the ``basic_auth`` switch is on.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping


def claimed_user(header: str | None) -> str:
    """The username a header claims, checked or not: what rate limits are counted by."""
    credentials = _credentials(header, basic=True)
    return "" if credentials is None else credentials[0]


def _credentials(header: str | None, *, basic: bool) -> tuple[str, str] | None:
    if not header or " " not in header:
        return None
    scheme, data = header.split(" ", 1)
    data = data.strip()
    if scheme.lower() == "apikey":
        pair = data
    elif scheme.lower() == "basic" and basic:
        try:
            pair = base64.b64decode(data.encode(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
    else:
        return None
    if ":" not in pair:
        return None
    username, key = pair.split(":", 1)
    return username, key


def authenticate(header: str | None, users: Mapping[str, str], *, basic: bool) -> str | None:
    """The authenticated username, or None (the answer is then a bare 401)."""
    credentials = _credentials(header, basic=basic)
    if credentials is None:
        return None
    username, key = credentials
    expected = users.get(username)
    if expected is None or not hmac.compare_digest(expected.encode(), key.encode()):
        return None
    return username
