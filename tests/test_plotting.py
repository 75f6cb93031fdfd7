"""Every picture: drawn on a Figure, written at the expected size, not blank, labelled with the class names."""

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.image import imread

from nn import InputError
from nn import plotting
from nn.diagnostics import Diagnostics
from nn.inspect import trace

from test_gradients import chain

FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Ankle boot"]


def assert_picture(fig, path, dpi=110):
    """A Figure, saved as a PNG of figsize * dpi pixels, with real content (not one flat colour)."""
    assert isinstance(fig, Figure)
    pixels = imread(path)
    width, height = fig.get_size_inches() * dpi
    assert pixels.shape[:2] == (round(height), round(width))
    rgb = pixels[..., :3].reshape(-1, 3)
    assert rgb.std() > 0.02  # a blank page has std 0
    assert len(np.unique((rgb * 255).astype(np.uint8), axis=0)) > 20  # lines, text and fills


def texts(fig):
    """Every piece of text drawn on the figure (titles, labels, tick labels, annotations)."""
    return {t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))}


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(1)
    model = chain()
    x, y = rng.standard_normal((120, 2, 3)), rng.integers(0, 3, 120)
    history = model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[Diagnostics(x[:20], y[:20], 5)])
    return model, history, x, y


def test_diagnostics_picture(trained, tmp_path):
    _, history, _, _ = trained
    fig = plotting.plot_diagnostics(history, tmp_path / "d.png")
    assert_picture(fig, tmp_path / "d.png")
    ratio = fig.axes[0]
    assert ratio.get_yscale() == "log" and "1e-3 rule of thumb" in texts(fig)
    assert any(np.allclose(line.get_ydata(), 1e-3) for line in ratio.lines)  # the guide line
    with pytest.raises(InputError, match="holds no diagnostics"):
        plotting.plot_diagnostics({"loss": [1.0]})


def test_histograms_picture(trained, tmp_path):
    model, _, x, y = trained
    fig = plotting.plot_histograms(trace(model, x[:32], y[:32]), tmp_path / "h.png")
    assert_picture(fig, tmp_path / "h.png")
    assert [len(ax.lines) for ax in fig.axes] == [2, 2, 3]  # hidden layers twice, every kernel


def test_confusion_picture_shows_counts_and_class_names(tmp_path):
    cm = np.diag(np.arange(100, 110))
    cm[3, 5] = 7
    fig = plotting.plot_confusion_matrix(cm, tmp_path / "c.png", class_names=FASHION)
    assert_picture(fig, tmp_path / "c.png")
    assert set(FASHION) <= texts(fig) and {"7", "109"} <= texts(fig)
    with pytest.raises(InputError, match="class_names has 2 names; there are 10 classes"):
        plotting.plot_confusion_matrix(cm, class_names=["a", "b"])


def test_misclassified_picture_titles_each_digit(rng, tmp_path):
    images = rng.random((10, 28, 28))
    fig = plotting.plot_misclassified(images, np.arange(10), (np.arange(10) + 1) % 10,
                                      np.linspace(0.5, 0.95, 10), tmp_path / "m.png", class_names=FASHION)
    assert_picture(fig, tmp_path / "m.png")
    assert "true Bag\npredicted Ankle boot (90%)" in texts(fig)
    with pytest.raises(InputError, match="no misclassified images"):
        plotting.plot_misclassified(images[:0], [], [], [])


def test_first_layer_picture_has_one_tile_per_unit(rng, tmp_path):
    fig = plotting.plot_first_layer(rng.standard_normal((784, 128)), tmp_path / "w.png")
    assert_picture(fig, tmp_path / "w.png")
    numbers = {t.get_text() for t in fig.axes[0].texts}
    assert numbers == {str(i) for i in range(128)}  # one numbered tile per unit
    with pytest.raises(InputError, match="not a square image"):
        plotting.plot_first_layer(rng.standard_normal((6, 5)))


def test_write_pictures_draws_every_picture_of_a_run(trained, tmp_path):
    from nn.report import PICTURES, write_pictures

    model, history, x, y = trained
    written = write_pictures(str(tmp_path), model, history, x, y)
    names = [p.rsplit("/", 1)[-1] for p in written]
    # inputs of 2x3 values are not square images: no digits or weight tiles to draw
    assert names == [n for n in PICTURES if n not in ("misclassified.png", "weights.png")]
    for p in written:
        assert imread(p).std() > 0.02
