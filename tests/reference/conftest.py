"""Fixtures and derived tolerances for the Keras reference tests.

Tolerances here follow one rule, stated once: a float result reached through
a chain of sums with N terms in all (summed in any order, blocked or not)
carries a rounding error that behaves like a random walk of N steps of
relative size u, so about sqrt(N) u relative to the result's scale (Higham
and Mary, SIAM J. Sci. Comput. 41, 2019). Two implementations err
independently, so they may differ by twice that: the tolerance below. u is
the unit roundoff: 2^-24 = 6.0e-8 in float32, 2^-53 = 1.1e-16 in float64.
"""

import numpy as np
import pytest

pytest.importorskip("tensorflow",
                    reason="the Keras reference needs TensorFlow (pip install -e .[test])")

from nn.recipe import scale_images  # noqa: E402

#: Terms summed on the way to the seed network's logits: 784 + 1 (bias),
#: then 128 + 1, then 32 + 1.
FORWARD_TERMS = 785 + 129 + 33
#: ... and on to a weight's gradient: back through the 10- and 32-wide
#: layers (10 + 32 terms) and over the batch of 32.
GRADIENT_TERMS = FORWARD_TERMS + 10 + 32 + 32


@pytest.fixture(scope="session")
def seed_terms():
    """Summed terms on the seed network's longest chains: {"forward": ..., "gradient": ...}."""
    return {"forward": FORWARD_TERMS, "gradient": GRADIENT_TERMS}


def _unit_roundoff(dtype):
    return float(np.finfo(dtype).eps) / 2


def _chain_tolerance(terms, dtype):
    return 2 * np.sqrt(terms) * _unit_roundoff(dtype)


@pytest.fixture(scope="session")
def unit_roundoff():
    """u(dtype): 2^-24 for float32, 2^-53 for float64."""
    return _unit_roundoff


@pytest.fixture(scope="session")
def chain_tolerance():
    """tol(N, dtype) = 2 sqrt(N) u: how far two implementations of an N-term chain may differ."""
    return _chain_tolerance


@pytest.fixture(scope="session")
def twin():
    """reference.twin, imported once TensorFlow is known to be there."""
    from reference import twin as module

    return module


@pytest.fixture(scope="session", params=["float32", "float64"])
def dtype(request):
    """Each dtype in turn."""
    return request.param


@pytest.fixture(scope="session")
def train_split(mnist):
    """uint8 training images and labels, split as fit(validation_split=0.2) does: 48,000 first."""
    (x, y), _ = mnist
    return x[:48000], y[:48000]


@pytest.fixture(scope="session")
def max_logit():
    """max_logit(model, x): largest |logit| of a Dense-ReLU-...-Dense-softmax model, in float64."""
    def compute(model, x):
        weights = [np.asarray(w, np.float64) for w in model.get_weights()]
        h = np.asarray(x, np.float64).reshape(len(x), -1)
        for i in range(0, len(weights), 2):
            h = h @ weights[i] + weights[i + 1]
            if i + 2 < len(weights):
                h = np.maximum(h, 0)
        return float(np.abs(h).max())

    return compute


@pytest.fixture(scope="session")
def batch(train_split):
    """batch(dtype, start=0, size=32): training images scaled as the recipe does, and labels."""
    images, labels = train_split

    def make(dtype, start=0, size=32):
        return scale_images(images[start:start + size], dtype), labels[start:start + size]

    return make
