"""Fixtures for the TracOS sync: a real MongoDB wire-protocol server (SecantusDB, started once
for the session on a free port with a temporary storage folder, or the server at ``MONGO_URI``
when that is set), a fresh database per test, folders in ``tmp_path`` and a frozen clock."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient, MongoClient
from pymongo.asynchronous.collection import AsyncCollection

from integration.connectors.erp_files.files import Inbox, Outbox
from integration.connectors.tracos.client import Doc, WorkOrderStore, connect
from integration.core.retry import RetryPolicy
from integration.pipelines.tracos_erp.sync import TracosSync
from tests.clocks import ManualClock

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FAST_RETRY = RetryPolicy(base=0.05, max_delay=0.5, max_tries=60)
ROOT = Path(__file__).resolve().parents[2]


class FrozenClock(ManualClock):
    """The shared test clock, set to NOW unless told otherwise."""

    def __init__(self, now: datetime = NOW) -> None:
        super().__init__(now.timestamp())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ping(uri: str, timeout: float = 0.2) -> bool:
    client: MongoClient[Doc] = MongoClient(uri, serverSelectionTimeoutMS=int(timeout * 1000))
    try:
        client.admin.command("ping")
        return True
    except Exception:
        return False
    finally:
        client.close()


@dataclass
class MongoServer:
    """A SecantusDB server this test session owns: stopped and started again on the same port
    and storage folder, it comes back with its data, as a restarted MongoDB would."""

    port: int
    storage: Path
    log: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        command = [
            shutil.which("secantusd-py") or str(Path(sys.executable).parent / "secantusd-py"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--storage-path",
            str(self.storage),
            "--log-level",
            "WARNING",
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not ping(self.uri):
            if self.process.poll() is not None:
                raise RuntimeError(f"secantusd-py exited: {self.log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("secantusd-py did not answer a ping in time")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


def start_server(folder: Path) -> MongoServer:
    folder.mkdir(parents=True, exist_ok=True)
    server = MongoServer(free_port(), folder / "storage", folder / "secantusd.log")
    server.start()
    return server


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("MONGO_URI")
    if external:
        yield external
        return
    server = start_server(tmp_path_factory.mktemp("secantus"))
    try:
        yield server.uri
    finally:
        server.stop()


@pytest.fixture
def db_name() -> str:
    return f"tracos_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def client(mongo_uri: str, db_name: str) -> AsyncIterator[AsyncMongoClient[Doc]]:
    client = connect(mongo_uri, timeout=2.0)
    try:
        yield client
    finally:
        await client.drop_database(db_name)
        await client.close()


@pytest.fixture
def collection(client: AsyncMongoClient[Doc], db_name: str) -> AsyncCollection[Doc]:
    return client[db_name]["workorders"]


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def inbound_dir(tmp_path: Path) -> Path:
    return tmp_path / "inbound"


@pytest.fixture
def outbound_dir(tmp_path: Path) -> Path:
    return tmp_path / "outbound"


@pytest.fixture
def sync(
    collection: AsyncCollection[Doc], inbound_dir: Path, outbound_dir: Path, clock: FrozenClock
) -> TracosSync:
    inbox = Inbox(inbound_dir, max_bytes=10_000, clock=clock)
    inbox.prepare()
    return TracosSync(
        store=WorkOrderStore(collection, retry=FAST_RETRY),
        inbox=inbox,
        outbox=Outbox(outbound_dir),
        clock=clock,
    )


def erp_order(number: int, **fields: Any) -> dict[str, Any]:
    """A valid ERP file's content: a pending order, with ``fields`` on top."""
    order: dict[str, Any] = {
        "orderNo": number,
        "isActive": False,
        "isCanceled": False,
        "isDeleted": False,
        "isDone": False,
        "isOnHold": False,
        "isPending": True,
        "isSynced": False,
        "summary": f"Order {number}",
        "creationDate": "2026-02-01T09:00:00+02:00",
        "lastUpdateDate": "2026-02-10T09:30:00-03:00",
        "deletedDate": None,
    }
    return order | fields


def tracos_doc(number: int, **fields: Any) -> Doc:
    """A TracOS document as stored: an in-progress order, with ``fields`` on top."""
    doc: Doc = {
        "number": number,
        "status": "in_progress",
        "title": f"Work order {number}",
        "description": f"Description of {number}",
        "createdAt": datetime(2026, 1, 5, 8, 0, tzinfo=UTC),
        "updatedAt": datetime(2026, 2, 20, 16, 45, 30, 250000, tzinfo=UTC),
        "deleted": False,
    }
    return doc | fields
