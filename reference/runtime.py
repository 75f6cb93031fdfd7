"""TensorFlow set up once for reproducible comparisons, and a record of the settings."""

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


def configure():
    """Pin TensorFlow's thread pools (a no-op once TensorFlow's runtime has started)."""
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
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
        "openblas_threads_in_force": reference.OPENBLAS_THREADS_IN_FORCE,
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL"),
        "argv": sys.argv[1:],
    }


configure()
