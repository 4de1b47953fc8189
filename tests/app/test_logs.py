"""Log records pass through the redacting filter before any handler writes them."""

from __future__ import annotations

import logging
import sys

from app.logs import RedactingFilter


def test_log_records_are_redacted_including_arguments_and_tracebacks() -> None:
    record = logging.LogRecord(
        "t", logging.ERROR, __file__, 1, "upload to %s failed", ("https://x.test/u?sig=SECRET1",), None
    )
    try:
        raise RuntimeError("Authorization: Bearer SECRET2")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    RedactingFilter().filter(record)
    formatted = logging.Formatter().format(record)
    assert "SECRET1" not in formatted and "SECRET2" not in formatted
    assert "upload to https://x.test/u?<redacted> failed" in formatted
