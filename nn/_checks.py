"""Argument checks shared by the public API.

Each check either returns a clean array/value or raises `InputError` with one
sentence naming the argument, what was expected and what arrived. Nothing is
modified in place: callers' arrays are never touched.
"""

import numbers

import numpy as np

from nn.errors import InputError


def _as_array(value, name):
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested lists and the like
        raise InputError(f"{name} must be an array-like of numbers; {exc}") from None


def as_features(x, name, dtype, sample_shape=None):
    """x as a finite array of `dtype` shaped (N, *sample_shape), N >= 1."""
    arr = _as_array(x, name)
    if arr.dtype.kind not in "biuf":
        raise InputError(
            f"{name} must hold real numbers (bool, int or float); got dtype {arr.dtype}"
        )
    if arr.ndim < 2:
        raise InputError(
            f"{name} must have a batch axis first, shape (N, ...); got shape "
            f"{arr.shape} (for one example use {name}[None])"
        )
    if arr.shape[0] == 0:
        raise InputError(f"{name} is empty (shape {arr.shape}); it needs at least one example")
    if sample_shape is not None and arr.shape[1:] != tuple(sample_shape):
        raise InputError(
            f"{name} must be shaped (N, {', '.join(map(str, sample_shape))}) for this "
            f"model; got {arr.shape}"
        )
    with np.errstate(over="ignore"):  # overflow to inf is reported just below
        out = np.ascontiguousarray(arr, dtype=dtype)
    if out.dtype.kind == "f" and not np.isfinite(out).all():
        bad = int(np.size(out) - np.count_nonzero(np.isfinite(out)))
        raise InputError(
            f"{name} contains {bad} NaN or infinite value(s) (after conversion to "
            f"{np.dtype(dtype).name}); clean or rescale the data first"
        )
    return out


def as_labels(y, name, num_classes, n=None, other="x"):
    """y as an int64 vector of class indices in [0, num_classes), length n (that of `other`)."""
    arr = _as_array(y, name)
    if arr.ndim == 2 and arr.shape[1] == 1:  # Keras accepts (N, 1) sparse labels
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise InputError(f"{name} must be a vector of class indices, shape (N,); got {arr.shape}")
    if arr.shape[0] == 0:
        raise InputError(f"{name} is empty; it needs at least one label")
    if arr.dtype.kind == "f":
        if not (np.isfinite(arr).all() and (arr == np.round(arr)).all()):
            raise InputError(f"{name} must hold whole numbers (class indices); got non-integer floats")
    elif arr.dtype.kind not in "iub":
        raise InputError(f"{name} must hold integer class indices; got dtype {arr.dtype}")
    if n is not None and arr.shape[0] != n:
        raise InputError(f"{name} has {arr.shape[0]} labels but {other} has {n}; they must match")
    lo, hi = arr.min(), arr.max()
    if lo < 0 or hi >= num_classes:
        raise InputError(
            f"{name} must hold class indices in [0, {num_classes - 1}]; found values from {lo} to {hi}"
        )
    return arr.astype(np.int64)


def positive_int(value, name):
    """value as an int >= 1 (bools and floats such as 32.0 are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise InputError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def fraction(value, name):
    """value as a float in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise InputError(f"{name} must be a number in [0, 1); got {value!r}")
    return float(value)


def float_dtype(value, name="dtype"):
    """value as np.float32 or np.float64 ("float32", np.float64, ...; not None)."""
    try:
        dt = None if value is None else np.dtype(value)
    except TypeError:  # an unknown name: "nonsense", "Float32", "float32 "
        dt = None
    # dt is tested for None explicitly: np.dtype(None) is float64, and NumPy
    # compares None == np.dtype("float64") as True.
    if dt is None or dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise InputError(f"{name} must be 'float32' or 'float64'; got {value!r}")
    return dt


def shape(value, name):
    """value as a tuple of positive ints, the shape of one example: (784,), (28, 28)."""
    if not isinstance(value, (tuple, list)) or not value or not all(
            isinstance(d, numbers.Integral) and not isinstance(d, bool) and d >= 1 for d in value):
        raise InputError(f"{name} must be a tuple of positive integers such as (784,) or "
                         f"(28, 28); got {value!r}")
    return tuple(int(d) for d in value)


def seed(value, name="seed"):
    """value as None or a non-negative int, as np.random.SeedSequence takes."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise InputError(f"{name} must be None or a non-negative integer; got {value!r}")
    return int(value)
