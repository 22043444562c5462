"""The benchmark's bookkeeping (tools.bench): ratios, the "met" column, the table, the timing loop.

The speeds themselves are measured by `make bench`, not asserted here (no timed tests).
"""

from __future__ import annotations

import time

from tools import bench


def test_row_reports_speedup_target_and_fraction_of_limit():
    # 2 GFLOP in 25 ms = 80 GFLOP/s, NumPy took 27.5 ms: 1.10x, 80% of a 100 GFLOP/s peak
    row = bench.Row("matmul", "1024", 0.025, 2e9, 12e6, 0.0275, 0.9, 100.0)
    cells = dict(zip(bench.HEADER, row.cells()))
    assert abs(row.speedup - 1.1) < 1e-12
    assert cells["GFLOP/s"] == "80.0" and cells["speed-up"] == "1.10x" and cells["of limit"] == "80%"
    assert cells["met"] == "yes"
    slow = bench.Row("matvec_q4_0", "4096", 0.001, 0.0, 9.4e6, 0.0055, 6.0, 20.0)
    slow_cells = dict(zip(bench.HEADER, slow.cells()))
    assert slow_cells["met"] == "NO" and slow_cells["GFLOP/s"] == "-" and slow_cells["GB/s"] == "9.4"
    report = bench.Row("attention_decode", "32h", 0.003, 0.0, 3e7, None, None, 20.0)
    assert dict(zip(bench.HEADER, report.cells()))["met"] == "-" and report.speedup is None


def test_table_is_markdown_with_one_line_per_row():
    rows = [["matmul", "1024x1024x1024", "27.0"], ["matvec", "4096x4096", "3.6"]]
    lines = bench.table(rows, ["kernel", "shape", "ms"]).splitlines()
    assert len(lines) == 4 and set(lines[1]) <= {"|", "-"}
    assert all(line.startswith("| ") and line.endswith(" |") for line in lines[:1] + lines[2:])
    assert len({len(line) for line in lines}) == 1  # columns padded to one width


def test_best_times_interleaves_and_keeps_the_minimum():
    calls: list[tuple[str, int]] = []

    def fast(i: int) -> None:
        calls.append(("fast", i))

    def slow(i: int) -> None:
        calls.append(("slow", i))
        t = time.thread_time()
        while time.thread_time() - t < 0.002:  # burn 2 ms of this thread's CPU time
            pass

    t_fast, t_slow = bench.best_times([fast, slow], copies=3, reps=5)
    assert t_fast < t_slow and t_slow >= 0.002
    timed = calls[6:]  # after the warm-up, which touches every copy once
    assert [name for name, _ in timed] == ["fast", "slow"] * 5  # interleaved within each round
    assert [i for _, i in timed[::2]] == [0, 1, 2, 0, 1]  # copies cycled
