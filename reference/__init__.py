"""reference: the Keras 3 twin of nn and the machinery that proves nn against it.

Importing this package sets, unless already set, the environment that makes
the comparison quiet and reproducible (see reference.runtime): TensorFlow's
C++ logs off, Keras on the TensorFlow backend, and OpenBLAS on one thread
(effective only when NumPy has not been imported yet, as under
`python -m reference.compare`; float32 sums in OpenBLAS change with its thread
count). nn itself never imports TensorFlow; only this package does.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
