"""Fast engine: the compressed-row path of train_steps, the first layer on every core.

The first layer is nearly all the work (784 x 128 of the 104,938 weights)
and MNIST's inputs are 81% exact zeros (x's compressed rows come from
nn.fast.steps.nonzero_rows, in NumPy: compiling a loop for it took longer
than it saves), so a step is:

- first_layer_rows (parallel): x[idx] @ W1 from x's compressed rows, visiting
  only nonzero inputs; the batch rows are cut into tiles (tile_count), each
  task owning whole tiles, and each tile's nonzeros are grouped by input
  column so that a row of W1 is read once per tile, not once per term.
- the later layers, the loss and their gradients on BLAS (numba_fused):
  small products, on the calling thread.
- first_layer_update (parallel): W1's gradient x^T g, each row of it a sum
  over the batch in row order (tile after tile, from the forward's
  grouping), then Adam on every parameter; the kernel's input rows are cut
  into ranges, so each task owns whole rows of memory.

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
from nn.fast.subnormals import set_mode, task_mode


#: Outputs summed at once in registers: 128 float32 fill 8 of the 32 AVX-512
#: registers, 128 float64 fill 16. One block is a whole row of the seed
#: network's first layer, so a row's every term is added with no store.
BLOCK = 128
#: Most batch rows in a tile of the first layer (tile_count): the forward's
#: sums of a tile's rows, up to TILE x BLOCK (32 KiB of float32), and the
#: gradient's rows of g for a tile stay in L1 (48 KiB here) while the tile
#: visits every column. Tiles hold at most SMALL_TILE rows in batches of
#: fewer than LARGE_BATCH rows: in paired epochs (docs/benchmarks.md) tiles
#: of 64 rows took 0.85-0.87x the time of the untiled kernels at batch 1024,
#: tiles of 32 rows 0.93-0.97x; at batch 128 tiles of 64 took 1.09x, of 32
#: 1.00x.
TILE = 64
SMALL_TILE = 32
LARGE_BATCH = 512
#: Its stack buffer's items (a constant, as _stack_buffer needs).
TILE_ITEMS = TILE * BLOCK


@intrinsic
def _stack_buffer(typingctx, size, dtype):
    """A pointer to `size` (a constant) uninitialized items of `dtype` on the stack, line-aligned.

    Nothing else can point to a fresh stack buffer, so LLVM may keep it in
    registers across a loop that also reads other arrays; an output array
    given as an argument might overlap them, so its elements are stored and
    reloaded on every pass. Its start is a cache line's (64 bytes), so a
    vector of 16 float32 from it never straddles two lines.
    """
    if not isinstance(size, types.IntegerLiteral):
        return None
    count = size.literal_value

    def codegen(context, builder, signature, args):
        item = context.get_value_type(dtype.dtype)
        buffer = cgutils.alloca_once(builder, item, size=ir.Constant(ir.IntType(64), count))
        buffer.align = 64
        return buffer

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
def _rows_times(cols, vals, n, matrix, o, onto):
    """o = (o if onto else 0) + sum over c < n of vals[c] * matrix[cols[c]], c ascending; o (O,).

    Each output is one chain of fused multiply-adds, a term at a time in the
    order given, from +0 (or, with onto, from o's value: a chain stored between
    two calls goes on exactly as if it had not been): exactly
    `o[:] = 0; for c: o += vals[c] * matrix[cols[c]]`.
    BLOCK outputs at a time are summed in a stack buffer (in registers: one
    vector load and multiply-add per 16 float32 per term, nothing stored
    until the block's last term); the outputs after the last whole block,
    all of them when O < BLOCK, take the plain loop.
    """
    width = o.shape[0]
    acc = carray(_stack_buffer(BLOCK, o.dtype), BLOCK)
    whole = width - width % BLOCK
    for j0 in range(0, whole, BLOCK):
        block = o[j0:j0 + BLOCK]  # a view, so the index stays j >= 0 (o[j0 + j] would scatter)
        for j in range(BLOCK):
            acc[j] = block[j] if onto else 0
        for c in range(n):
            a, w = vals[c], matrix[cols[c], j0:j0 + BLOCK]
            for j in range(BLOCK):  # a constant count: LLVM unrolls it over registers
                acc[j] += a * w[j]
        for j in range(BLOCK):
            block[j] = acc[j]
    if whole == width:
        return  # no tail: skip its n empty passes
    tail = o[whole:]
    if not onto:
        for j in range(tail.shape[0]):  # a loop: slice assignment compiles a shape-error formatter
            tail[j] = 0
    for c in range(n):
        a, w = vals[c], matrix[cols[c], whole:]
        for j in range(tail.shape[0]):
            tail[j] += a * w[j]


@njit(**JIT)
def tile_count(rows, pieces):
    """How many tiles a batch of `rows` rows is cut into for `pieces` tasks.

    At least one per task (each task of the forward owns whole tiles), and
    enough that none holds more than TILE rows (SMALL_TILE below LARGE_BATCH
    rows). Tile t holds batch rows rows * t // tiles up to
    rows * (t + 1) // tiles. Every sum keeps its order however the batch is
    cut, so the count changes no result.
    """
    most = TILE if rows >= LARGE_BATCH else SMALL_TILE
    return max(pieces, (rows + most - 1) // most)


@njit(**JIT)
def _tile_columns(batches, idx, b0, b1, starts, rows, vals):
    """Batch rows b0:b1's nonzero inputs grouped by input column, batch rows ascending in each.

    Column k's are rows/vals[starts[k]:starts[k + 1]] (rows: b - b0, a row of
    the tile), for k < len(starts) - 1. A counting sort: count each column's terms into
    starts[k + 1], turn the counts into each column's first place, then put
    every term in place while moving starts[k + 1] on, which leaves it at
    column k's end (and so at column k + 1's start).
    """
    indptr, indices, values = batches.indptr, batches.indices, batches.values
    n_in = starts.shape[0] - 1
    for k in range(n_in + 1):
        starts[k] = 0
    for b in range(b0, b1):
        r = idx[b]
        for c in range(indptr[r], indptr[r + 1]):
            starts[indices[c] + 1] += 1
    at = 0
    for k in range(1, n_in + 1):
        at, starts[k] = at + starts[k], at
    for b in range(b0, b1):
        r = idx[b]
        for c in range(indptr[r], indptr[r + 1]):
            k = indices[c] + 1
            rows[starts[k]], vals[starts[k]] = b - b0, values[c]
            starts[k] += 1


@njit(**JIT_MATMUL)
def _tile_times(starts, rows, vals, b0, b1, matrix, out):
    """out[b0:b1] = x[b0:b1] @ matrix from the tile's terms grouped by column (_tile_columns).

    Column-grouped: input columns k ascending, and for each, every row of
    the tile with a nonzero at k adds vals * matrix[k] to its own sums. So a
    row's every output is still one chain of fused multiply-adds from +0
    over its nonzero inputs in ascending order, the bits of `_rows_times`
    on the row, but each row of matrix is read once per tile instead of once
    per term: the sums of BLOCK outputs of all the tile's rows (at most TILE
    x BLOCK, 32 KiB of float32) stay in L1, where a load and a store per term is
    cheaper than reading matrix's row (for W1, 401 KB) from L2 again.
    """
    n_in, width = matrix.shape
    acc = carray(_stack_buffer(TILE_ITEMS, out.dtype), TILE_ITEMS)
    whole = width - width % BLOCK
    for j0 in range(0, whole, BLOCK):
        for i in range((b1 - b0) * BLOCK):
            acc[i] = 0
        for k in range(n_in):
            if starts[k] == starts[k + 1]:
                continue
            w = matrix[k, j0:j0 + BLOCK]
            for e in range(starts[k], starts[k + 1]):
                a, o = vals[e], acc[rows[e] * BLOCK:]
                for j in range(BLOCK):  # a constant count: LLVM unrolls it over registers
                    o[j] += a * w[j]
        for b in range(b0, b1):
            block, o = out[b, j0:j0 + BLOCK], acc[(b - b0) * BLOCK:]
            for j in range(BLOCK):
                block[j] = o[j]
    if whole == width:
        return
    for b in range(b0, b1):  # the outputs after the last whole block, summed in out itself
        tail = out[b, whole:]
        for j in range(tail.shape[0]):
            tail[j] = 0
    for k in range(n_in):
        w = matrix[k, whole:]
        for e in range(starts[k], starts[k + 1]):
            a, tail = vals[e], out[b0 + rows[e], whole:]
            for j in range(tail.shape[0]):
                tail[j] += a * w[j]


@njit(**JIT_MATMUL)
def _rows_task(batches, idx, kernel, bias, relu, out, scratch, p, pieces):
    """Task p of `pieces` of first_layer_rows: tiles T * p // pieces up to T * (p + 1) // pieces
    of the batch's T = tile_count(B, pieces)."""
    rows, n_in = idx.shape[0], kernel.shape[0]
    tiles = tile_count(rows, pieces)
    for t in range(tiles * p // pieces, tiles * (p + 1) // pieces):
        b0, b1 = rows * t // tiles, rows * (t + 1) // tiles
        starts, cols, vals = scratch.starts[t, :n_in + 1], scratch.cols[t], scratch.vals[t]
        _tile_columns(batches, idx, b0, b1, starts, cols, vals)
        _tile_times(starts, cols, vals, b0, b1, kernel, out)
        for b in range(b0, b1):
            o = out[b]
            for j in range(o.shape[0]):
                z = o[j] + bias[j]
                o[j] = 0 if relu and z < 0 else z  # as bias_act


@njit(parallel=True, **JIT_MATMUL)
def first_layer_rows(batches, idx, kernel, bias, relu, out, scratch, pieces):
    """out (B, O) = act(x[idx] @ kernel + bias) from x's compressed rows, on `pieces` threads.

    The batch is cut into tile_count(B, pieces) tiles of rows; each tile's
    nonzero inputs, grouped by column, stay in scratch (starts, cols, vals
    [t]), where first_layer_update finds them.
    """
    mode = task_mode()  # each task computes in the calling thread's mode (nn.fast.subnormals)
    for p in prange(pieces):
        saved = set_mode(mode)
        _rows_task(batches, idx, kernel, bias, relu, out, scratch, p, pieces)
        set_mode(saved)


@njit(**JIT)
def _gradient_rows(scratch, g, d_kernel, k0, k1, tiles):
    """d_kernel[k0:k1] = rows k0:k1 of x^T g, each the sum over batch rows ascending, from the
    batch's `tiles` tiles grouped by column in scratch (first_layer_rows)."""
    rows = g.shape[0]
    for t in range(tiles):
        starts, cols, vals = scratch.starts[t], scratch.cols[t], scratch.vals[t]
        g_tile = g[rows * t // tiles:rows * (t + 1) // tiles]  # cols are rows of the tile
        for k in range(k0, k1):
            lo, hi = starts[k], starts[k + 1]
            if t == 0 or lo < hi:  # the first tile writes every row, zero when it has no term
                _rows_times(cols[lo:], vals[lo:], hi - lo, g_tile, d_kernel[k], t > 0)


# No fastmath: flags reach the functions this one calls, and Adam must round
# exactly as its twin (fused multiply-adds would not).
@njit(**JIT)
def _update_task(chain, scratch, g, adam, p, pieces):
    """Task p of `pieces` of first_layer_update: W1's input rows n_in * p // pieces up to
    n_in * (p + 1) // pieces, and the same share of the remaining parameters.

    Row k of W1's gradient is the sum over the batch rows b, ascending, of
    x[b, k] * g[b]: tile after tile (first_layer_rows' tiles, with its
    grouping by column), going on from the partial sum the last tile left in
    grads, so that a tile's rows of g (TILE x 512 bytes) stay in L1 while it
    visits every column (at batch 1024 g is 512 KiB, in L2); the first tile
    starts each sum from +0.
    """
    w, grads, m, v = chain.w, chain.grads, chain.m, chain.v
    n_in, n_out = chain.shapes[0, 0], chain.shapes[0, 1]
    d_kernel = grads[:n_in * n_out].reshape(n_in, n_out)
    rest, n_rest = n_in * n_out, w.shape[0] - n_in * n_out
    alpha, one_minus_beta_1, one_minus_beta_2, epsilon = adam
    k0, k1 = n_in * p // pieces, n_in * (p + 1) // pieces
    _gradient_rows(scratch, g, d_kernel, k0, k1, tile_count(g.shape[0], pieces))
    for lo, hi in ((k0 * n_out, k1 * n_out),
                   (rest + n_rest * p // pieces, rest + n_rest * (p + 1) // pieces)):
        adam_flat(w[lo:hi], grads[lo:hi], m[lo:hi], v[lo:hi], alpha, one_minus_beta_1,
                  one_minus_beta_2, epsilon)


@njit(parallel=True, **JIT)
def first_layer_update(chain, scratch, g, adam, pieces):
    """W1's gradient x[idx]^T g, then Adam on every parameter, on `pieces` threads.

    g (B, O): the gradient at the first layer's pre-activations; every other
    gradient must already be in chain.grads (flat, in Keras's order, so W1 is
    grads[:n_in * n_out]); the batch's nonzero inputs in scratch, grouped by
    column per tile (from first_layer_rows with the same `pieces`). Task p
    owns W1's input rows k0:k1: it sums their gradients (each a sum over the
    batch in row order, as the twin's x^T g) and moves exactly those weights,
    a contiguous block. The remaining parameters are cut into equal ranges.
    adam = (alpha, 1 - b1, 1 - b2, eps).
    """
    mode = task_mode()
    for p in prange(pieces):
        saved = set_mode(mode)
        _update_task(chain, scratch, g, adam, p, pieces)
        set_mode(saved)


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
