"""The TracOS sync's settings, and the MongoDB they point to.

The shared settings (state file, poll interval, concurrency...) take the ``TRACOS_`` prefix
(``TRACOS_POLL_INTERVAL``), so they never mix with another sync's. The contract's own names
(``MONGO_URI``, ``DATA_INBOUND_DIR``...) keep their plain names: each field's
``validation_alias`` is its own name, which the prefix does not touch.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict
from pymongo.errors import InvalidURI
from pymongo.uri_parser import parse_uri

from ...connectors.tracos.availability import Availability
from ...connectors.tracos.client import Unanswered, WorkOrderStore, connect, target
from ...core.errors import IntegrationError
from ...core.retry import RetryPolicy
from ...core.sync import SyncSettings


class TracosSettings(SyncSettings):
    model_config = SettingsConfigDict(env_prefix="TRACOS_")

    state_db: Path = Field(
        Path("tracos-state.db"),
        description="the sync's state: inbox, dead letters (SQLite)",
    )
    mongo_uri: str = Field(
        "mongodb://localhost:27017",
        validation_alias="mongo_uri",
        description="where TracOS's MongoDB is; user:password@ in it are the credentials",
    )
    mongo_database: str = Field(
        "tractian",
        min_length=1,
        max_length=63,
        pattern=r"^[^/\\. \"$]+$",
        validation_alias="mongo_database",
        description="the database holding the work orders",
    )
    mongo_collection: str = Field(
        "workorders",
        min_length=1,
        pattern=r"^[^$\x00]+$",
        validation_alias="mongo_collection",
        description="the collection holding the work orders",
    )
    mongo_timeout: float = Field(
        5.0,
        gt=0,
        le=300,
        validation_alias="mongo_timeout",
        description="seconds to wait for MongoDB before one attempt fails",
    )
    mongo_max_tries: int = Field(
        8,
        ge=1,
        validation_alias="mongo_max_tries",
        description="attempts per MongoDB call before it counts as failed (the engine then "
        "retries the work order)",
    )
    data_inbound_dir: Path = Field(
        Path("data/inbound"),
        validation_alias="data_inbound_dir",
        description="the folder the ERP drops its files into (processed/ and rejected/ inside)",
    )
    data_outbound_dir: Path = Field(
        Path("data/outbound"),
        validation_alias="data_outbound_dir",
        description="the folder work orders are written to for the ERP",
    )
    max_file_bytes: int = Field(
        1_000_000,
        gt=0,
        validation_alias="max_file_bytes",
        description="an inbound file larger than this is rejected unread",
    )

    @field_validator("mongo_uri")
    @classmethod
    def _valid_uri(cls, value: str) -> str:
        if value.startswith("mongodb+srv://"):
            return value  # parsing would resolve DNS; the driver reports it at connect time
        try:
            parse_uri(value)
        except InvalidURI as exc:
            raise ValueError(str(exc)) from None
        except Exception as exc:  # ConfigurationError, ValueError: all one line for the user
            raise ValueError(str(exc).splitlines()[0]) from None
        return value

    def mongo_retry(self) -> RetryPolicy:
        """How one MongoDB call is retried before it counts as failed."""
        return RetryPolicy(base=0.5, max_delay=30.0, max_tries=self.mongo_max_tries)


@asynccontextmanager
async def work_orders(
    settings: TracosSettings, retry: RetryPolicy | None = None
) -> AsyncIterator[WorkOrderStore]:
    """The work orders in the MongoDB ``settings`` point to, through one client closed at the
    end. ``retry`` replaces ``mongo_retry()`` (tests use a fast one)."""
    client = connect(settings.mongo_uri, timeout=settings.mongo_timeout)
    try:
        collection = client[settings.mongo_database][settings.mongo_collection]
        yield WorkOrderStore(
            collection,
            retry=retry or settings.mongo_retry(),
            availability=Availability(target(settings.mongo_uri)),
        )
    finally:
        await client.close()


async def unanswered(store: WorkOrderStore) -> str | None:
    """None when MongoDB answers a ping (one attempt, within MONGO_TIMEOUT); else one line
    saying why not and naming MONGO_URI, for a person at a terminal."""
    try:
        await store.ping()
    except Unanswered as exc:
        return f"cannot reach {store.availability.where}: {exc.reason}"
    except IntegrationError as exc:
        said = str(exc).removeprefix("MongoDB ping: ")
        return f"{store.availability.where} answered with an error: {said}"
    return None
