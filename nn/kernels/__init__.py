"""Teaching path: the layers' hot operations, and the one place a backend is chosen.

`numpy_kernels` is the specification, the code a reader reads;
`nn.fast.numba_kernels` compiles the same operations with numba. A backend is
any module that defines every name in `KERNELS` with the same signatures;
layers, the loss and the optimizer only ever call the module returned by
`get_backend`, so the choice of backend happens here and nowhere else: the
`backend` argument, else $NN_BACKEND, else numba when it is installed, else
numpy. The fused engine's whole-chunk steps have their own pair of modules
(nn.fast.steps and nn.fast.numba_steps), chosen by the same backend name.
"""

import importlib
import os
import warnings

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

#: Every backend nn knows, fastest first; `available_backends` says which load here.
BACKENDS = ("numba", "numpy")
_MODULES = {"numpy": "nn.kernels.numpy_kernels", "numba": "nn.fast.numba_kernels"}
_MISSING = {}  # backend name -> why it cannot load here


def _loads(name):
    """True if the backend imports; remembers why not."""
    if name not in _MISSING:
        try:
            importlib.import_module(_MODULES[name])
            _MISSING[name] = None
        except ImportError as exc:  # numba (or SciPy, which its np.dot needs) is missing
            _MISSING[name] = f"{exc}"
    return _MISSING[name] is None


def available_backends():
    """Names of the backends this installation can load, fastest first."""
    return tuple(name for name in BACKENDS if _loads(name))


def default_backend():
    """The backend used when none is given: $NN_BACKEND, else the fastest installed."""
    return os.environ.get("NN_BACKEND") or available_backends()[0]


def get_backend(name=None):
    """The kernel module for `name` (None: `default_backend()`).

    Asking for numba where it cannot load warns once and gives numpy, so
    scripts written for numba still run (slower) on a machine without it.
    """
    name = default_backend() if name is None else name
    if not isinstance(name, str) or name not in _MODULES:
        raise InputError(f"backend must be one of {', '.join(BACKENDS)}; got {name!r}")
    if not _loads(name):
        warnings.warn(f"the {name} backend cannot load ({_MISSING[name]}); using numpy instead. "
                      f"Install it with: pip install numba scipy", RuntimeWarning, stacklevel=2)
        name = "numpy"
    return importlib.import_module(_MODULES[name])
