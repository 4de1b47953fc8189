"""User settings: a JSON file in the config directory, overridden by ``PIXSIM_*`` environment variables.

Loading never creates files or directories: a wrong setting must leave nothing behind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import platformdirs

from core.errors import ConfigError

APP_NAME = "PixSim"
SETTINGS_FILE = "settings.json"
DEFAULT_CACHE_MAX_BYTES = 20 * 1024**3


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    config_dir: Path
    # None: the embedded database under data_dir. Otherwise a postgresql:// URL.
    database_url: str | None = None
    cache_dir: Path | None = None
    cache_max_bytes: int = DEFAULT_CACHE_MAX_BYTES
    provider_concurrency: int = 4
    show_age_restricted: bool = False
    # Where each value came from ("default", "file", "env"), for `pixsim info` and the settings dialog.
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def settings_file(self) -> Path:
        return self.config_dir / SETTINGS_FILE

    @property
    def effective_cache_dir(self) -> Path:
        return self.cache_dir or self.data_dir / "cache"

    @property
    def uses_embedded_database(self) -> bool:
        return self.database_url is None


# Settings a user may write in settings.json, with the environment variable that overrides each.
_FILE_KEYS: dict[str, str] = {
    "database_url": "PIXSIM_DATABASE_URL",
    "cache_dir": "PIXSIM_CACHE_DIR",
    "cache_max_bytes": "PIXSIM_CACHE_MAX_BYTES",
    "provider_concurrency": "PIXSIM_PROVIDER_CONCURRENCY",
    "show_age_restricted": "PIXSIM_SHOW_AGE_RESTRICTED",
}


_EXPECTED = {
    "database_url": "a postgresql:// URL",
    "cache_dir": "a folder path",
    "cache_max_bytes": "a positive whole number of bytes",
    "provider_concurrency": "a positive whole number",
    "show_age_restricted": "true or false",
}
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def _coerce(key: str, value: Any, origin: str) -> Any:
    """Turn a raw file or environment value into the field's type, or explain what is wrong."""
    try:
        if key == "database_url":
            if not isinstance(value, str | None):
                raise TypeError
            return value.strip() or None if value else None
        if key == "cache_dir":
            return Path(str(value)).expanduser() if value else None
        if key in ("cache_max_bytes", "provider_concurrency"):
            if isinstance(value, bool) or int(value) <= 0:
                raise ValueError
            return int(value)
        if key == "show_age_restricted":
            text = str(value).strip().lower()
            if text not in _TRUE + _FALSE:
                raise ValueError
            return text in _TRUE
    except (TypeError, ValueError):
        raise ConfigError(
            f"The setting '{key}' in {origin} is {value!r}; expected {_EXPECTED[key]}."
        ) from None
    raise AssertionError(key)


def _dir_from_env(env: Mapping[str, str], name: str, default: str) -> Path:
    value = env.get(name, "").strip()
    return Path(value).expanduser().resolve() if value else Path(default)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    data_dir = _dir_from_env(env, "PIXSIM_DATA_DIR", platformdirs.user_data_dir(APP_NAME, appauthor=False))
    config_dir = _dir_from_env(
        env, "PIXSIM_CONFIG_DIR", platformdirs.user_config_dir(APP_NAME, appauthor=False)
    )
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    settings_file = config_dir / SETTINGS_FILE
    if settings_file.exists():
        try:
            raw = json.loads(settings_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"The settings file {settings_file} is not valid JSON (line {exc.lineno}, column "
                f"{exc.colno}: {exc.msg}). Fix or delete it."
            ) from None
        except OSError as exc:
            raise ConfigError(f"Cannot read the settings file {settings_file}: {exc.strerror}.") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"The settings file {settings_file} must hold a JSON object.")
        unknown = sorted(set(raw) - set(_FILE_KEYS))
        if unknown:
            raise ConfigError(
                f"The settings file {settings_file} has unknown settings {unknown}; known settings are "
                f"{sorted(_FILE_KEYS)}."
            )
        for key, value in raw.items():
            values[key] = _coerce(key, value, str(settings_file))
            sources[key] = "file"
    for key, var in _FILE_KEYS.items():
        if var in env:
            values[key] = _coerce(key, env[var], f"the environment variable {var}")
            sources[key] = "env"
    return Settings(data_dir=data_dir, config_dir=config_dir, sources=sources, **values)


def save_settings(settings: Settings) -> Path:
    """Write the file-backed settings atomically (values from the environment are not persisted)."""
    defaults = Settings(data_dir=settings.data_dir, config_dir=settings.config_dir)
    payload: dict[str, Any] = {}
    for f in fields(Settings):
        if f.name not in _FILE_KEYS:
            continue
        value = getattr(settings, f.name)
        if settings.sources.get(f.name) == "env" or value == getattr(defaults, f.name):
            continue
        payload[f.name] = str(value) if isinstance(value, Path) else value
    settings.config_dir.mkdir(parents=True, exist_ok=True)
    tmp = settings.settings_file.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(settings.settings_file)
    return settings.settings_file


def with_database_url(settings: Settings, url: str | None) -> Settings:
    sources = dict(settings.sources)
    sources["database_url"] = "file"
    return replace(settings, database_url=url, sources=sources)


def describe(settings: Settings) -> dict[str, Any]:
    """Settings as plain data for display; the database URL is redacted."""
    from core.db.urls import redact

    data = asdict(settings)
    data["sources"] = dict(settings.sources)
    if settings.database_url:
        data["database_url"] = redact(settings.database_url)
    return {k: str(v) if isinstance(v, Path) else v for k, v in data.items()}
