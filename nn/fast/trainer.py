"""Fast engine: `fit(engine="fused")`, whole chunks of steps of a Dense chain in one call.

For a model whose logits come from a chain of Dense layers (after any
Flatten), trained by Adam on the sparse cross-entropy, `FusedTrainer` runs an
epoch as a few calls to `train_steps` (nn.fast.steps on the numpy backend,
its compiled twin nn.fast.numba_steps on numba), each taking a chunk of steps
with no Python between them. It takes the same batches, in the same order,
with the same arithmetic as the teaching path (the NumPy train_steps *is*
that path, as a loop), and then replays every batch's figures to the
callbacks, so `fit`'s semantics and its History are unchanged. Callbacks see
each batch's logs once its chunk has run; the weights they can read then are
those at the end of the chunk, and each layer's `grads` hold the gradient of
the chunk's last step.
"""

import contextlib
import math
import time

import numpy as np

from nn.callbacks import Callback
from nn.fast import config, steps_for
from nn.fast.steps import AdamSteps, Batches, Chain, line_aligned, param_views
from nn.fast.threads import ThreadChoice
from nn.layers import Dense, Flatten
from nn.nonfinite import BadStep
from nn.optimizers import Adam
from nn.scaled import ScaledImages

#: Examples per call (a chunk), and at least MIN_CHUNK_STEPS steps: small
#: enough for the progress bar to move every 10-70 ms, large enough that the
#: Python between calls (the non-finite check, copying the weights back to
#: the layers, the batches' logs: 0.5-0.6 ms a chunk here) stays at a few
#: percent of a chunk: 128 steps at batch 32 take about 12 ms on two threads,
#: and 4 steps at batch 1024 took 8-10 ms, which the minimum makes 16.
CHUNK_EXAMPLES = 4096
MIN_CHUNK_STEPS = 16


def _flat(x):
    """x (N, ...) as a C-contiguous (N, features) array (a view when it already is).

    A ScaledImages stays one, its images seen as (N, features).
    """
    if isinstance(x, ScaledImages):
        return x.reshape(len(x), -1)
    return np.ascontiguousarray(x.reshape(len(x), -1))


def _threads(steps, count, sparse):
    """The steps module's thread settings for a chunk of steps (a no-op without any).

    On the compressed-row path numba's threads share the first layer and BLAS
    sees only small products, so BLAS gets one thread; on the BLAS path the
    large products get every core and numba none. Never both: two pools of
    spinning threads on the same cores slow each other down many times over.
    """
    knob = getattr(steps, "thread_counts", None)
    if knob is None:
        return contextlib.nullcontext()
    return knob(count, 1) if sparse else knob(1, count)


def chain_layers(model):
    """The Dense chain the fused engine trains, or a sentence saying why this model has none."""
    if not isinstance(model.optimizer, Adam):
        return "the optimizer is not Adam"
    layers = list(model._logit_layers())
    while layers and isinstance(layers[0], Flatten):
        layers.pop(0)
    if not layers or not all(isinstance(lyr, Dense) and lyr.activation in (None, "relu")
                             for lyr in layers):
        return ("its layers are not a chain of Dense layers (after any Flatten) with ReLU or "
                "no activation, ending in the softmax output")
    if [id(p) for lyr in layers for p in lyr.params.values()] != [
            id(lyr.params[k]) for lyr, k in model.parameter_refs()]:
        return "some parameters lie outside the Dense chain"
    return layers


