"""Data sets as Keras returns them (MNIST, Fashion-MNIST), and nn.datasets.idx for any other IDX files."""

from nn.datasets import fashion_mnist, mnist

DATASETS = {"mnist": mnist, "fashion_mnist": fashion_mnist}

__all__ = ["DATASETS", "fashion_mnist", "mnist"]
