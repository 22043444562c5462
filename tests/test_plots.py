"""The shared plotting helpers draw what they are given and return the right objects."""

import matplotlib

matplotlib.use("Agg")  # tests draw off-screen

import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import numpy as np
import pytest

from llmfs import plots


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_show_images_grid_captions_and_wrong_preds_in_red():
    images = np.random.default_rng(0).random((7, 28, 28))
    labels, preds = [1, 2, 3, 4, 5, 6, 7], [1, 2, 0, 4, 5, 6, 9]
    fig = plots.show_images(images, labels=labels, preds=preds, ncols=4, title="digits")
    axes = fig.axes
    assert len(axes) == 8  # 2 rows x 4 columns, the last one empty
    titles = [ax.get_title() for ax in axes[:7]]
    assert titles == ["1/1", "2/2", "3/0", "4/4", "5/5", "6/6", "7/9"]
    red = [mcolors.same_color(ax.title.get_color(), "red") for ax in axes[:7]]
    assert red == [False, False, True, False, False, False, True]
    assert not axes[7].images and fig._suptitle.get_text() == "digits"


def test_show_images_accepts_flat_vectors_and_no_labels():
    fig = plots.show_images(np.zeros((3, 784)), ncols=10)
    assert len(fig.axes) == 3  # ncols shrinks to the number of images
    assert fig.axes[0].images[0].get_array().shape == (28, 28)
    assert fig.axes[0].get_title() == ""


def test_plot_curves_one_line_per_key():
    ax = plots.plot_curves({"train": [3.0, 2.0, 1.0], "test": [3.5, 2.5, 2.0]}, xlabel="step", title="loss")
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == ["train", "test"]
    assert lines[0].get_xdata().tolist() == [1, 2, 3] and lines[1].get_ydata().tolist() == [3.5, 2.5, 2.0]
    assert ax.get_xlabel() == "step" and ax.get_title() == "loss"


def test_confusion_matrix_counts_and_heatmap():
    y_true = [0, 0, 1, 1, 2, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 0, 2]
    fig, ax = plt.subplots()
    cm = plots.plot_confusion_matrix(y_true, y_pred, ax=ax, title="cm")
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 2]]
    assert cm.sum() == len(y_true) and np.trace(cm) == 5
    assert sorted(t.get_text() for t in ax.texts) == sorted(str(v) for v in cm.ravel())
    assert ax.get_title() == "cm"
    # n_classes pads classes that never occur
    assert plots.plot_confusion_matrix([0, 1], [1, 1], n_classes=4).shape == (4, 4)


def test_plot_graph_draws_one_box_per_node_and_one_arrow_per_edge():
    from llmfs.basics.autograd import Value

    a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    c = a * b
    d = c + a  # a is used twice: two arrows leave it
    d.backward()
    ax = plots.plot_graph(d, title="graph")
    boxes = [t.get_text() for t in ax.texts if t.get_text()]  # arrows are empty annotations
    assert len(boxes) == 4 and any(t.startswith("a\ndata 2\ngrad -2") for t in boxes)
    assert any(t.startswith("+\ndata -4") for t in boxes)
    arrows = [child for child in ax.get_children() if type(child).__name__ == "Annotation" and not child.get_text()]
    assert len(arrows) == 4  # a->*, b->*, *->+, a->+
    assert ax.get_title() == "graph"
