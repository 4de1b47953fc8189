"""Start-up to a shown main window: PixSim cold (cluster creation included) and warm, next to a bare
PySide6 window as the baseline, each in a fresh process, median of N.

    python bench/startup.py [--runs 5] [--platform offscreen|xcb]

Time is wall-clock from spawning the process to the moment it reports its window shown (it then
quits); the last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

BASELINE = """
import sys, time
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMainWindow
app = QApplication(sys.argv)
window = QMainWindow()
window.resize(1200, 780)
window.show()
QTimer.singleShot(0, lambda: (print("PIXSIM_SHOWN", flush=True), app.quit()))
app.exec()
"""


def time_to_shown(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("PIXSIM_SHOWN"):
            elapsed = time.perf_counter() - start
            break
    else:
        raise RuntimeError(f"{cmd} never showed its window: {proc.stderr.read() if proc.stderr else ''}")
    proc.wait(60)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--platform", default=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    args = parser.parse_args()

    env = {k: v for k, v in os.environ.items() if not k.startswith("PIXSIM_")}
    env["QT_QPA_PLATFORM"] = args.platform
    env["PIXSIM_NO_ERROR_DIALOG"] = "1"
    app_cmd = [sys.executable, "-m", "app", "run", "--quit-after-shown"]
    results: dict[str, list[float]] = {"baseline_qt_window": [], "pixsim_cold": [], "pixsim_warm": []}

    with tempfile.TemporaryDirectory(prefix="pixsim-bench-") as tmp:
        warm_env = env | {"PIXSIM_DATA_DIR": f"{tmp}/warm/data", "PIXSIM_CONFIG_DIR": f"{tmp}/warm/cfg"}
        time_to_shown(app_cmd, warm_env)  # first launch creates the cluster the warm runs reuse
        for i in range(args.runs):
            # Interleave the three kinds so machine noise hits them alike.
            results["baseline_qt_window"].append(time_to_shown([sys.executable, "-c", BASELINE], env))
            cold_env = env | {
                "PIXSIM_DATA_DIR": f"{tmp}/cold{i}/data",
                "PIXSIM_CONFIG_DIR": f"{tmp}/cold{i}/cfg",
            }
            results["pixsim_cold"].append(time_to_shown(app_cmd, cold_env))
            results["pixsim_warm"].append(time_to_shown(app_cmd, warm_env))

    summary: dict[str, object] = {"runs": args.runs, "platform": args.platform, "cpus": os.cpu_count()}
    for name, samples in results.items():
        summary[f"{name}_median_s"] = round(statistics.median(samples), 3)
        summary[f"{name}_samples_s"] = [round(s, 3) for s in samples]
    base = statistics.median(results["baseline_qt_window"])
    summary["cold_vs_baseline"] = round(statistics.median(results["pixsim_cold"]) / base, 2)
    summary["warm_vs_baseline"] = round(statistics.median(results["pixsim_warm"]) / base, 2)
    summary["target_warm_s"], summary["target_cold_s"] = 2.0, 5.0
    summary["meets_targets"] = bool(
        summary["pixsim_warm_median_s"] <= 2.0 and summary["pixsim_cold_median_s"] <= 5.0  # type: ignore[operator]
    )
    for name in results:
        print(
            f"{name:>20}: median {summary[f'{name}_median_s']:.3f} s  samples {summary[f'{name}_samples_s']}"
        )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
