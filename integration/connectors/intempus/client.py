"""Intempus's ``/web/v1/case/`` as plain answers (``docs/intempus-contract.md``).

Every request spends one unit of the ``RateBudget`` first and carries
``Authorization: ApiKey user:key`` as a header of that request only: never in a URL, and never in
a message (``HttpService`` logs nothing of a request but its method and path).

Failures, in the engine's vocabulary:

- 401/403: ``PermanentError`` naming the settings to check (the key itself never appears);
- 429: ``TransientError`` with ``retry_after``, and the budget holds every request until then,
  because Intempus counts refused requests too;
- 5xx, timeouts, dropped connections: ``TransientError``; on a write ``maybe_applied`` says the
  write may have committed (an ambiguous answer), so a create is looked for (``find_created``)
  before it is sent again; an HTML 500 page is summarised, not parsed;
- 400 (and a 404 with a body, Intempus's answer to a relation URI of the wrong type) on a write:
  ``WriteRefused``, a blocking ``PermanentError`` naming the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pydantic import ValidationError
from yarl import URL

from ...core.errors import PermanentError, TransientError
from ...core.http import HttpService, Response
from .budget import RateBudget
from .models import RESOURCE_OF, CaseList

CASES = "web/v1/case/"
MAX_PAGES = 100_000
"""A scan with more pages than this is a looping server, not data (10^8 cases at 1000 a page)."""


@dataclass(frozen=True)
class CasePage:
    """One page of a case list as received.

    ``logical_timestamp`` is this page's ``Logical-Timestamp`` header. ``high_water`` is the
    header of the *first* page of the same pass: the contract's safe new high-water mark (a write
    committed while later pages were read has a larger value and turns up on the next pass;
    the largest row LT could skip a case updated behind the cursor). None when the header was
    missing or not an integer: then do not move the mark.
    """

    body: bytes
    rows: list[dict[str, Any]]
    logical_timestamp: int | None
    high_water: int | None
    last: bool


class DeleteOutcome(Enum):
    DELETED = "deleted"  # 204
    GONE = "gone"  # 404: already deleted (by us before a lost answer, or by someone else)
    REFUSED = "refused"  # 409: work reports or child cases are attached


class CaseGone(PermanentError):
    """The case does not exist (404 on a PATCH): deleted at Intempus."""

    def __init__(self, case_id: int) -> None:
        super().__init__(f"Intempus case {case_id} does not exist (404)")
        self.case_id = case_id


class WriteRefused(PermanentError):
    """Intempus refused the data of a write; ``field`` names the key when the answer says it."""

    def __init__(self, message: str, field: str | None) -> None:
        super().__init__(message, blocking=True)
        self.field = field


class IntempusClient:
    def __init__(self, http: HttpService, *, user: str, api_key: str, budget: RateBudget) -> None:
        self.http = http
        self.budget = budget
        self.user = user
        self._auth = {"Authorization": f"ApiKey {user}:{api_key}"}

    def __repr__(self) -> str:
        return f"IntempusClient({self.http.display_url!r}, user={self.user!r})"

    async def _request(
        self,
        method: str,
        path_or_url: str | URL,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> Response:
        await self.budget.take()
        try:
            response = await self.http.request(
                method, path_or_url, params=params, json_body=json_body, headers=self._auth
            )
        except TransientError as exc:
            if exc.status == 429 and exc.retry_after is not None:
                self.budget.hold(exc.retry_after)
            if exc.status is not None and exc.status >= 500:
                raise _server_error(exc) from None
            raise
        if response.status in (401, 403):
            raise PermanentError(
                f"Intempus refused the credentials ({response.status} on {method} "
                f"{response.url.path}): check INTEMPUS_USER ({self.user!r}) and INTEMPUS_API_KEY"
            )
        return response

    # -- reads -------------------------------------------------------------------------------

    async def changed_after(self, lt: int | None, limit: int = 1000) -> AsyncIterator[CasePage]:
        """The current state of every case written after logical timestamp ``lt`` (None: every
        case), in cursor pages. Deletes never show here; only ``all_cases`` or a 404 shows them."""
        params = {"pagination_type": "cursor", "limit": str(limit)}
        if lt is not None:
            params["logical_timestamp__gt"] = str(lt)
        async for page in self._pages(params):
            yield page

    async def all_cases(self, limit: int = 1000) -> AsyncIterator[CasePage]:
        """Every case, in cursor pages (id order): cursor paging neither skips nor repeats a row
        when cases are created or deleted during the scan, as offset paging may."""
        async for page in self._pages({"pagination_type": "cursor", "limit": str(limit)}):
            yield page

    async def _pages(self, params: dict[str, str]) -> AsyncIterator[CasePage]:
        """Follow ``meta.next`` on the configured origin only and never to a page already read.

        A link that cannot be followed raises ``PermanentError``: a cursor token cannot be
        rebuilt locally (unlike BigChat's page numbers), and the pages already yielded do not
        make a complete scan, which the caller must know before it infers any delete.
        """
        url = self.http.url(CASES).update_query(params)
        seen: set[str] = set()
        high_water: int | None = None
        for number in range(MAX_PAGES):
            seen.add(str(url))
            response = await self._request("GET", url)
            if response.status != 200:
                raise _unexpected(response, f"GET /{CASES}")
            listing = _parse_list(response)
            lt = _logical_timestamp(response)
            if number == 0:
                high_water = lt
            rows = [row for row in listing.objects if isinstance(row, dict)]
            if len(rows) != len(listing.objects):
                raise TransientError(
                    f"Intempus GET /{CASES}: a list row is not an object", maybe_applied=False
                )
            link = listing.meta.next
            yield CasePage(response.body, rows, lt, high_water, link is None)
            if link is None:
                return
            url = self._follow(link, seen)
        raise PermanentError(f"Intempus: more than {MAX_PAGES} pages in one case list")

    def _follow(self, link: str, seen: set[str]) -> URL:
        target = self.http.same_origin(link)  # PermanentError for another origin
        if str(target) in seen:
            raise PermanentError(
                f"Intempus: meta.next loops back to a page already read ({target.path_qs[:120]})"
            )
        return target

    async def get(self, case_id: int) -> dict[str, Any] | None:
        """One case, or None when Intempus answers 404 (the only proof of a delete)."""
        path = f"{CASES}{case_id}/"
        response = await self._request("GET", path)
        if response.status == 404:
            return None
        if response.status != 200:
            raise _unexpected(response, f"GET /{path}")
        return _object(response, f"GET /{path}")

    async def with_number(self, customer: int, number: str) -> list[dict[str, Any]]:
        """The cases of ``customer`` numbered ``number`` (a service with only the minimal
        filters refuses this with a ``PermanentError``)."""
        params = {
            "pagination_type": "cursor",
            "limit": "50",
            "customer": str(customer),
            "number": number,
        }
        rows: list[dict[str, Any]] = []
        async for page in self._pages(params):
            rows.extend(page.rows)
        return rows

    async def find_created(self, creation_id: str, after_lt: int | None) -> dict[str, Any] | None:
        """The case a create with ``creation_id`` made, if it committed: a POST whose answer was
        lost (timeout, ambiguous 500) is looked for here before any second POST.

        Intempus cannot be filtered on ``creation_id``, so this reads the cases changed after
        ``after_lt`` (the high-water mark recorded before the POST; None: every case) and
        matches. With late commits (contract: *Logical timestamps*) a create may commit below a
        header already served; a create sent again with the same ``creation_id`` is still
        answered with the existing case, so a miss here costs a request, not a duplicate.
        """
        async for page in self.changed_after(after_lt):
            for row in page.rows:
                if row.get("creation_id") == creation_id:
                    return row
        return None

    # -- writes ------------------------------------------------------------------------------

    async def create(self, fields: Mapping[str, Any], creation_id: str) -> dict[str, Any]:
        """POST a case with ``creation_id`` (Intempus answers a repeat with the existing case).

        The answer's ``logical_timestamp`` is a placeholder (42) while ``stale_write_lt`` holds;
        do not store it as the case's position.
        """
        body = {**fields, "creation_id": creation_id}
        response = await self._request("POST", CASES, json_body=body)
        if response.status in (200, 201):
            return _object(response, f"POST /{CASES}", write=True)
        raise _refused(response, "POST", f"/{CASES}", body)

    async def patch(self, case_id: int, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Change only ``fields``. Refuses an empty change: Intempus commits a no-op PATCH as a
        write (a new LT), which would come back to us as a change."""
        if not fields:
            raise ValueError(f"refusing an empty PATCH of Intempus case {case_id}")
        path = f"{CASES}{case_id}/"
        response = await self._request("PATCH", path, json_body=dict(fields))
        if response.status in (200, 202):
            return _object(response, f"PATCH /{path}", write=True)
        if response.status == 404 and not response.body.strip():
            raise CaseGone(case_id)
        raise _refused(response, "PATCH", f"/{path}", fields)

    async def delete(self, case_id: int) -> DeleteOutcome:
        path = f"{CASES}{case_id}/"
        response = await self._request("DELETE", path)
        if response.status in (200, 202, 204):
            return DeleteOutcome.DELETED
        if response.status == 404:
            return DeleteOutcome.GONE
        if response.status == 409:
            return DeleteOutcome.REFUSED
        raise _unexpected(response, f"DELETE /{path}")


# -- answers -----------------------------------------------------------------------------------


def _logical_timestamp(response: Response) -> int | None:
    raw = response.headers.get("Logical-Timestamp")
    if raw is None:
        return None
    try:
        return int(raw.strip())
    except ValueError:
        return None


def _parse_list(response: Response) -> CaseList:
    try:
        return CaseList.model_validate(response.json())
    except ValidationError as exc:
        # A 200 of the wrong shape is the service's fault, and worth asking again.
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise TransientError(
            f"Intempus GET /{CASES}: answer has the wrong shape ({where}: {first['msg']})",
            maybe_applied=False,
        ) from None


def _object(response: Response, what: str, *, write: bool = False) -> dict[str, Any]:
    """The case object of a 2xx answer. Any other shape is the service's fault: worth asking
    again, and after a write the write may well have committed."""
    data = response.json()
    if not isinstance(data, dict) or not isinstance(data.get("id"), int):
        raise TransientError(f"Intempus {what}: answer is not a case object", maybe_applied=write)
    return data


_FIELD_PATTERNS = (
    re.compile(r"The '(\w+)' field"),
    re.compile(r"to '(\w+)' field"),
    re.compile(r"for '(\w+)' field"),
)
_QUOTED = re.compile(r"'([^']*)'")
_RESOURCE = re.compile(r"for the '(\w+)Resource' resource")


def _error_body(response: Response) -> Any:
    try:
        return json.loads(response.body) if response.body.strip() else None
    except ValueError:
        return None


def refused_field(body: Any, sent: Mapping[str, Any]) -> tuple[str | None, str]:
    """The key a refusal names (None if it names none) and its text.

    Two shapes: form validation ``{"case": {key: [text]}}``, and tastypie's ``{"error": text}``,
    which quotes the key (``The 'name' field ...``) or, for a relation, only the URI that was
    sent (``... resource URI '/web/v1/customer/999/'``): that is matched against the keys of
    ``sent``, because the URI's resource does not say which key held it (``responsible`` and
    ``co_responsible`` both point at employees).
    """
    if isinstance(body, dict) and isinstance(body.get("case"), dict) and body["case"]:
        key, texts = next(iter(body["case"].items()))
        text = "; ".join(str(t) for t in texts) if isinstance(texts, list) else str(texts)
        return (None if key == "__all__" else str(key)), text
    if isinstance(body, dict) and "error" in body:
        text = str(body["error"])
        for pattern in _FIELD_PATTERNS:
            if match := pattern.search(text):
                return match.group(1), text
        resource = match.group(1).lower() if (match := _RESOURCE.search(text)) else None
        for quoted in _QUOTED.findall(text):
            holders = [k for k, v in sent.items() if isinstance(v, str) and v == quoted]
            if resource is not None and len(holders) > 1:
                # "... for the 'EmployeeResource' resource": the key that expects an employee.
                holders = [k for k in holders if RESOURCE_OF.get(k) == resource]
            if len(holders) == 1:
                return holders[0], text
        return resource, text
    return None, "" if body is None else str(body)[:200]


def _refused(response: Response, method: str, path: str, sent: Mapping[str, Any]) -> PermanentError:
    if response.status in (400, 404):
        field, text = refused_field(_error_body(response), sent)
        named = f"field {field!r}" if field else "no field named"
        return WriteRefused(
            f"Intempus refused {method} {path} ({response.status}, {named}): {text[:200]}",
            field,
        )
    return _unexpected(response, f"{method} {path}")


def _unexpected(response: Response, doing: str) -> PermanentError:
    _, text = refused_field(_error_body(response), {})
    return PermanentError(f"Intempus {doing}: unexpected {response.status} {text[:200]}".rstrip())


def _server_error(exc: TransientError) -> TransientError:
    """A 5xx in one readable line: an HTML page (a proxy's, Django's debug page) is named as
    such rather than quoted as markup."""
    message = str(exc)
    if "<" in message and "html" in message.lower():
        message = message.split(" (", 1)[0] + " (an HTML error page)"
    return TransientError(
        message, retry_after=exc.retry_after, maybe_applied=exc.maybe_applied, status=exc.status
    )
