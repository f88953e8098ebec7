"""Fixtures for the TracOS sync: a real MongoDB wire-protocol server (SecantusDB, started once
for the session on a free port with a temporary storage folder, or the server at ``MONGO_URI``
when that is set), a fresh database per test, folders in ``tmp_path``, a frozen clock, and the
engine in drain mode (``drain``): every source read once, everything applicable applied."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient, MongoClient
from pymongo.asynchronous.collection import AsyncCollection

from integration.connectors.erp_files.files import Inbox, Outbox
from integration.connectors.tracos.client import Doc, WorkOrderStore, connect
from integration.core.clock import Clock
from integration.core.engine import Engine
from integration.core.flow import Flow
from integration.core.retry import RetryPolicy
from integration.core.shell import open_engine
from integration.core.stats import Stats
from integration.core.store import SQLiteStore
from integration.pipelines.tracos_erp import SYNC, TracosSettings, tracos_flows
from tests.helpers.clocks import ManualClock

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
    options: tuple[str, ...] = ()
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
            *self.options,
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


def start_server(folder: Path, *options: str) -> MongoServer:
    folder.mkdir(parents=True, exist_ok=True)
    server = MongoServer(free_port(), folder / "storage", folder / "secantusd.log", options)
    server.start()
    return server


own_server = pytest.mark.skipif(
    bool(os.environ.get("MONGO_URI")), reason="starts a server of its own"
)


@pytest.fixture(scope="session")
def failing_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server of this session's own whose commands can be made to fail (``fail_commands``):
    MongoDB answering pings but refusing work is a case a healthy server cannot produce."""
    server = start_server(tmp_path_factory.mktemp("failing"), "--enable-test-commands")
    try:
        yield server.uri
    finally:
        server.stop()


@contextmanager
def fail_commands(uri: str, *commands: str, code: int = 6) -> Iterator[None]:
    """Every ``commands`` on the server at ``uri`` fails with ``code`` (6: host unreachable, a
    transient error) until the block ends."""
    client: MongoClient[Doc] = MongoClient(uri, serverSelectionTimeoutMS=5000)
    try:
        data = {"failCommands": list(commands), "errorCode": code}
        client.admin.command("configureFailPoint", "failCommand", mode="alwaysOn", data=data)
        yield
    finally:
        client.admin.command("configureFailPoint", "failCommand", mode="off")
        client.close()


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
def state_db(tmp_path: Path) -> Path:
    return tmp_path / "tracos-state.db"


@pytest.fixture
def settings(
    mongo_uri: str, db_name: str, inbound_dir: Path, outbound_dir: Path, state_db: Path
) -> TracosSettings:
    return TracosSettings(
        mongo_uri=mongo_uri,
        mongo_database=db_name,
        mongo_timeout=2.0,
        data_inbound_dir=inbound_dir,
        data_outbound_dir=outbound_dir,
        state_db=state_db,
        max_file_bytes=10_000,
        shutdown_grace=0.5,  # a drain cut short (a crash) ends at once
    )


@pytest.fixture
def store(collection: AsyncCollection[Doc]) -> WorkOrderStore:
    return WorkOrderStore(collection, retry=FAST_RETRY)


@pytest.fixture
def inbox(inbound_dir: Path, clock: FrozenClock) -> Inbox:
    inbox = Inbox(inbound_dir, max_bytes=10_000, clock=clock)
    inbox.prepare()
    return inbox


@pytest.fixture
def outbox(outbound_dir: Path) -> Outbox:
    outbox = Outbox(outbound_dir)
    outbox.prepare()  # as the sync's assembly does
    return outbox


async def drain(
    flows: Sequence[Flow], settings: TracosSettings, clock: Clock, stats: Stats | None = None
) -> Engine:
    """One drain of ``flows`` on the state file ``settings`` name: the engine once it stopped,
    its ``stats`` and ``drain_problems`` saying what happened."""
    state = SQLiteStore(settings.state_db, clock=clock)
    await state.open()
    try:
        engine = Engine(
            flows, state, clock, settings.engine_settings(FAST_RETRY), stats, name=SYNC.name
        )
        async with asyncio.timeout(60):
            await engine.run(asyncio.Event(), once=True)
        return engine
    finally:
        await state.close()


async def drain_sync(settings: TracosSettings, clock: Clock) -> Engine:
    """One drain of the sync as the shell runs it: its engine opened from ``settings``."""
    async with open_engine(SYNC, settings, clock=clock, retry=FAST_RETRY) as engine:
        async with asyncio.timeout(60):
            await engine.run(asyncio.Event(), once=True)
    return engine


@dataclass
class Drains:
    """Drains of the sync's flows built from the test's parts: the fixtures', or stand-ins
    given by name (``store=``, ``inbox=``, ``outbox=``) that fail on cue."""

    settings: TracosSettings
    clock: Clock
    store: WorkOrderStore
    inbox: Inbox
    outbox: Outbox

    def flows(
        self,
        store: WorkOrderStore | None = None,
        inbox: Inbox | None = None,
        outbox: Outbox | None = None,
    ) -> list[Flow]:
        return tracos_flows(
            store or self.store, inbox or self.inbox, outbox or self.outbox, self.clock
        )

    async def run(self, **parts: Any) -> Engine:
        """Both flows, as the sync runs."""
        return await drain(self.flows(**parts), self.settings, self.clock)

    async def inbound(self, **parts: Any) -> Engine:
        """The inbound folder's flow alone (what the outbound one would do to the documents
        is left out of the test)."""
        return await drain(self.flows(**parts)[:1], self.settings, self.clock)

    async def outbound(self, **parts: Any) -> Engine:
        """The outbound flow alone."""
        return await drain(self.flows(**parts)[1:], self.settings, self.clock)

    async def state(self) -> SQLiteStore:
        """The state file, opened (the caller closes it)."""
        state = SQLiteStore(self.settings.state_db, clock=self.clock)
        await state.open()
        return state


@pytest.fixture
def drains(
    settings: TracosSettings,
    clock: FrozenClock,
    store: WorkOrderStore,
    inbox: Inbox,
    outbox: Outbox,
) -> Drains:
    return Drains(settings, clock, store, inbox, outbox)


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
