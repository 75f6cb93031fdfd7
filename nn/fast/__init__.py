"""Fast engine: everything that exists only for speed, apart from the teaching path.

The teaching path is nn.layers, nn.losses, nn.optimizers and nn.model's
layer-by-layer `fit` over the NumPy kernels in nn.kernels.numpy_kernels:
stepping through it walks through the layers. Everything here computes the
same numbers faster, and each piece is held by the tests to its plain twin:

- `numba_kernels`: the layers' kernels compiled with numba (the "numba"
  backend), twins of nn.kernels.numpy_kernels;
- `trainer`: the fused engine, `fit(engine="fused")`, which runs whole chunks
  of steps of a Dense chain in one call;
- `steps` (NumPy) and `numba_steps`, `numba_fused`, `numba_sparse`
  (compiled): those chunks of steps; `steps` is the specification;
- `config`: every flag of the compiled code, read once from the environment.

Importing this package imports nothing compiled: numba loads only with the
numba backend.
"""

import importlib

#: The fused steps for each backend name: the NumPy specification, the compiled twin.
STEPS = {"numpy": "nn.fast.steps", "numba": "nn.fast.numba_steps"}


def steps_for(backend_name):
    """The module whose `train_steps` and `nonzero_rows` the fused engine calls on this backend."""
    return importlib.import_module(STEPS[backend_name])
