"""Holds PixSim's start-up lock on a data directory until stdin closes (simulates a stuck start-up)."""

from __future__ import annotations

import sys
from pathlib import Path

import fasteners

lock = fasteners.InterProcessLock(str(Path(sys.argv[1]) / ".pixsim-startup.lock"))
lock.acquire()
print("LOCKED", flush=True)
sys.stdin.read()
lock.release()
