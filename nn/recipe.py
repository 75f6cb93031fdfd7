"""Teaching path: the seed recipe, the classic Keras MNIST network and its training settings."""

import numpy as np

from nn._checks import float_dtype
from nn.errors import InputError
from nn.layers import Dense, Flatten
from nn.model import Sequential
from nn.scaled import divide

#: fit() settings of the Keras notebook this project reproduces (98.04% test accuracy).
SEED_FIT = {"epochs": 25, "batch_size": 32, "validation_split": 0.2}


def seed_model(seed=None, dtype="float32", backend=None):
    """784 -> Dense 128 ReLU -> Dense 32 ReLU -> Dense 10 softmax, compiled with Adam."""
    model = Sequential(
        [
            Flatten(input_shape=(28, 28)),
            Dense(128, activation="relu"),
            Dense(32, activation="relu"),
            Dense(10, activation="softmax"),
        ],
        dtype=dtype, seed=seed, backend=backend, name="seed_mlp",
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def scale_images(images, dtype="float32"):
    """uint8 images -> images / 255.0 in `dtype`, as the notebook (then Keras's cast) does.

    dtype: float32 or float64; anything else is refused. The values equal the
    notebook's float64 quotients cast to `dtype`, without its 8-bytes-per-pixel
    temporary: one division in `dtype` itself, which for float32 rounds i / 255
    once where the notebook rounds it twice (to float64, then float32), and
    the two agree because double rounding cannot change a quotient when the
    wider format has at least 2 * 24 + 2 bits (float64 has 53; Figueroa, "When
    is double rounding innocuous?", 1995). The tests check all 256 values.
    nn.ScaledImages(images, dtype=dtype) gives the same floats a selection
    at a time, without this whole array.
    """
    dtype = float_dtype(dtype, "dtype")  # an integer result would hold only 0 and 1
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise InputError(f"images must be uint8 (0-255) as MNIST ships them; got {images.dtype}")
    return divide(images, 255, dtype)
