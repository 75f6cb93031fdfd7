"""The seed recipe written the way a competent user of each framework would write it.

Every runner trains 784 -> 128 relu -> 32 relu -> 10 softmax with Adam
(lr 1e-3, eps 1e-7 as Keras) on the same 48,000 examples, reshuffled every
epoch, and returns (seconds of each epoch, test accuracy). Timings stop only
once the framework has finished its work (block_until_ready for JAX).
"""

import os
import time

import numpy as np


#: batch size -> steps run on each thread count in nn's last fit at that batch
#: size (history.params["thread_steps"]; None on the NumPy backend).
THREAD_STEPS = {}


def run_nn(backend, data, batch_size, epochs, seed, target=None, skip_zeros="auto",
           threads=None):
    """nn's fit (fused steps) on `backend`, with or without first-layer zero-skipping."""
    from nn.callbacks import Callback
    from nn.fast import config
    from nn.recipe import seed_model

    class Timer(Callback):
        def on_train_begin(self, logs=None):
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.start)
            if target and model.evaluate(x_test, y_test, batch_size=1024)[1] >= target:
                self.reached = time.time()
                model.stop_training = True

    config.SKIP_ZEROS, config.NUM_THREADS = skip_zeros, threads or config.NUM_THREADS
    config.ADAPTIVE_THREADS = config.ADAPTIVE_THREADS and threads is None
    (x, y), (x_test, y_test) = data
    model, timer = seed_model(seed=seed, backend=backend), Timer()
    timer.reached = None
    history = model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=[timer])
    THREAD_STEPS[batch_size] = history.params.get("thread_steps")
    return timer.seconds, model.evaluate(x_test, y_test, batch_size=1024)[1], timer.reached


def run_keras(data, batch_size, epochs, seed, target=None):
    """keras.Sequential + model.fit, defaults as the notebook (TensorFlow backend)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    keras.utils.set_random_seed(seed)
    (x, y), (x_test, y_test) = data
    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(),
                              keras.layers.Dense(128, activation="relu"),
                              keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    seconds, start, reached = [], [0.0], [None]

    def epoch_end(epoch, logs):
        seconds.append(time.perf_counter() - start[0])
        if target and model.evaluate(x_test, y_test, batch_size=1024, verbose=0)[1] >= target:
            reached[0] = time.time()
            model.stop_training = True

    timer = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda e, logs: start.__setitem__(0, time.perf_counter()),
        on_epoch_end=epoch_end)
    model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=[timer])
    return (seconds, float(model.evaluate(x_test, y_test, batch_size=1024, verbose=0)[1]),
            reached[0])


def run_torch(data, batch_size, epochs, seed, target=None):
    """PyTorch eager: nn.Sequential, CrossEntropyLoss on logits, fused Adam."""
    import torch

    torch.manual_seed(seed)
    (x, y), (x_test, y_test) = data
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 128), torch.nn.ReLU(),
                              torch.nn.Linear(128, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7, fused=True)
    loss_fn = torch.nn.CrossEntropyLoss()
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    gen, seconds, reached = torch.Generator().manual_seed(seed), [], None

    def accuracy():
        with torch.no_grad():
            pred = net(torch.from_numpy(x_test)).argmax(dim=1).numpy()
        return float(np.mean(pred == y_test))

    for _ in range(epochs):
        start = time.perf_counter()
        perm = torch.randperm(len(xs), generator=gen)
        for i in range(0, len(xs), batch_size):
            idx = perm[i:i + batch_size]
            opt.zero_grad(set_to_none=True)
            loss_fn(net(xs[idx]), ys[idx]).backward()
            opt.step()
        seconds.append(time.perf_counter() - start)
        if target and accuracy() >= target:
            reached = time.time()
            break
    return seconds, accuracy(), reached


def run_jax(data, batch_size, epochs, seed, target=None, scan=True):
    """JAX: a jitted step (scan=False) or the whole epoch jitted in lax.scan (scan=True)."""
    import jax
    import jax.numpy as jnp

    (x, y), (x_test, y_test) = data
    rng = np.random.default_rng(seed)
    params = []
    for n_in, n_out in ((784, 128), (128, 32), (32, 10)):  # Glorot-uniform, zero bias
        limit = np.sqrt(6 / (n_in + n_out))
        params.append((jnp.asarray(rng.uniform(-limit, limit, (n_in, n_out)), jnp.float32),
                       jnp.zeros(n_out, jnp.float32)))

    def logits(params, xb):
        h = xb.reshape(xb.shape[0], -1)
        for w, b in params[:-1]:
            h = jax.nn.relu(h @ w + b)
        return h @ params[-1][0] + params[-1][1]

    def loss(params, xb, yb):
        logp = jax.nn.log_softmax(logits(params, xb))
        return -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=1))

    def step(state, batch):  # Adam as Keras: eps added to sqrt(v), bias terms folded in alpha
        params, m, v, t = state
        grads = jax.grad(loss)(params, *batch)
        t = t + 1
        alpha = 1e-3 * jnp.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
        m = jax.tree.map(lambda m, g: m + (g - m) * 0.1, m, grads)
        v = jax.tree.map(lambda v, g: v + (g * g - v) * 0.001, v, grads)
        params = jax.tree.map(lambda p, m, v: p - m * alpha / (jnp.sqrt(v) + 1e-7), params, m, v)
        return (params, m, v, t), None

    @jax.jit
    def full_batches(state, xs, ys, perm):  # lax.scan over the epoch's full batches
        steps = perm.shape[0] // batch_size
        idx = perm[:steps * batch_size].reshape(steps, batch_size)
        return jax.lax.scan(lambda s, i: step(s, (xs[i], ys[i])), state, idx)[0]

    step_jit = jax.jit(lambda state, xs, ys, idx: step(state, (xs[idx], ys[idx]))[0])
    zeros = jax.tree.map(jnp.zeros_like, params)
    state = (params, zeros, zeros, jnp.float32(0))
    xs, ys, seconds, reached = jnp.asarray(x), jnp.asarray(y), [], None

    def accuracy():
        return float(np.mean(np.asarray(logits(state[0], jnp.asarray(x_test)).argmax(axis=1))
                             == y_test))

    for _ in range(epochs):
        start = time.perf_counter()
        perm = rng.permutation(len(x))
        full = len(x) // batch_size * batch_size
        if scan:
            state = full_batches(state, xs, ys, jnp.asarray(perm))
        else:
            for i in range(0, full, batch_size):
                state = step_jit(state, xs, ys, jnp.asarray(perm[i:i + batch_size]))
        if full < len(x):  # the short last batch, as every other runner keeps it
            state = step_jit(state, xs, ys, jnp.asarray(perm[full:]))
        jax.block_until_ready(state)
        seconds.append(time.perf_counter() - start)
        if target and accuracy() >= target:
            reached = time.time()
            break
    return seconds, accuracy(), reached


#: framework name -> (module that must import,
#: runner(data, batch_size, epochs, seed, target) -> (epoch seconds, test accuracy, reached)).
RUNNERS = {
    "nn-numba": ("numba", lambda *a: run_nn("numba", *a)),
    "nn-numba-dense": ("numba", lambda *a: run_nn("numba", *a, skip_zeros="0")),
    "nn-numba-1t": ("numba", lambda *a: run_nn("numba", *a, threads=1)),
    "nn-numpy": ("numpy", lambda *a: run_nn("numpy", *a)),
    "keras": ("keras", run_keras),
    "torch": ("torch", run_torch),
    "jax": ("jax", run_jax),
    "jax-step": ("jax", lambda *a: run_jax(*a, scan=False)),
}
