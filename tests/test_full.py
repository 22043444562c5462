"""`make full`'s bookkeeping: headline lines collected, the README table replaced in place, failures shown."""

from pathlib import Path

import nbformat
import pytest

from tools import full


def _nb(*sources: str):
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])


def test_headlines_are_read_from_the_printed_outputs():
    nb = _nb("x")
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout",
                                                  text="step 1\nheadline: test accuracy = 98.12%\nheadline: time = 41 s\n")]
    assert full.headlines(nb) == [("test accuracy", "98.12%"), ("time", "41 s")]


def test_the_readme_table_is_replaced_between_its_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Series\n\nintro\n")
    ok = full.Result(Path("01_a.ipynb"), 65.0, headlines=[("accuracy", "0.98")])
    slow = full.Result(Path("02_b.ipynb"), full.FULL_BUDGET_S + 1.0)
    broken = full.Result(Path("03_c.ipynb"), 3.0, error="AssertionError: too low")
    full.write_readme(readme, [ok, slow, broken])
    first = readme.read_text()
    assert first.startswith("# Series\n\nintro\n") and first.count(full.START) == 1
    assert "| 01_a.ipynb | 1.1 min | ok | accuracy = 0.98 |" in first
    assert "| 02_b.ipynb |" in first and "over budget" in first and "FAILED: AssertionError: too low" in first
    full.write_readme(readme, [ok])  # a second run replaces the table, never appends another
    second = readme.read_text()
    assert second.count(full.START) == 1 and "02_b.ipynb" not in second
    again = full.Result(Path("03_c.ipynb"), 120.0, headlines=[("loss", "1.5")])
    full.write_readme(readme, [again], keep={"01_a.ipynb"})  # a run of one notebook keeps the others' rows
    third = readme.read_text()
    piped = full.Result(Path("04_d.ipynb"), 6.0, headlines=[("max |a - b|", "1e-6")])
    assert full.row(piped) == "| 04_d.ipynb | 0.1 min | ok | max \\|a - b\\| = 1e-6 |"  # escaped: one cell
    assert "| 01_a.ipynb | 1.1 min | ok | accuracy = 0.98 |" in third and "| 03_c.ipynb | 2.0 min | ok | loss = 1.5 |" in third
    assert third.index("01_a.ipynb") < third.index("03_c.ipynb") and third.count(full.START) == 1


@pytest.mark.integration
def test_a_notebook_runs_in_full_mode_and_a_failing_one_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMFS_FAST", "1")  # the tool must run FULL mode whatever the caller's environment
    good = tmp_path / "01_good.ipynb"
    nbformat.write(_nb("import os\nimport llmfs\nllmfs.headline('fast', os.environ.get('LLMFS_FAST', 'unset'))"), good)
    bad = tmp_path / "02_bad.ipynb"
    nbformat.write(_nb("assert 1 == 2, 'wrong on purpose'"), bad)
    r = full.run(good)
    assert r.status == "ok" and r.headlines == [("fast", "unset")]
    r = full.run(bad)
    assert r.status == "FAILED" and "wrong on purpose" in r.error
    import os
    assert os.environ["LLMFS_FAST"] == "1"  # restored


def test_each_series_has_its_budget():
    assert full.budget(Path("01CB-basics/03_mlp_numpy_mnist.ipynb")) == full.FULL_BUDGET_S == 900
    assert full.budget(Path("03FT-finetuning/03_instruction_finetuning.ipynb")) == 1200  # the 20 minutes
    slow = full.Result(Path("03FT-finetuning/03_x.ipynb"), 1000.0)
    assert slow.status == "ok" and full.Result(Path("02PT-pretraining/03_x.ipynb"), 1000.0).status == "over budget"


def test_a_failed_cell_is_reported_by_its_error_not_a_rule_of_dashes():
    from nbclient.exceptions import CellExecutionError

    text = "cell source\n-------------------\nAssertionError: too low\n-------------------"
    exc = CellExecutionError(text, "AssertionError", "too low")
    assert full._first_error_line(exc) == "AssertionError: too low"
    assert full._first_error_line(TimeoutError("Cell timed out after 60 s\n------")) == "Cell timed out after 60 s"
