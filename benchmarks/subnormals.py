"""What flushing subnormals to zero buys and changes: two seed trainings side by side.

    python benchmarks/subnormals.py [--epochs 4] [--batch-size 32] [--threads 1] [--json F]

Trains the seed network on MNIST twice from the same weights and batches, on
the numba engine: once with IEEE subnormals (NN_FLUSH_SUBNORMALS=0) and once
flushing them to zero (the default, nn.fast.subnormals), an epoch of one and
then an epoch of the other, so both see the machine alike. After each epoch
it prints both epochs' seconds, how many Adam moments of the IEEE run are
subnormal (below 1.2e-38 in float32), and how many weights and moments differ
in any bit between the two runs.
"""

import argparse
import os
import time

import numpy as np
from _common import dense_chain, load_mnist, write_json


def subnormal_count(arrays):
    tiny = np.finfo(arrays[0].dtype).tiny
    return int(sum(np.count_nonzero((a != 0) & (np.abs(a) < tiny)) for a in arrays))


def differing(a, b):
    return int(sum(np.count_nonzero(x.view(np.uint8).reshape(x.size, -1) != y.view(np.uint8).reshape(y.size, -1))
                   for x, y in zip(a, b)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", default="1", help="NN_NUM_THREADS for both runs (0: nn's choice)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    os.environ["NN_NUM_THREADS"] = args.threads  # read when nn.fast.config is imported, below
    from nn.fast import config

    (x, y), _ = load_mnist()
    runs = {"ieee": dense_chain((784, 128, 32, 10), "numba"), "flushed": dense_chain((784, 128, 32, 10), "numba")}
    rows = []
    print(f"batch {args.batch_size}, NN_NUM_THREADS={args.threads}")
    print("epoch  IEEE s  flushed s  IEEE/flushed  subnormal m, IEEE  weights differing  moments differing")
    for epoch in range(1, args.epochs + 1):
        seconds = {}
        for name, model in runs.items():
            config.FLUSH_SUBNORMALS = name == "flushed"  # read at each train_steps call
            start = time.perf_counter()
            model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0)
            seconds[name] = time.perf_counter() - start
        ieee, flushed = (runs[k].optimizer.state for k in ("ieee", "flushed"))
        row = {"epoch": epoch, "ieee_s": seconds["ieee"], "flushed_s": seconds["flushed"],
               "subnormal_m_ieee": subnormal_count(ieee.m), "subnormal_v_ieee": subnormal_count(ieee.v),
               "subnormal_moments_flushed": subnormal_count(flushed.m + flushed.v),
               "weights_differing": differing(runs["ieee"].get_weights(), runs["flushed"].get_weights()),
               "moments_differing": differing(ieee.m + ieee.v, flushed.m + flushed.v),
               "parameters": int(sum(w.size for w in runs["ieee"].get_weights()))}
        rows.append(row)
        print(f"{epoch:5d}  {row['ieee_s']:6.3f}  {row['flushed_s']:9.3f}  {row['ieee_s'] / row['flushed_s']:11.2f}x"
              f"  {row['subnormal_m_ieee']:17,d}  {row['weights_differing']:17,d}  {row['moments_differing']:17,d}")
    print(f"of {rows[-1]['parameters']:,} parameters; the first epoch includes compiling")
    write_json(args.json, {"batch_size": args.batch_size, "threads": args.threads, "rows": rows})


if __name__ == "__main__":
    main()
