"""nn.images: any PNG or JPEG of a digit becomes the 28x28 input MNIST would have made of it."""

import numpy as np
import pytest
from PIL import Image

from nn import InputError
from nn.images import load_digit, to_mnist
from nn.recipe import scale_images, seed_model


def variants(digit, folder, name):
    """The MNIST digit (uint8, 28x28) written as files the way a user might have them."""
    files = {"as-is.png": Image.fromarray(digit),
             "inverted.png": Image.fromarray(255 - digit),  # dark ink on white paper
             "big-inverted.jpg": Image.fromarray(255 - digit).resize((112, 112), Image.BICUBIC),
             "small-rgb.png": Image.fromarray(digit).resize((21, 21), Image.BILINEAR).convert("RGB"),
             "wide-canvas.png": Image.fromarray(np.pad(digit, ((10, 10), (60, 4))))}
    paths = []
    for suffix, img in files.items():
        paths.append(folder / f"{name}-{suffix}")
        img.save(paths[-1])
    return paths


@pytest.mark.data
def test_image_files_of_test_digits_get_the_models_own_predictions(mnist, tmp_path):
    (x_train, y_train), (x_test, y_test) = mnist
    model = seed_model(seed=0)
    model.fit(scale_images(x_train[:12000]), y_train[:12000], epochs=1, verbose=0)
    probs = model.predict(scale_images(x_test[:200]))
    # Digits the model is sure of (p > 0.99): resampling moves pixels, not a clear answer.
    sure = np.flatnonzero(probs.max(axis=1) > 0.99)[:15]
    assert len(sure) == 15
    for i in sure:
        paths = variants(x_test[i], tmp_path, f"d{i}")
        digits = np.stack([load_digit(p) for p in paths])
        assert digits.shape == (len(paths), 28, 28) and digits.min() >= 0 and digits.max() <= 1
        predicted = model.predict(digits.astype(np.float32)).argmax(axis=1)
        assert (predicted == probs[i].argmax()).all(), (i, [p.name for p in paths], predicted)
        # an MNIST digit already is fitted and centred: converting it again changes little
        # (a pixel off at most where its centre of mass rounds the other way)
        assert np.abs(digits[0] - x_test[i] / 255).mean() < 0.05


def test_conversion_follows_mnist_steps():
    canvas = np.full((60, 40), 230.0)  # light paper
    canvas[10:50, 18:22] = 20.0  # a dark vertical stroke: 40 tall, 4 wide
    digit = to_mnist(canvas)
    rows, cols = np.nonzero(digit > 0.5)
    assert rows.max() - rows.min() + 1 == 20  # the longer side fitted into 20 pixels
    assert cols.max() - cols.min() + 1 == 2  # aspect ratio kept: 4 * 20 / 40
    ys, xs = np.indices(digit.shape)
    assert abs((ys * digit).sum() / digit.sum() - 14) <= 0.5  # centred by mass
    assert abs((xs * digit).sum() / digit.sum() - 14) <= 0.5
    assert digit.max() == pytest.approx(1.0) and digit[0, 0] == 0  # light digit on black


@pytest.mark.parametrize("write, message", [
    (lambda p: p.write_bytes(b""), "is an empty file"),
    (lambda p: p.write_text("not an image"), "is not an image Pillow can read"),
    (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40), "is not an image Pillow can read"),
    (lambda p: Image.new("L", (30, 30), 255).save(p, format="PNG"), "holds no digit"),
    (lambda p: None, "does not exist"),
], ids=["empty", "text", "truncated-png", "blank-page", "missing"])
def test_what_is_not_a_digit_is_refused(tmp_path, write, message):
    path = tmp_path / "digit.png"
    write(path)
    with pytest.raises(InputError, match=message):
        load_digit(path)
