"""TracOS's settings: the contract's names stay as they are (MONGO_URI, DATA_INBOUND_DIR...), the
settings every sync has take the TRACOS_ prefix, so another sync's POLL_INTERVAL never changes
TracOS's, and every setting says what it does (it is the flag's help)."""

from __future__ import annotations

from pathlib import Path

import pytest

from integration.pipelines.tracos_erp import SYNC, TracosSettings

CONTRACT = {
    "mongo_uri": "MONGO_URI",
    "mongo_database": "MONGO_DATABASE",
    "mongo_collection": "MONGO_COLLECTION",
    "mongo_timeout": "MONGO_TIMEOUT",
    "mongo_max_tries": "MONGO_MAX_TRIES",
    "data_inbound_dir": "DATA_INBOUND_DIR",
    "data_outbound_dir": "DATA_OUTBOUND_DIR",
    "max_file_bytes": "MAX_FILE_BYTES",
}


@pytest.fixture(autouse=True)
def away_from_env_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # away from the repository's .env


def test_the_contracts_names_are_plain_and_the_shared_ones_prefixed() -> None:
    names = {field: TracosSettings.env_name(field) for field in TracosSettings.model_fields}
    for field, name in names.items():
        expected = CONTRACT.get(field, f"TRACOS_{field.upper()}")
        if field in ("log_level", "log_format"):
            expected = field.upper()  # the same for every sync
        assert name == expected, field


def test_settings_are_read_from_their_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGO_DATABASE", "plant7")
    monkeypatch.setenv("DATA_INBOUND_DIR", "/srv/erp/in")
    monkeypatch.setenv("TRACOS_POLL_INTERVAL", "2m")
    monkeypatch.setenv("TRACOS_STATE_DB", "/var/lib/tracos.db")
    monkeypatch.setenv("POLL_INTERVAL", "1")  # another sync's
    settings = TracosSettings()
    assert (settings.mongo_database, settings.data_inbound_dir) == ("plant7", Path("/srv/erp/in"))
    assert (settings.poll_interval, settings.state_db) == (120.0, Path("/var/lib/tracos.db"))


def test_the_state_file_is_tracos_own_by_default() -> None:
    assert TracosSettings().state_db == Path("tracos-state.db")


def test_every_setting_says_what_it_does() -> None:
    assert [
        name for name, field in TracosSettings.model_fields.items() if not field.description
    ] == []


def test_the_sync_names_both_its_sources() -> None:
    assert (SYNC.name, list(SYNC.sources)) == ("tracos", ["tracos-inbound", "tracos-outbound"])
