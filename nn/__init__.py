"""nn: a neural-network library written by hand in NumPy, proven against Keras."""

from nn import datasets, kernels
from nn.callbacks import Callback, History
from nn.errors import DataError, InputError, ModelError, NNError
from nn.layers import Dense, Flatten, Layer, ReLU, Softmax
from nn.losses import SparseCategoricalCrossentropy
from nn.model import Sequential
from nn.optimizers import Adam
from nn.saving import load_model, save_model
from nn.scaled import ScaledImages

__version__ = "0.1.0"

__all__ = [
    "Adam", "Callback", "DataError", "Dense", "Flatten", "History", "InputError", "Layer",
    "ModelError", "NNError", "ReLU", "ScaledImages", "Sequential", "Softmax", "SparseCategoricalCrossentropy",
    "datasets", "kernels", "load_model", "save_model",
]
