"""Wording shared by messages, the CLI and the UI: byte sizes and articles."""

from __future__ import annotations


def human_bytes(n: float | None, *, si: bool = False) -> str:
    """``1536`` → ``"1.5 KiB"`` (or ``"1.5 KB"`` for 1500 with ``si``): one decimal above bytes."""
    step, units = (
        (1000.0, ("B", "KB", "MB", "GB", "TB")) if si else (1024.0, ("B", "KiB", "MiB", "GiB", "TiB"))
    )
    value = float(n or 0)
    for unit in units:
        if abs(value) < step or unit == units[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= step
    raise AssertionError("unreachable")


def article(word: str) -> str:
    """The indefinite article for ``word`` ("an image", "a video")."""
    return "an" if word[:1] in "aeiou" else "a"
