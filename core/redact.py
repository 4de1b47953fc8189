"""Redaction of secrets in text bound for logs and error messages."""

from __future__ import annotations

import re

# scheme://user:password@host -> scheme://user:***@host
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@")
# Query strings of URLs carry signatures and tokens (signed CDN URLs): keep only the path.
_QUERY = re.compile(r"(?P<url>https?://[^\s?#\"']+)\?[^\s#\"']*")
# Header-ish secrets: "Authorization: Bearer xyz", "API-KEY: xyz", "api_key=xyz".
_SECRET_FIELD = re.compile(
    r"(?i)(?P<name>authorization|api[-_]?key|token|secret|password)(?P<sep>\s*[:=]\s*)(?P<value>(?:bearer\s+)?[^\s,;&\"']+)"
)


def redact_text(text: str) -> str:
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    text = _QUERY.sub(lambda m: f"{m['url']}?<redacted>", text)
    return _SECRET_FIELD.sub(lambda m: f"{m['name']}{m['sep']}***", text)
