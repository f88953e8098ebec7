"""The contract's mapping table, both ways, with no I/O: ERP files ⇄ TracOS documents.

| ERP                                   | TracOS                                  |
|---------------------------------------|-----------------------------------------|
| orderNo, summary                      | number, title                           |
| creationDate / lastUpdateDate         | createdAt / updatedAt (UTC)             |
| isDeleted, deletedDate                | deleted, deletedAt                      |
| isPending / isDone / isOnHold         | pending / completed / on_hold           |
| isActive, or no status flag at all    | in_progress                             |
| isCanceled (one l)                    | cancelled (two)                         |
| isDeleted, whatever else is set       | cancelled and deleted                   |
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Final

from ...connectors.erp_files.models import ErpWorkOrder
from ...connectors.tracos.models import Status, TracosChanges, TracosWorkOrder
from ...core.errors import InvalidInput

STATUS_FLAGS: Final[Mapping[str, Status]] = MappingProxyType(
    {
        "isPending": Status.PENDING,
        "isActive": Status.IN_PROGRESS,
        "isDone": Status.COMPLETED,
        "isOnHold": Status.ON_HOLD,
        "isCanceled": Status.CANCELLED,
    }
)
"""ERP status flag -> TracOS status. ``isDeleted`` is not among them: it is a status of its own
coming in (cancelled and deleted) and a mirror of ``deleted`` going out."""


def status_from_flags(order: ErpWorkOrder) -> Status:
    """The one status an ERP file's flags say.

    Two status flags at once (done and pending, say) is refused rather than resolved by a
    precedence we would have to invent: the file is set aside with the reason, for a person to
    decide, instead of syncing a guess back to the ERP as if it were the truth.
    """
    if order.isDeleted:
        return Status.CANCELLED
    raised = [flag for flag in STATUS_FLAGS if getattr(order, flag) is True]
    if not raised:
        return Status.IN_PROGRESS
    if len(raised) > 1:
        raise InvalidInput(f"order {order.orderNo}: conflicting status flags {', '.join(raised)}")
    return STATUS_FLAGS[raised[0]]


def flags_from_status(status: Status) -> dict[str, bool]:
    """Exactly one status flag true: the one for ``status``."""
    return {flag: meant is status for flag, meant in STATUS_FLAGS.items()}


def erp_to_tracos(order: ErpWorkOrder) -> TracosChanges:
    return TracosChanges(
        number=order.orderNo,
        status=status_from_flags(order),
        title=order.summary,
        createdAt=order.creationDate,
        updatedAt=order.lastUpdateDate,
        deleted=order.isDeleted,
        deletedAt=order.deletedDate,
    )


def tracos_to_erp(doc: TracosWorkOrder) -> ErpWorkOrder:
    flags = flags_from_status(doc.status)
    return ErpWorkOrder(
        orderNo=doc.number,
        isActive=flags["isActive"],
        isCanceled=flags["isCanceled"],
        isDeleted=doc.deleted,
        isDone=flags["isDone"],
        isOnHold=flags["isOnHold"],
        isPending=flags["isPending"],
        isSynced=True,
        summary=doc.title,
        creationDate=doc.createdAt,
        lastUpdateDate=doc.updatedAt,
        deletedDate=doc.deletedAt,
    )


def erp_is_newer(erp_updated: datetime, tracos_updated: datetime) -> bool:
    """Whether an ERP change may overwrite TracOS: only a strictly newer one. On a tie TracOS
    keeps its version, which is also what stops a file we sent, echoed back, from being
    applied again and sent out once more, forever."""
    return erp_updated > tracos_updated
