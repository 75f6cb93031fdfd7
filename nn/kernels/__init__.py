"""Kernels: the hot operations behind the layers, one module per backend.

`numpy_kernels` is the specification. A backend is any module that defines
every name in `KERNELS` with the same signatures; layers and the optimizer
only ever call the module returned by `get_backend`, so the choice of backend
happens here and nowhere else.
"""

import importlib
import os

from nn.errors import InputError

KERNELS = (
    "dense_forward",
    "matmul_tn",
    "matmul_nt",
    "bias_grad",
    "relu_backward",
    "softmax",
    "softmax_backward",
    "softmax_xent_forward",
    "softmax_xent_backward",
    "adam_update",
)

_MODULES = {"numpy": "nn.kernels.numpy_kernels"}


def available_backends():
    """Names of the backends this installation can load."""
    return tuple(_MODULES)


def default_backend():
    """The backend used when none is given: $NN_BACKEND, else numpy."""
    return os.environ.get("NN_BACKEND", "numpy")


def get_backend(name=None):
    """The kernel module for `name` (None: `default_backend()`)."""
    name = default_backend() if name is None else name
    if name not in _MODULES:
        raise InputError(
            f"backend must be one of {', '.join(available_backends())}; got {name!r}"
        )
    return importlib.import_module(_MODULES[name])
