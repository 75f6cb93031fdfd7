"""predict and evaluate convert and check batch by batch: memory stays near the input's own size."""

import tracemalloc

import numpy as np
import pytest

from nn import InputError
from nn.recipe import seed_model


def peak_mib(fn):
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("method", ["predict", "evaluate"])
def test_uint8_images_are_never_converted_whole(method, rng):
    # 20,000 uint8 images are 15 MiB; converted whole to float32 they would be 60 MiB
    # (and the finiteness check another 15). Batch by batch, the peak is the outputs
    # (20,000 x 10 float32 = 0.8 MiB) plus a few batches of 32: well under 5 MiB.
    model = seed_model(seed=0, backend="numpy")
    x = rng.integers(0, 256, (20_000, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, 20_000)
    call = (lambda: model.predict(x, batch_size=256)) if method == "predict" else (
        lambda: model.evaluate(x, y, batch_size=256))
    result, peak = peak_mib(call)
    assert peak < 5, f"{method} peaked at {peak:.1f} MiB for a 15 MiB input"
    # The same numbers as converting everything first.
    xf = x.astype(np.float32)
    want = model.predict(xf, batch_size=256) if method == "predict" else model.evaluate(xf, y, batch_size=256)
    np.testing.assert_array_equal(result, want)


@pytest.mark.parametrize("method", ["predict", "evaluate"])
def test_a_bad_value_in_a_late_batch_is_still_refused_with_the_whole_count(method, rng):
    model = seed_model(seed=0, backend="numpy")
    x = rng.random((300, 28, 28)).astype(np.float32)
    x[290, 0, 0] = np.nan
    x[2, 3, 4] = np.inf
    args = (x,) if method == "predict" else (x, rng.integers(0, 10, 300))
    with pytest.raises(InputError, match=r"x contains 2 NaN or infinite value\(s\)"):
        getattr(model, method)(*args, batch_size=100)
    with pytest.raises(InputError, match=r"x must be shaped \(N, 28, 28\)"):
        getattr(model, method)(x[:, :27], *args[1:], batch_size=100)
