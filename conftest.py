"""pytest hooks for the whole repository: a per-notebook timing table at the end of ``make test``."""

from __future__ import annotations

import os
from collections import defaultdict

# Each notebook's budget on 2 CPU cores: FAST mode (``make test``) 3 minutes, FULL mode (``make full``) 15.
BUDGET_S = {"FAST": 180, "FULL": 900}
SHOWN = 10  # the slowest notebooks listed

_times: dict[str, float] = defaultdict(float)
_failed: set[str] = set()


def run_mode() -> str:
    """The mode the notebooks ran in, read the way ``llmfs.config`` reads it."""
    from llmfs.config import is_fast

    return "FAST" if is_fast() else "FULL"


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::")[0]
    if path.endswith(".ipynb"):
        _times[path] += report.duration
        if report.failed:
            _failed.add(path)


def timing_table(times: dict[str, float], failed: set[str], mode: str, shown: int = SHOWN) -> list[str]:
    """The lines of the table: the ``shown`` slowest notebooks, slowest first, each flagged when it
    failed or ran over its mode's budget, then how many were over budget and the total."""
    budget = BUDGET_S[mode]
    width = max(len(p) for p in times)
    ranked = sorted(times.items(), key=lambda kv: -kv[1])
    lines = [f"{mode} mode, budget {budget} s per notebook; the {min(shown, len(ranked))} slowest of {len(ranked)}:"]
    for path, seconds in ranked[:shown]:
        status = "FAILED" if path in failed else "ok"
        over = f"  over the {budget} s budget" if seconds > budget else ""
        lines.append(f"{path:<{width}}  {seconds:7.1f} s  {status}{over}")
    n_over = sum(s > budget for s in times.values())
    lines.append(f"{'over budget':<{width}}  {n_over:7d}")
    lines.append(f"{'all notebooks (sum of their times)':<{width}}  {sum(times.values()):7.1f} s")
    return lines


def pytest_terminal_summary(terminalreporter):
    if not _times:
        return
    mode = run_mode()
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    terminalreporter.section(f"notebook times ({mode} mode, OMP_NUM_THREADS={threads})")
    for line in timing_table(_times, _failed, mode):
        terminalreporter.write_line(line)
