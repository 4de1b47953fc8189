"""Settings come from a JSON file, environment variables override it, and bad values are explained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.settings import load_settings, save_settings, with_database_url
from core.errors import ConfigError


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"PIXSIM_DATA_DIR": str(tmp_path / "data"), "PIXSIM_CONFIG_DIR": str(tmp_path / "cfg"), **extra}


def test_defaults_use_the_embedded_database_and_create_nothing(tmp_path: Path) -> None:
    settings = load_settings(_env(tmp_path))
    assert settings.uses_embedded_database
    assert settings.effective_cache_dir == tmp_path / "data" / "cache"
    assert not (tmp_path / "data").exists() and not (tmp_path / "cfg").exists()


def test_file_values_are_read_and_environment_overrides_them(tmp_path: Path) -> None:
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "settings.json").write_text(
        json.dumps({"database_url": "postgresql://team@db.local/lib", "cache_max_bytes": 1000})
    )
    from_file = load_settings(_env(tmp_path))
    assert from_file.database_url == "postgresql://team@db.local/lib"
    assert from_file.cache_max_bytes == 1000
    assert from_file.sources == {"database_url": "file", "cache_max_bytes": "file"}

    overridden = load_settings(
        _env(tmp_path, PIXSIM_DATABASE_URL="postgresql://me@other/lib", PIXSIM_SHOW_AGE_RESTRICTED="yes")
    )
    assert overridden.database_url == "postgresql://me@other/lib"
    assert overridden.show_age_restricted is True
    assert overridden.sources["database_url"] == "env"


def test_an_empty_url_in_the_environment_means_embedded(tmp_path: Path) -> None:
    assert load_settings(_env(tmp_path, PIXSIM_DATABASE_URL="  ")).uses_embedded_database


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2]", "must hold a JSON object"),
        ('{"databse_url": "x"}', "unknown settings ['databse_url']"),
        ('{"cache_max_bytes": -5}', "expected a positive whole number of bytes"),
        ('{"provider_concurrency": "many"}', "expected a positive whole number"),
        ('{"show_age_restricted": "perhaps"}', "expected true or false"),
        ('{"database_url": 42}', "expected a postgresql:// URL"),
    ],
)
def test_bad_settings_files_are_explained(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "settings.json").write_text(content)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_settings(_env(tmp_path))


def test_a_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="environment variable PIXSIM_CACHE_MAX_BYTES"):
        load_settings(_env(tmp_path, PIXSIM_CACHE_MAX_BYTES="lots"))


def test_save_round_trips_file_settings_but_never_persists_environment_values(tmp_path: Path) -> None:
    settings = load_settings(_env(tmp_path, PIXSIM_CACHE_MAX_BYTES="12345"))
    saved = save_settings(with_database_url(settings, "postgresql://team@db.local/lib"))
    assert json.loads(saved.read_text()) == {"database_url": "postgresql://team@db.local/lib"}
    reloaded = load_settings(_env(tmp_path))
    assert reloaded.database_url == "postgresql://team@db.local/lib"
    assert reloaded.cache_max_bytes != 12345
