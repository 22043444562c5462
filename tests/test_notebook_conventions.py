"""Every course notebook follows the conventions of tools.notebooks (and the checker catches breaks)."""

import json

import pytest

from tools import notebooks

ALL = notebooks.course_notebooks()


@pytest.mark.parametrize("nb", ALL, ids=[str(p.relative_to(notebooks.ROOT)) for p in ALL])
def test_notebook_follows_the_conventions(nb):
    problems = notebooks.check(nb)
    assert not problems, "\n".join(problems)


def _broken_copy(tmp_path, change):
    nb = json.loads((notebooks.ROOT / "assets" / "template.ipynb").read_text())
    change(nb)
    path = notebooks.ROOT / "assets" / "template.ipynb"  # checked as if it were the template
    copy = tmp_path / "nb.ipynb"
    copy.write_text(json.dumps(nb))
    return path, copy


@pytest.mark.parametrize("change,expected", [
    (lambda nb: nb["cells"][2].update(outputs=[{"output_type": "stream", "name": "stdout", "text": "x"}]), "outputs"),
    (lambda nb: nb["cells"][0].update(source="# Title\n\nshort"), "Colab badge"),
    (lambda nb: nb["cells"][3]["metadata"].clear(), "slide_type"),
    (lambda nb: nb["cells"].insert(3, {"cell_type": "code", "metadata": {}, "outputs": [],
                                       "execution_count": None, "source": "cfg = llmfs.setup(seed=1)"}), "exactly one setup"),
    (lambda nb: nb["cells"].pop(-2), "Exercises"),
    (lambda nb: nb["cells"][4].update(source="open('/home/me/data.txt')"), "absolute path"),
    (lambda nb: nb["cells"][4].update(source="from llmfs.gpt import GPT"), "not in the package"),
    (lambda nb: nb["cells"][4].update(source="from llmfs import train as T"), "not in the package"),
    (lambda nb: nb["cells"][4].update(source="from tools import notebooks"), "course tooling"),
    (lambda nb: nb["cells"][3].update(source="".join(nb["cells"][3]["source"]) + "\n\n## A hidden section\ntext"),
     "sits inside the cell"),
])
def test_checker_catches_broken_conventions(tmp_path, monkeypatch, change, expected):
    path, copy = _broken_copy(tmp_path, change)
    monkeypatch.setattr(notebooks, "colab_url", lambda p: notebooks._colab_url(path))
    problems = notebooks.check(copy)
    assert any(expected in p for p in problems), problems


def test_repository_url_is_written_once():
    """Badges and setup cells are stamped from llmfs.config.REPO_URL, nowhere else by hand."""
    from llmfs.config import REPO_URL

    for nb in ALL:
        text = nb.read_text()
        assert REPO_URL in text or REPO_URL.split("github.com/")[1] in text


def test_readme_lists_every_notebook():
    """The README's notebook table is current (regenerate: `python -m tools.notebooks readme`)."""
    readme = (notebooks.ROOT / "README.md").read_text()
    assert notebooks.README_START in readme and notebooks.README_END in readme
    table = readme[readme.index(notebooks.README_START) + len(notebooks.README_START):readme.index(notebooks.README_END)]
    assert table.strip() == notebooks.readme_table().strip(), "run `python -m tools.notebooks readme`"
