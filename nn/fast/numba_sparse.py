"""Fast engine: the compressed-row path of train_steps, the first layer on every core.

The first layer is nearly all the work (784 x 128 of the 104,938 weights)
and MNIST's inputs are 81% exact zeros (x's compressed rows come from
nn.fast.steps.nonzero_rows, in NumPy: compiling a loop for it took longer
than it saves), so a step is:

- first_layer_rows (parallel): x[idx] @ W1 from x's compressed rows, visiting
  only nonzero inputs; the batch rows are cut into ranges, one per thread.
- the later layers, the loss and their gradients on BLAS (numba_fused):
  small products, on the calling thread.
- first_layer_update (parallel): W1's gradient x^T g, each row of it a sum
  over the batch in row order, then Adam on every parameter; the kernel's
  input rows are cut into ranges, so each task owns whole rows of memory.

Every sum has one fixed order whatever the number of threads, so the result
does not depend on it. Skipped terms are exact zeros: they change no sum.
Each step also asks the CPU for the next step's compressed rows
(prefetch_ahead), which a real epoch draws from all of x, not from cache.

serial_steps takes the same steps on one thread, calling the task bodies
in turn with no parallel region: it compiles in about half the time (a parfor
is the slowest thing numba compiles), so a run starts on it and
nn.fast.numba_steps compiles the parallel steps later (compile_parallel).
"""

from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.numpy_support import carray

from nn.fast.config import JIT, JIT_MATMUL
from nn.fast.numba_fused import _backward_from, _block, _forward, _loss_gradient, adam_flat, layout


#: Outputs summed at once in registers: 128 float32 fill 8 of the 32 AVX-512
#: registers, 128 float64 fill 16. One block is a whole row of the seed
#: network's first layer, so a row's every term is added with no store.
BLOCK = 128


@intrinsic
def _stack_buffer(typingctx, size, dtype):
    """A pointer to `size` (a constant) uninitialized items of `dtype` on the stack.

    Nothing else can point to a fresh stack buffer, so LLVM may keep it in
    registers across a loop that also reads other arrays; an output array
    given as an argument might overlap them, so its elements are stored and
    reloaded on every pass.
    """
    if not isinstance(size, types.IntegerLiteral):
        return None
    count = size.literal_value

    def codegen(context, builder, signature, args):
        item = context.get_value_type(dtype.dtype)
        return cgutils.alloca_once(builder, item, size=ir.Constant(ir.IntType(64), count))

    return types.CPointer(dtype.dtype)(size, dtype), codegen


@intrinsic
def _prefetch(typingctx, array, i):
    """Ask the CPU to start loading array[i]'s cache line (x86 prefetcht0): a hint that
    reads nothing and changes nothing, so any index is safe."""
    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        byte = ir.IntType(8).as_pointer()
        fetch = cgutils.get_or_insert_function(builder.module, ir.FunctionType(
            ir.VoidType(), [byte] + [ir.IntType(32)] * 3), "llvm.prefetch.p0")
        # (address, 0: read, 3: keep in every cache level, 1: data)
        builder.call(fetch, [builder.bitcast(builder.gep(data, [args[1]]), byte),
                             *(ir.IntType(32)(k) for k in (0, 3, 1))])
        return context.get_dummy_value()

    return types.void(array, i), codegen


@njit(**JIT)
def _batch_rows(batches, step):
    """The rows of x in step `step`'s batch (empty past the epoch's end)."""
    start = min(step * batches.batch_size, batches.order.shape[0])
    return batches.order[start:min(start + batches.batch_size, batches.order.shape[0])]


