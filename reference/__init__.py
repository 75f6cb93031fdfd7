"""reference: the Keras 3 twin of nn and the machinery that proves nn against it.

Importing this package sets, unless already set, the environment that makes
the comparison quiet: TensorFlow's C++ logs off and Keras on the TensorFlow
backend. reference.runtime then pins OpenBLAS and TensorFlow to one thread
each. nn itself never imports TensorFlow; only this package does.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
