"""Shared fixtures: seeded generators and the real MNIST data."""

import os

import numpy as np
import pytest

# CI sets NN_DATA_DIR=../shared/data/mnist, relative to the checkout. Many
# tests run `python -m nn` or a benchmark in another working directory, where
# that relative path names nothing, and a named folder that does not verify
# is an error, never a fallback. So the whole session sees it absolute.
if os.environ.get("NN_DATA_DIR"):
    os.environ["NN_DATA_DIR"] = os.path.abspath(os.environ["NN_DATA_DIR"])


@pytest.fixture
def rng():
    """A fresh generator with a fixed seed, so every test sees the same numbers."""
    return np.random.default_rng(20261123)


@pytest.fixture(scope="session")
def mnist():
    """MNIST as nn.datasets.mnist.load_data() returns it (CI sets NN_DATA_DIR)."""
    from nn.datasets import mnist as loader

    return loader.load_data(verbose=False)


@pytest.fixture(scope="session")
def mnist_scaled(mnist):
    """MNIST divided by 255.0 into float32, the seed recipe's input."""
    from nn.recipe import scale_images

    (x_train, y_train), (x_test, y_test) = mnist
    return (scale_images(x_train), y_train), (scale_images(x_test), y_test)