@njit(**JIT)
def prefetch_ahead(batches, step):
    """Start loading what the next two steps after `step` read first from memory.

    A real epoch's batch is 32 rows drawn from all of x's compressed rows (57
    MiB for MNIST): about 1,300 cache lines that are in no cache, a stall of
    about 15% of the step when each is asked for only as the step reaches it.
    So each step asks early for step + 1's compressed rows (their indptr entries
    were asked for a step before) and for step + 2's indptr entries and labels.
    """
    indptr, indices, values = batches.indptr, batches.indices, batches.values
    for r in _batch_rows(batches, step + 2):
        _prefetch(indptr, r)
        _prefetch(batches.y, r)
    for r in _batch_rows(batches, step + 1):
        lo, hi = indptr[r], indptr[r + 1]
        for c in range(lo, hi, 64 // indices.itemsize):
            _prefetch(indices, c)
        for c in range(lo, hi, 64 // values.itemsize):
            _prefetch(values, c)
        _prefetch(indices, hi - 1)  # the row's last line, when lo is not on a line's start
        _prefetch(values, hi - 1)


@njit(**JIT_MATMUL)
def _rows_times(cols, vals, n, matrix, o):
    """o = sum over c < n of vals[c] * matrix[cols[c]], c ascending; o (O,).

    Each output is one chain of fused multiply-adds from +0, a term at a time
    in the order given: exactly `o[:] = 0; for c: o += vals[c] * matrix[cols[c]]`.
    BLOCK outputs at a time are summed in a stack buffer (in registers: one
    vector load and multiply-add per 16 float32 per term, nothing stored
    until the block's last term); the outputs after the last whole block,
    all of them when O < BLOCK, take the plain loop.
    """
    width = o.shape[0]
    acc = carray(_stack_buffer(BLOCK, o.dtype), BLOCK)
    whole = width - width % BLOCK
    for j0 in range(0, whole, BLOCK):
        for j in range(BLOCK):
            acc[j] = 0
        for c in range(n):
            a, w = vals[c], matrix[cols[c], j0:j0 + BLOCK]
            for j in range(BLOCK):  # a constant count: LLVM unrolls it over registers
                acc[j] += a * w[j]
        block = o[j0:j0 + BLOCK]  # a view, so the index stays j >= 0 (o[j0 + j] would scatter)
        for j in range(BLOCK):
            block[j] = acc[j]
    if whole == width:
        return  # no tail: skip its n empty passes
    tail = o[whole:]
    for j in range(tail.shape[0]):  # a loop: slice assignment compiles a shape-error formatter
        tail[j] = 0
    for c in range(n):
        a, w = vals[c], matrix[cols[c], whole:]
        for j in range(tail.shape[0]):
            tail[j] += a * w[j]


@njit(**JIT_MATMUL)
def _rows_task(batches, idx, kernel, bias, relu, out, scratch, p, pieces):
    """Task p of `pieces` of first_layer_rows: batch rows B * p // pieces up to B * (p + 1) // pieces."""
    indptr, indices, values = batches.indptr, batches.indices, batches.values
    batch_cols, batch_vals, counts = scratch.batch_cols, scratch.batch_vals, scratch.counts
    rows = idx.shape[0]
    for b in range(rows * p // pieces, rows * (p + 1) // pieces):
        r = idx[b]
        n = indptr[r + 1] - indptr[r]
        counts[b] = n
        for c in range(n):  # a loop: slice assignment compiles a shape-error formatter
            batch_cols[b, c] = indices[indptr[r] + c]
            batch_vals[b, c] = values[indptr[r] + c]
        o = out[b]
        _rows_times(batch_cols[b], batch_vals[b], n, kernel, o)
        for j in range(o.shape[0]):
            z = o[j] + bias[j]
            o[j] = 0 if relu and z < 0 else z  # as bias_act


@njit(parallel=True, **JIT_MATMUL)
def first_layer_rows(batches, idx, kernel, bias, relu, out, scratch, pieces):
    """out (B, O) = act(x[idx] @ kernel + bias) from x's compressed rows, on `pieces` threads.

    Row b's nonzero inputs are also copied to scratch.batch_cols[b] and
    batch_vals[b] (counts[b] of them), where first_layer_update finds them in cache.
    """
    for p in prange(pieces):
        _rows_task(batches, idx, kernel, bias, relu, out, scratch, p, pieces)


@njit(**JIT)
def _input_columns(batch_cols, batch_vals, counts, k0, k1, starts, rows, vals):
    """The batch's nonzero inputs in columns k0:k1, grouped by column, batch rows ascending.

    Column k's are rows/vals[starts[k - k0]:starts[k - k0 + 1]].
    """
    starts[:k1 - k0 + 1] = 0
    for b in range(counts.shape[0]):
        for c in range(counts[b]):
            k = batch_cols[b, c]
            if k0 <= k < k1:
                starts[k - k0 + 1] += 1
    for k in range(k1 - k0):
        starts[k + 1] += starts[k]
    fill = starts[:k1 - k0].copy()
    for b in range(counts.shape[0]):
        for c in range(counts[b]):
            k = batch_cols[b, c]
            if k0 <= k < k1:
                rows[fill[k - k0]], vals[fill[k - k0]] = b, batch_vals[b, c]
                fill[k - k0] += 1


# No fastmath: flags reach the functions this one calls, and Adam must round
# exactly as its twin (fused multiply-adds would not).
@njit(**JIT)
def _update_task(chain, scratch, g, adam, p, pieces):
    """Task p of `pieces` of first_layer_update: W1's input rows n_in * p // pieces up to
    n_in * (p + 1) // pieces, and the same share of the remaining parameters."""
    w, grads, m, v = chain.w, chain.grads, chain.m, chain.v
    n_in, n_out = chain.shapes[0, 0], chain.shapes[0, 1]
    starts, cols, vals = scratch.starts, scratch.cols, scratch.vals
    counts = scratch.counts[:g.shape[0]]
    d_kernel = grads[:n_in * n_out].reshape(n_in, n_out)
    rest, n_rest = n_in * n_out, w.shape[0] - n_in * n_out
    alpha, one_minus_beta_1, one_minus_beta_2, epsilon = adam
    k0, k1 = n_in * p // pieces, n_in * (p + 1) // pieces
    _input_columns(scratch.batch_cols, scratch.batch_vals, counts, k0, k1, starts[p], cols[p], vals[p])
    for k in range(k0, k1):
        lo, hi = starts[p, k - k0], starts[p, k - k0 + 1]
        _rows_times(cols[p, lo:], vals[p, lo:], hi - lo, g, d_kernel[k])
    for lo, hi in ((k0 * n_out, k1 * n_out),
                   (rest + n_rest * p // pieces, rest + n_rest * (p + 1) // pieces)):
        adam_flat(w[lo:hi], grads[lo:hi], m[lo:hi], v[lo:hi], alpha, one_minus_beta_1,
                  one_minus_beta_2, epsilon)


@njit(parallel=True, **JIT)
def first_layer_update(chain, scratch, g, adam, pieces):
    """W1's gradient x[idx]^T g, then Adam on every parameter, on `pieces` threads.

    g (B, O): the gradient at the first layer's pre-activations; every other
    gradient must already be in chain.grads (flat, in Keras's order, so W1 is
    grads[:n_in * n_out]); the batch's nonzero inputs in scratch (from
    first_layer_rows). Task p owns W1's input rows k0:k1: it sums their
    gradients (each a sum over the batch in row order, as the twin's x^T g)
    and moves exactly those weights, a contiguous block. The remaining
    parameters are cut into equal ranges. adam = (alpha, 1 - b1, 1 - b2, eps).
    """
    for p in prange(pieces):
        _update_task(chain, scratch, g, adam, p, pieces)


@njit(**JIT)
def sparse_step(chain, batches, idx, adam, scratch, at, pieces):
    """One Adam step of the chain on the batch x[idx] from x's compressed rows: (loss, correct).

    adam = (alpha, 1 - b1, 1 - b2, eps) of this step; at = layout(chain.shapes);
    the first layer's work is cut into `pieces` tasks, run in parallel.
    """
    shapes, relu, w, acts, deltas = chain.shapes, chain.relu, chain.w, scratch.acts, scratch.deltas
    rows, n_in, n_out = idx.shape[0], shapes[0, 0], shapes[0, 1]
    for b in range(rows):
        scratch.labels[b] = batches.y[idx[b]]
    h = _block(acts, 0, rows, n_out)
    first_layer_rows(batches, idx, _block(w, 0, n_in, n_out), w[n_in * n_out:n_in * n_out + n_out],
                     relu[0], h, scratch, pieces)
    logits = _forward(shapes, relu, w, acts, at, rows, h, 1)
    g = _block(deltas, rows * at[2][-2], rows, shapes[-1, 1])
    loss, correct = _loss_gradient(logits, scratch.labels, rows, g)
    _backward_from(shapes, relu, w, chain.grads, h, acts, deltas, at, rows, 1)
    first_layer_update(chain, scratch, _block(deltas, 0, rows, n_out), adam, pieces)
    return loss, correct


@njit(nogil=True, **JIT)
def serial_steps(chain, batches, first_step, adam, scratch, pieces, losses, correct):
    """Steps of train_steps with the first layer's `pieces` tasks run in turn on the calling thread.

    sparse_step's bits with no parallel region (train_steps passes pieces=1).
    The loop over steps and the step are one function: each level of
    compiled calls costs numba another pass of LLVM over all the code below
    it, and this one is on a cold start's critical path. `pieces` comes in at
    run time: with the constants 0 and 1 in the task calls, LLVM made the
    first layer's loop 11% slower. The arguments are train_steps'.
    """
    shapes, relu, w, acts, deltas = chain.shapes, chain.relu, chain.w, scratch.acts, scratch.deltas
    n_in, n_out = shapes[0, 0], shapes[0, 1]
    kernel, bias, at = _block(w, 0, n_in, n_out), w[n_in * n_out:n_in * n_out + n_out], layout(shapes)
    for s in range(adam.alphas.shape[0]):
        idx = _batch_rows(batches, first_step + s)
        prefetch_ahead(batches, first_step + s)
        rows = idx.shape[0]
        for b in range(rows):
            scratch.labels[b] = batches.y[idx[b]]
        h = _block(acts, 0, rows, n_out)
        for p in range(pieces):
            _rows_task(batches, idx, kernel, bias, relu[0], h, scratch, p, pieces)
        logits = _forward(shapes, relu, w, acts, at, rows, h, 1)
        g = _block(deltas, rows * at[2][-2], rows, shapes[-1, 1])
        losses[s], correct[s] = _loss_gradient(logits, scratch.labels, rows, g)
        _backward_from(shapes, relu, w, chain.grads, h, acts, deltas, at, rows, 1)
        step = (adam.alphas[s], adam.one_minus_beta_1, adam.one_minus_beta_2, adam.epsilon)
        for p in range(pieces):
            _update_task(chain, scratch, _block(deltas, 0, rows, n_out), step, p, pieces)
