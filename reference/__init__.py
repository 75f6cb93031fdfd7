"""reference: the Keras 3 twin of nn and the machinery that proves nn against it.

Importing this package sets, unless already set, the environment that makes
the comparison quiet and reproducible (see reference.runtime): TensorFlow's
C++ logs off, Keras on the TensorFlow backend, and OpenBLAS on one thread
(effective only when NumPy has not been imported yet, as under
`python -m reference.compare`; float32 sums in OpenBLAS change with its thread
count). nn itself never imports TensorFlow; only this package does.
"""

import os
import sys

#: Whether OPENBLAS_NUM_THREADS is in force: set before launch, or by us before NumPy loaded.
OPENBLAS_THREADS_IN_FORCE = "OPENBLAS_NUM_THREADS" in os.environ or "numpy" not in sys.modules

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