class FusedTrainer:
    """Runs `fit`'s epochs for one model through a backend's train_steps."""

    def __init__(self, model, dense_layers, x):
        self.model = model
        self.layers = dense_layers
        self.steps = steps_for(model.backend_name)
        self.shapes = np.array([lyr.params["kernel"].shape for lyr in dense_layers], np.int64)
        self.relu = np.array([lyr.activation == "relu" for lyr in dense_layers])
        self.threads = config.NUM_THREADS
        empty = (np.empty(0, np.int64), np.empty(0, np.int32), np.empty(0, model.dtype))
        # Compressed rows of the training inputs, built once for the whole fit
        # (x cannot change during it): the steps then never scan zeros again.
        # (A ScaledImages' uint8 images have the same zeros as its floats, counted without them.)
        self.rows = (self.steps.nonzero_rows(_flat(x))
                     if config.skip_zeros(x.images if isinstance(x, ScaledImages) else x) else empty)
        # The count may move between parts only where it cannot change a bit: on the
        # compressed-row path. The BLAS path's products round as OpenBLAS blocks them,
        # which depends on its thread count, so a run there keeps one count throughout.
        self.choice = ThreadChoice(self.threads, config.ADAPTIVE_THREADS and len(self.rows[0]) > 0
                                   and hasattr(self.steps, "thread_counts"))
        self.inputs = self._inputs(x)
        # Steps with a serial twin of the parallel ones start on it and compile
        # the parallel ones once the first chunk is reported: until then, one
        # thread. A run fixed on one thread moves to them too, as one task (a
        # faster loop for the same bits: numba_steps._parallel_compiled).
        self.parts = 0
        if len(self.rows[0]) and self.choice.counts[0] == 1 and hasattr(self.steps, "compile_parallel"):
            self.choice.cap = 1

    def _inputs(self, x):
        """What Batches.x holds for a ScaledImages x (None: x itself, flattened, every epoch).

        The NumPy steps index it as they would its float array. The compiled
        steps need an array: on the compressed-row path they read only its
        row count, so an (N, 0) array stands in, costing nothing; the BLAS
        path reads every input and gets the whole float array, made once.
        """
        if not isinstance(x, ScaledImages) or self.steps.NAME == "numpy":
            return None
        if len(self.rows[0]):
            return np.empty((len(x), 0), x.dtype)
        return np.asarray(_flat(x))

    @property
    def thread_steps(self):
        """{thread count: steps run on it} so far, or None for steps with no thread knob (NumPy).

        On the compressed-row path results do not depend on it, only the time does.
        """
        if not hasattr(self.steps, "thread_counts"):
            return None
        return dict(sorted(self.choice.steps.items()))

    def _arrays(self):
        """Parameters, first moments and second moments, each a list in Keras's order."""
        model, opt = self.model, self.model.optimizer
        params = [lyr.params[k] for lyr, k in model.parameter_refs()]
        state = opt.state_for(params)
        return params, state.m, state.v

    def _pack(self):
        """Flat copies (P,) of the weights and Adam's moments, in Keras's order, each
        starting a cache line (see line_aligned)."""
        flats = []
        for arrays in self._arrays():
            flat = line_aligned(sum(a.size for a in arrays), arrays[0].dtype)
            np.concatenate([a.ravel() for a in arrays], out=flat)
            flats.append(flat)
        return flats

    def _unpack(self, flats, grads):
        """Copy flat weights and moments back into the layers and the optimizer; grads into layers."""
        for arrays, flat in zip(self._arrays(), flats):
            for dest, src in zip(arrays, [a for pair in param_views(flat, self.shapes) for a in pair]):
                dest[...] = src
        for layer, (kernel, bias) in zip(self.layers, param_views(grads, self.shapes)):
            # Item by item: the softmax layer's logits view shares its grads dict.
            layer.grads["kernel"], layer.grads["bias"] = kernel.copy(), bias.copy()

    def run_epoch(self, x, y, order, batch_size, hooks, start=0, sums=(0.0, 0, 0)):
        """One epoch over x[order] in batches from step `start`; calls the hooks per batch; returns the logs.

        sums: (loss sum, correct, examples seen) of the steps before `start`.
        A chunk whose losses, weights or moments end non-finite is undone and
        replayed step by step up to the bad step (`_good_steps`); the steps
        before it are kept, their hooks run, then BadStep is raised.
        """
        model, opt, dtype = self.model, self.model.optimizer, self.model.dtype
        x = _flat(x) if self.inputs is None else self.inputs
        y, order = y.astype(np.int64, copy=False), order.astype(np.int64, copy=False)
        batch_size = min(batch_size, len(order))  # the same batches; scratch sized by the data
        steps, chunk = math.ceil(len(order) / batch_size), max(MIN_CHUNK_STEPS, CHUNK_EXAMPLES // batch_size)
        flats = self._pack()
        grads = line_aligned(flats[0].shape, flats[0].dtype)
        grads[:] = 0
        chain = Chain(self.shapes, self.relu, *flats, grads)
        batches = Batches(x, y, order, batch_size, *self.rows)
        _, c1, c2, eps = opt.coefficients(1, dtype)  # only alpha depends on the step
        tasks = max(self.choice.counts)
        scratch = getattr(self.steps, "scratch_for", lambda *a: None)(chain, batches, tasks)
        (loss_sum, correct_sum, seen), logs = sums, model.running_logs(sums)
        # Only callbacks that act on each batch are called per batch (the rest
        # would do nothing, 128 times a chunk); their logs are made only for them.
        listeners = [hook for hook in hooks if _acts_per_batch(hook)]
        before = [np.empty_like(f) for f in flats]  # a chunk's starting state, to undo it

        def train(first, alphas, losses, correct):
            adam = AdamSteps(alphas, c1, c2, eps)
            self._train_steps(chain, batches, first, adam, losses, correct, scratch)

        for first in range(start, steps, chunk):
            count = min(chunk, steps - first)
            losses, correct = np.empty(count, dtype), np.empty(count, np.int64)
            alphas = opt.alphas(opt.iterations + 1, count, dtype)
            for dest, src in zip(before, flats):
                np.copyto(dest, src)
            with np.errstate(all="ignore"):  # non-finite values are caught just below
                train(first, alphas, losses, correct)
            bad = None
            if not _finite(losses, flats):
                for dest, src in zip(flats, before):
                    dest[...] = src
                count = self._good_steps(train, first, alphas, losses, correct, flats, chain.grads)
                bad = count if count < len(alphas) else None
            opt.state = opt.state._replace(count=opt.iterations + count)
            self._unpack(flats, chain.grads)
            for s in range(count):  # the teaching path's running means, step by step
                size = min(batch_size, len(order) - (first + s) * batch_size)
                loss_sum += float(losses[s]) * size
                correct_sum += int(correct[s])
                seen += size
                if s == count - 1:  # the model's state is now that after this step
                    model._progress.update(step=first + count, sums=(loss_sum, correct_sum, seen))
                if listeners:
                    logs = model.running_logs((loss_sum, correct_sum, seen))
                    for hook in listeners:
                        hook.on_train_batch_end(first + s, logs)
            if bad is not None:
                raise BadStep(first + bad)
        # The last batch's logs, as the teaching path returns them (a callback may
        # have added to them, and History keeps what it added).
        return logs if listeners else model.running_logs((loss_sum, correct_sum, seen))

    def _train_steps(self, chain, batches, first, adam, losses, correct, scratch):
        """train_steps over one chunk, in parts whose thread counts self.choice picks.

        On the compressed-row path results do not depend on the count, so only
        the time does; the BLAS path's choice has one count (see __init__).
        """
        done, total = 0, len(adam.alphas)
        while done < total:
            threads, count = self.choice.part(total - done)
            part = slice(done, done + count)
            start = time.perf_counter()
            with _threads(self.steps, threads, len(self.rows[0]) > 0):
                self.steps.train_steps(chain, batches, first + done,
                                       adam._replace(alphas=adam.alphas[part]), threads,
                                       losses[part], correct[part], scratch)
            self.choice.record(threads, count, time.perf_counter() - start)
            done += count
            if self.choice.cap is not None:
                self._offer_parallel(chain, batches, adam, scratch, losses, correct)

    def _offer_parallel(self, chain, batches, adam, scratch, losses, correct):
        """After the second capped part (the first chunk's batches are reported by then),
        compile the parallel steps and offer every thread count once they are ready
        (a compile helper may still be compiling them: then ask again after the next part)."""
        self.parts += 1
        if self.parts >= 2 and self.steps.compile_parallel(chain, batches, adam, scratch, losses, correct):
            self.choice.cap = None

    @staticmethod
    def _good_steps(train, first, alphas, losses, correct, flats, grads):
        """Replay a chunk one step at a time from its start; stop before the first non-finite one.

        Returns how many steps were fine; flats, grads, losses and correct
        then hold the state and figures after the last good step.
        """
        for s in range(len(alphas)):
            before = [f.copy() for f in flats] + [grads.copy()]
            loss, ok = np.empty(1, losses.dtype), np.empty(1, np.int64)
            with np.errstate(all="ignore"):
                train(first + s, alphas[s:s + 1].copy(), loss, ok)
            if not _finite(loss, flats):
                for dest, src in zip(flats + [grads], before):
                    dest[...] = src
                return s
            losses[s], correct[s] = loss[0], ok[0]
        return len(alphas)  # each step alone stayed finite: the chunk is kept as replayed


def _acts_per_batch(hook):
    """Whether a callback's on_train_batch_end does anything (it is not Callback's empty one)."""
    method = getattr(hook, "on_train_batch_end", None)
    return getattr(method, "__func__", method) is not Callback.on_train_batch_end


def _finite(losses, flats):
    """True when every loss and every entry of the flat weights and moments is finite."""
    return bool(np.isfinite(losses).all()) and all(np.isfinite(f).all() for f in flats)
