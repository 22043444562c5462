"""The notebook timing table of `make test`: the slowest first, the mode it measured and that mode's budget."""

import conftest


def test_the_table_names_the_mode_and_flags_its_budget():
    times = {f"nb{i:02d}.ipynb": float(i * 20) for i in range(1, 13)}  # 20 s ... 240 s
    fast = conftest.timing_table(times, failed={"nb03.ipynb"}, mode="FAST")
    assert fast[0].startswith("FAST mode, budget 180 s") and "10 slowest of 12" in fast[0]
    rows = fast[1:11]
    assert rows[0].startswith("nb12.ipynb") and rows[-1].startswith("nb03.ipynb")  # slowest first, ten shown
    assert "FAILED" in rows[-1] and all("over the 180 s budget" in r for r in rows[:3])  # 240, 220, 200 s
    assert fast[-2].split()[-1] == "3"
    full = conftest.timing_table(times, failed=set(), mode="FULL")
    assert full[0].startswith("FULL mode, budget 900 s") and not any("over the" in r for r in full)
