"""The contract's mapping table, row by row, both ways: pure translation, no I/O."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from integration.connectors.erp_files.models import ErpWorkOrder
from integration.connectors.tracos.models import Status, TracosWorkOrder
from integration.core.errors import InvalidInput
from integration.pipelines.tracos_erp.mapping import erp_is_newer, erp_to_tracos, tracos_to_erp

from .conftest import erp_order, tracos_doc

NO_FLAGS = {"isActive": False, "isCanceled": False, "isDone": False, "isOnHold": False}


def erp(**fields: Any) -> ErpWorkOrder:
    return ErpWorkOrder.model_validate_json(json.dumps(erp_order(7, **fields)))


def tracos(**fields: Any) -> TracosWorkOrder:
    return TracosWorkOrder.model_validate(tracos_doc(fields.pop("number", 7), **fields))


# -- ERP -> TracOS -------------------------------------------------------------------------


def test_order_no_becomes_number_and_summary_becomes_title() -> None:
    changes = erp_to_tracos(erp(orderNo=7, summary="Replace bearing"))
    assert (changes.number, changes.title) == (7, "Replace bearing")


def test_creation_and_update_dates_become_utc() -> None:
    changes = erp_to_tracos(
        erp(creationDate="2026-02-01T09:00:00+02:00", lastUpdateDate="2026-02-10T09:30:00-03:00")
    )
    assert changes.createdAt == datetime(2026, 2, 1, 7, 0, tzinfo=UTC)
    assert changes.updatedAt == datetime(2026, 2, 10, 12, 30, tzinfo=UTC)
    assert changes.updatedAt.utcoffset() == timedelta(0)


def test_a_date_without_offset_is_read_as_utc() -> None:
    assert erp_to_tracos(erp(lastUpdateDate="2026-02-10T09:30:00")).updatedAt == datetime(
        2026, 2, 10, 9, 30, tzinfo=UTC
    )


def test_dates_keep_milliseconds_only_as_mongodb_does() -> None:
    changes = erp_to_tracos(erp(lastUpdateDate="2026-02-10T09:30:00.123456Z"))
    assert changes.updatedAt.microsecond == 123000


@pytest.mark.parametrize(
    ("flags", "status"),
    [
        ({**NO_FLAGS, "isPending": True}, Status.PENDING),
        ({**NO_FLAGS, "isPending": False, "isActive": True}, Status.IN_PROGRESS),
        ({**NO_FLAGS, "isPending": False, "isDone": True}, Status.COMPLETED),
        ({**NO_FLAGS, "isPending": False, "isOnHold": True}, Status.ON_HOLD),
        ({**NO_FLAGS, "isPending": False, "isCanceled": True}, Status.CANCELLED),
    ],
    ids=["isPending", "isActive", "isDone", "isOnHold", "isCanceled"],
)
def test_each_status_flag_maps_to_its_status(flags: dict[str, bool], status: Status) -> None:
    changes = erp_to_tracos(erp(**flags))
    assert (changes.status, changes.deleted) == (status, False)


def test_no_status_flag_at_all_means_in_progress() -> None:
    assert erp_to_tracos(erp(**NO_FLAGS, isPending=False)).status is Status.IN_PROGRESS


def test_absent_is_active_and_no_other_flag_means_in_progress() -> None:
    order = erp_order(7, **NO_FLAGS, isPending=False)
    del order["isActive"], order["isSynced"]
    assert (
        erp_to_tracos(ErpWorkOrder.model_validate_json(json.dumps(order))).status
        is Status.IN_PROGRESS
    )


def test_is_deleted_means_cancelled_and_deleted_whatever_else_is_set() -> None:
    changes = erp_to_tracos(
        erp(isDeleted=True, isDone=True, isPending=False, deletedDate="2026-02-11T00:00:00Z")
    )
    assert changes.status is Status.CANCELLED
    assert changes.deleted is True
    assert changes.deletedAt == datetime(2026, 2, 11, tzinfo=UTC)


def test_deleted_date_null_leaves_deleted_at_empty() -> None:
    assert erp_to_tracos(erp(deletedDate=None)).deletedAt is None


def test_two_status_flags_at_once_are_refused() -> None:
    with pytest.raises(InvalidInput, match="conflicting status flags isPending, isDone"):
        erp_to_tracos(erp(isPending=True, isDone=True))


# -- TracOS -> ERP -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "flag"),
    [
        ("pending", "isPending"),
        ("in_progress", "isActive"),
        ("completed", "isDone"),
        ("on_hold", "isOnHold"),
        ("cancelled", "isCanceled"),
    ],
)
def test_each_status_sets_exactly_its_one_flag(status: str, flag: str) -> None:
    order = tracos_to_erp(tracos(status=status))
    flags = {name: getattr(order, name) for name in ("isActive", "isCanceled", "isDone")}
    flags |= {name: getattr(order, name) for name in ("isOnHold", "isPending")}
    assert [name for name, value in flags.items() if value] == [flag]
    assert all(value is False for name, value in flags.items() if name != flag)


def test_number_and_title_become_order_no_and_summary() -> None:
    order = tracos_to_erp(tracos(number=42, title="Inspect pump"))
    assert (order.orderNo, order.summary) == (42, "Inspect pump")


def test_deleted_and_deleted_at_are_mirrored() -> None:
    order = tracos_to_erp(
        tracos(status="cancelled", deleted=True, deletedAt=datetime(2026, 2, 21, tzinfo=UTC))
    )
    assert order.isDeleted is True
    assert order.model_dump(mode="json")["deletedDate"] == "2026-02-21T00:00:00.000Z"


def test_not_deleted_goes_out_with_null_deleted_date() -> None:
    dumped = tracos_to_erp(tracos()).model_dump(mode="json")
    assert (dumped["isDeleted"], dumped["deletedDate"]) == (False, None)


def test_outgoing_orders_say_they_are_synced() -> None:
    assert tracos_to_erp(tracos()).isSynced is True


def test_outgoing_dates_are_utc_iso_8601() -> None:
    dumped = tracos_to_erp(tracos()).model_dump(mode="json")
    assert dumped["creationDate"] == "2026-01-05T08:00:00.000Z"
    assert dumped["lastUpdateDate"] == "2026-02-20T16:45:30.250Z"


def test_naive_mongo_dates_are_read_as_utc() -> None:
    order = tracos_to_erp(tracos(updatedAt=datetime(2026, 2, 20, 16, 45)))
    assert order.lastUpdateDate == datetime(2026, 2, 20, 16, 45, tzinfo=UTC)


def test_iso_string_mongo_dates_are_normalised_to_utc() -> None:
    order = tracos_to_erp(tracos(createdAt="2026-01-05T10:00:00+02:00"))
    assert order.creationDate == datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def test_absent_description_and_is_synced_are_accepted() -> None:
    doc = tracos_doc(7)
    del doc["description"]
    assert tracos_to_erp(TracosWorkOrder.model_validate(doc)).orderNo == 7


# -- both ways -----------------------------------------------------------------------------


def test_a_tie_on_update_time_keeps_tracos() -> None:
    when = datetime(2026, 2, 1, tzinfo=UTC)
    assert not erp_is_newer(when, when)
    assert erp_is_newer(when + timedelta(milliseconds=1), when)


moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))


@given(
    status=st.sampled_from(list(Status)),
    deleted=st.booleans(),
    created=moments,
    updated=moments,
    offset=st.integers(-12 * 60, 14 * 60),
    title=st.text(max_size=40),
)
def test_a_work_order_survives_the_round_trip(
    status: Status, deleted: bool, created: datetime, updated: datetime, offset: int, title: str
) -> None:
    """TracOS -> ERP file (as JSON, in any offset) -> TracOS gives the same fields back."""
    if deleted:
        status = Status.CANCELLED  # what a deletion means in TracOS terms
    zone = timezone(timedelta(minutes=offset))
    doc = TracosWorkOrder.model_validate(
        tracos_doc(
            9,
            status=status.value,
            title=title,
            createdAt=created.astimezone(zone).isoformat(),
            updatedAt=updated,
            deleted=deleted,
            deletedAt=updated if deleted else None,
        )
    )
    back = erp_to_tracos(ErpWorkOrder.model_validate_json(tracos_to_erp(doc).model_dump_json()))
    assert (back.number, back.status, back.title, back.deleted) == (
        9,
        status,
        title,
        deleted,
    )
    assert (back.createdAt, back.updatedAt, back.deletedAt) == (
        created,
        updated,
        updated if deleted else None,
    )
