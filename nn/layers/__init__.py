"""Teaching path: the layers, Dense, ReLU, Softmax and Flatten."""

from nn.layers.activations import ReLU, Softmax
from nn.layers.base import Layer
from nn.layers.dense import Dense
from nn.layers.flatten import Flatten

LAYER_CLASSES = {cls.__name__: cls for cls in (Dense, ReLU, Softmax, Flatten)}

__all__ = ["Layer", "Dense", "ReLU", "Softmax", "Flatten", "LAYER_CLASSES"]
