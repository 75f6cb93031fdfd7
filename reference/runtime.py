"""TensorFlow set up once for reproducible comparisons, and a record of the settings."""

import ctypes
import os
import platform
import sys

import reference  # noqa: F401  (sets the environment before TensorFlow loads)

import numpy as np
import tensorflow as tf
import keras

#: TensorFlow's thread pools. One thread each: Eigen then sums every dot
#: product in one fixed order, runs are repeatable, and the shared 2-core
#: machine is not oversubscribed (a batch of 32 gains nothing from more).
TF_THREADS = {"intra_op": 1, "inter_op": 1}


#: OpenBLAS's threads: one, as TensorFlow's. Its float32 sums change with the
#: thread count, and on a busy 2-core machine a second thread that spins while
#: waiting for its sibling made the float64 tests several times slower.
OPENBLAS_THREADS = 1
_OPENBLAS_PREFIXES = ("scipy_openblas_", "openblas_")  # NumPy's wheels, then plain OpenBLAS
_OPENBLAS_SUFFIXES = ("64_", "_64_", "")


def _openblas_calls():
    """(set_num_threads, get_num_threads) of the OpenBLAS NumPy loaded, or None.

    What threadpoolctl does, for the one library we care about: find the
    loaded OpenBLAS in this process's memory map (Linux) and look up its
    thread functions, whose names depend on how it was built.
    """
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower()}
    except OSError:
        return None
    for path in sorted(p for p in paths if ".so" in p):
        lib = ctypes.CDLL(path)
        for prefix in _OPENBLAS_PREFIXES:
            for suffix in _OPENBLAS_SUFFIXES:
                setter = getattr(lib, f"{prefix}set_num_threads{suffix}", None)
                getter = getattr(lib, f"{prefix}get_num_threads{suffix}", None)
                if setter is not None and getter is not None:
                    return setter, getter
    return None


def openblas_threads():
    """The number of threads OpenBLAS uses now (None if it cannot be found)."""
    calls = _openblas_calls()
    return int(calls[1]()) if calls else None


def configure():
    """Pin OpenBLAS and TensorFlow's thread pools (TF's: only before its runtime starts)."""
    calls = _openblas_calls()
    if calls:
        calls[0](OPENBLAS_THREADS)
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(f"reference/ needs Keras on the TensorFlow backend; "
                           f"KERAS_BACKEND is {keras.backend.backend()!r}")
    try:
        tf.config.threading.set_intra_op_parallelism_threads(TF_THREADS["intra_op"])
        tf.config.threading.set_inter_op_parallelism_threads(TF_THREADS["inter_op"])
    except RuntimeError:
        pass  # the runtime already started (another module ran TF ops); settings() tells


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        return names[0] if names else platform.processor() or "unknown"
    except OSError:
        return platform.processor() or "unknown"


def settings():
    """The versions and thread settings in force, for the record of a comparison."""
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "machine": platform.machine(),
        "processor": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "openblas_threads": openblas_threads(),
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL"),
        "argv": sys.argv[1:],
    }


configure()
