"""Every kernel in nn.fast.registry against its NumPy twin, on the registry's own inputs.

Tolerance, derived: each output of a non-exact kernel is a sum of at most K
terms (the registry's `terms`), each a product of two inputs. Adding them in
another order and fusing a*b + c changes the sum by at most 2 K u sum|terms|
(u = 2**-53 in float64), and sum|terms| <= K * max|input|**2, so we allow
4 K**2 u max(1, max|input|)**2, doubled for the softmax family's exp and log
(NumPy's and libm's, each within a few ulp). A chunk of train_steps compounds
over its steps: the registry counts K = steps * widest sum. Exact kernels do
the twin's operations in its order: bit for bit.
"""

import numpy as np
import pytest

from nn.fast.registry import KERNELS, copied, load

pytest.importorskip("numba")


def arrays(value):
    """Every ndarray in value (arrays, scalars, tuples and NamedTuples of them), in order."""
    if isinstance(value, np.ndarray):
        return [value]
    if isinstance(value, tuple):
        return [a for item in value for a in arrays(item)]
    if isinstance(value, np.generic):
        return [np.asarray(value)]
    return [np.asarray(value)] if isinstance(value, (float, int)) else []


@pytest.mark.parametrize("kernel", KERNELS, ids=[k.name for k in KERNELS])
def test_fast_kernel_matches_its_twin(kernel):
    args = kernel.sample(np.random.default_rng(0), np.float64, "small")
    results = []
    for path in (kernel.fast, kernel.twin):
        mine = copied(args)
        out = load(path)(*mine)
        results.append(arrays(out) + arrays(mine))  # outputs and whatever was updated in place
    fast, twin = results
    assert len(fast) == len(twin)
    scale = max([1.0] + [float(np.abs(a).max()) for a in arrays(args)
                         if a.size and a.dtype.kind == "f"])
    bound = 8 * kernel.terms(args) ** 2 * np.finfo(np.float64).eps / 2 * scale**2
    for got, want in zip(fast, twin):
        assert got.shape == want.shape and got.dtype == want.dtype, kernel.name
        if kernel.exact:
            np.testing.assert_array_equal(got, want, err_msg=kernel.name)
        else:
            np.testing.assert_allclose(got, want, rtol=0, atol=bound, err_msg=kernel.name)


def test_every_backend_kernel_is_registered():
    from nn.kernels import KERNELS as BACKEND_KERNELS

    assert set(BACKEND_KERNELS) <= {k.name for k in KERNELS}
