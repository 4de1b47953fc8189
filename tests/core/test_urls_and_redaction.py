"""Database URLs are normalized for psycopg 3, and secrets never survive into logs or messages."""

from __future__ import annotations

import pytest

from core.db.urls import describe_location, normalize_url, redact
from core.errors import DatabaseUrlError
from core.redact import redact_text


@pytest.mark.parametrize(
    "raw",
    ["postgresql://u:p@h:5433/lib", "postgres://u:p@h:5433/lib", "postgresql+psycopg://u:p@h:5433/lib"],
)
def test_postgres_urls_are_normalized_to_psycopg(raw: str) -> None:
    url = normalize_url(raw)
    assert url.drivername == "postgresql+psycopg"
    assert (url.host, url.port, url.database, url.username) == ("h", 5433, "lib", "u")
    assert describe_location(url) == "h:5433"


def test_unix_socket_urls_describe_their_directory() -> None:
    url = normalize_url("postgresql://postgres@/pixsim?host=/tmp/sock")
    assert describe_location(url) == "Unix socket in /tmp/sock"


def test_redact_hides_the_password_only() -> None:
    assert redact("postgresql://alice:hunter2@db:5432/lib") == "postgresql://alice:***@db:5432/lib"


def test_errors_about_a_url_never_show_its_password() -> None:
    with pytest.raises(DatabaseUrlError) as info:
        normalize_url("postgresql://alice:hunter2@db:5432")
    assert "hunter2" not in str(info.value)
    assert "alice:***@db" in str(info.value)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("GET https://cdn.example.com/v/1.mp4?X-Amz-Signature=abc123&Expires=9 failed", "abc123"),
        ("connecting to postgresql://bob:pa55word@db/lib", "pa55word"),
        ("headers: Authorization: Bearer sk-live-123", "sk-live-123"),
        ("API-KEY: pv_key_999", "pv_key_999"),
        ("token=eyJhbGciOi", "eyJhbGciOi"),
    ],
)
def test_redact_text_masks_tokens_passwords_and_signed_urls(text: str, secret: str) -> None:
    assert secret not in redact_text(text)
