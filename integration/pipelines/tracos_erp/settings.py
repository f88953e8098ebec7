"""The TracOS sync's settings: the contract's environment variables (and ``.env``), checked at
start-up so a bad value stops the command at once with one clear line."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pymongo.errors import InvalidURI
from pymongo.uri_parser import parse_uri

from ...config import log_setting_case


class TracosSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    mongo_uri: str = "mongodb://localhost:27017"
    mongo_database: str = Field("tractian", min_length=1, max_length=63, pattern=r"^[^/\\. \"$]+$")
    mongo_collection: str = Field("workorders", min_length=1, pattern=r"^[^$\x00]+$")
    mongo_timeout: float = Field(
        5.0, gt=0, le=300, description="seconds to wait for MongoDB before one attempt fails"
    )
    mongo_max_tries: int = Field(
        8, ge=1, description="attempts per MongoDB call before a pass gives up until the next"
    )
    data_inbound_dir: Path = Path("data/inbound")
    data_outbound_dir: Path = Path("data/outbound")
    poll_interval: float = Field(10.0, gt=0, description="seconds between passes")
    max_file_bytes: int = Field(
        1_000_000, gt=0, description="an inbound file larger than this is rejected unread"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"

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

    _log_case = field_validator("log_level", "log_format", mode="before")(log_setting_case)
