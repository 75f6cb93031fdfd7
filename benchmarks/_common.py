"""What every benchmark records: the machine, the versions, the threads; tables and JSON."""

import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # run as `python benchmarks/x.py` from a checkout
    sys.path.insert(0, ROOT)

#: Forward and backward FLOP per example of the seed network (multiply-adds count 2).
SEED_WIDTHS = (784, 128, 32, 10)


def flops_per_example(widths=SEED_WIDTHS):
    """(forward, backward) FLOP per example of a Dense chain: 2 per multiply-add.

    Forward: one matmul per layer. Backward: the kernel gradient per layer and
    the input gradient for every layer but the first (nothing needs dx there).
    """
    pairs = list(zip(widths[:-1], widths[1:]))
    forward = sum(2 * i * o for i, o in pairs)
    backward = forward + sum(2 * i * o for i, o in pairs[1:])
    return forward, backward


def lscpu():
    """lscpu's fields as a dict (empty where lscpu is missing)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}


def cpu_model():
    """The CPU's model name from lscpu (or platform as a fallback)."""
    return lscpu().get("Model name") or platform.processor() or platform.machine()


def git_state():
    """The checkout's commit and whether its tracked files differ from it (None outside git)."""
    def git(*args):
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except OSError:
        return {"commit": None, "dirty": None}
    return {"commit": commit or None, "dirty": dirty if commit else None}


def spread(values):
    """The repeats with their median and interquartile range (pyperf's and pytest-benchmark's
    summary of a timing)."""
    values = [float(v) for v in values]
    if len(values) > 1:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    else:
        q1 = q3 = values[0]
    return {"repeats": values, "median": statistics.median(values), "iqr": q3 - q1,
            "q1": q1, "q3": q3}


def versions():
    """Versions of Python and of every framework that imports here."""
    from importlib import metadata

    found = {"python": platform.python_version(), "numpy": np.__version__}
    for name in ("numba", "llvmlite", "scipy", "tensorflow", "keras", "torch", "jax", "jaxlib"):
        try:  # from the installed metadata: importing TensorFlow just to ask takes seconds
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


#: Environment variables that change how the frameworks compute (threads, BLAS kernels).
ENV_PREFIXES = ("OPENBLAS_", "OMP_", "MKL_", "NUMBA_", "NN_", "XLA_", "TF_ENABLE_", "TF_NUM_",
                "JAX_", "GOTO", "KMP_")


def environment():
    """The variables of ENV_PREFIXES that are set: e.g. OPENBLAS_CORETYPE=Haswell makes
    OpenBLAS (behind NumPy and numba's np.dot) run AVX2 kernels on an AVX-512 machine."""
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith(ENV_PREFIXES)}


def machine():
    """Hardware facts and the load at the start (others' work skews timings)."""
    from nn.fast.config import thread_settings

    info = lscpu()
    caches = {k: v for k, v in info.items() if k.endswith("cache")}
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "platform": platform.platform(),
            "cpu_flags": info.get("Flags", "").split(), "caches": caches,
            "cpu_family_model_stepping": [info.get("CPU family"), info.get("Model"),
                                          info.get("Stepping")],
            "hypervisor": info.get("Hypervisor vendor"),
            "load_average_1m": os.getloadavg()[0], "threads": thread_settings(),
            "environment": environment(), **git_state()}


def matmul_gflops(n=2048, repeats=5):
    """The machine's float32 matmul throughput: median GFLOP/s of an n^3 np.matmul."""
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), np.float32), rng.random((n, n), np.float32)
    a @ b  # warm-up: thread pool start, page faults
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9


def table(rows, columns):
    """A plain-text table of the given (key, header, format) columns."""
    cells = [[h for _, h, _ in columns]]
    for row in rows:
        cells.append([("-" if row.get(k) is None else f.format(row[k])) for k, _, f in columns])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_json(path, payload):
    """Write the results (with machine facts and versions) as indented JSON."""
    if path:
        payload = {"machine": machine(), "versions": versions(), **payload}
        with open(path, "w") as f:
            json.dump(payload, f, indent=1, default=float)
        print(f"wrote {path}")


def load_mnist(train_examples=48000):
    """The seed recipe's data: the first 80% of the training set (what fit trains on
    with validation_split=0.2) and the test set, scaled to [0, 1] float32."""
    from nn.datasets import mnist
    from nn.recipe import scale_images

    (x_train, y_train), (x_test, y_test) = mnist.load_data(verbose=False)
    return ((scale_images(x_train[:train_examples]), y_train[:train_examples].astype(np.int64)),
            (scale_images(x_test), y_test.astype(np.int64)))


def dense_chain(widths, backend, seed=0):
    """Flatten + Dense relu layers + Dense softmax with the given widths, compiled like the seed."""
    from nn import Dense, Flatten, Sequential

    layers = [Flatten(input_shape=(28, 28) if widths[0] == 784 else (widths[0],))]
    layers += [Dense(n, "relu") for n in widths[1:-1]]
    model = Sequential(layers + [Dense(widths[-1], "softmax")], seed=seed, backend=backend)
    model.compile()
    return model


def epoch_seconds(model, x, y, batch_size, epochs):
    """Seconds of each of `epochs` epochs of model.fit on (x, y)."""
    from nn.callbacks import Callback

    class Timer(Callback):
        seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.start)

    timer = Timer()
    timer.seconds = []
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, callbacks=[timer])
    return timer.seconds
