"""What every benchmark prints and how it reduces samples: progress lines, timed stages, percentiles."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator


def say(line: str) -> None:
    print(line, flush=True)


@contextlib.contextmanager
def stage(title: str) -> Iterator[None]:
    """Announce a stage, and how long it took when it ends."""
    say(f"== {title}")
    start = time.perf_counter()
    yield
    say(f"   ({time.perf_counter() - start:.1f} s)")


def percentile(samples: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]
