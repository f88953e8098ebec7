"""Which partition an inbox entry belongs to.

Computed by the client (the poller publishing, a recovery storing directly), never by a server:
NATS 2.9 ignores subject transforms and PostgreSQL's ``hashtext`` is not promised to stay the
same across versions, while a key must land in the same partition for as long as the state
lives. The keyspace is the flow's ``order`` (or its source's name), so the keys of two flows
that share an order (a two-way sync's two directions of one record) share a partition, and so
an owner.
"""

from __future__ import annotations

import hashlib

MAX_PARTITIONS = 4096


def partition_of(keyspace: str, key: str, partitions: int) -> int:
    """The partition, in ``range(partitions)``, of ``key`` in ``keyspace``."""
    digest = hashlib.blake2b(f"{keyspace}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions
