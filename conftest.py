"""pytest hooks for the whole repository: a per-notebook timing table at the end of ``make test``."""

from __future__ import annotations

from collections import defaultdict

NOTEBOOK_BUDGET_S = 180  # each notebook must run within 3 minutes in FAST mode on 2 CPU cores

_times: dict[str, float] = defaultdict(float)
_failed: set[str] = set()


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::")[0]
    if path.endswith(".ipynb"):
        _times[path] += report.duration
        if report.failed:
            _failed.add(path)


def pytest_terminal_summary(terminalreporter):
    if not _times:
        return
    tr = terminalreporter
    tr.section("notebook times (FAST mode)")
    width = max(len(p) for p in _times)
    for path, seconds in _times.items():
        status = "FAILED" if path in _failed else "ok"
        over = f"  over the {NOTEBOOK_BUDGET_S} s budget" if seconds > NOTEBOOK_BUDGET_S else ""
        tr.write_line(f"{path:<{width}}  {seconds:7.1f} s  {status}{over}")
    tr.write_line(f"{'all notebooks':<{width}}  {sum(_times.values()):7.1f} s")
