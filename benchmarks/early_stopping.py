"""What EarlyStopping buys: test accuracy of the seed recipe over seeds, with and without it.

    python benchmarks/early_stopping.py --seeds 0,1,2,3,4 --json docs/results/early_stopping.json

For each seed, the seed recipe (validation_split 0.2, batch 32, Adam) trains
the plain 25 epochs, keeping the weights after every epoch. Training is
deterministic, so a fit with EarlyStopping(monitor="val_loss", patience=3,
restore_best_weights=True) takes exactly these epochs until it stops: the
same EarlyStopping, fed this run's epoch logs, says where it stops and which
epoch's weights it restores, and those weights are evaluated. --verify-seed S
also runs that fit for real for seed S and checks it ends on the same test
accuracy (it must: a mismatch exits 1). Prints test accuracy per seed, then
the mean and its standard error (sample standard deviation / sqrt(seeds)).
"""

import argparse
import json
import math
import statistics
import sys
import time
import types

from nn.callbacks import Callback, EarlyStopping
from nn.datasets import mnist
from nn.recipe import SEED_FIT, scale_images, seed_model


class EveryEpoch(Callback):
    """Keeps each epoch's logs and weights."""

    def on_train_begin(self, logs=None):
        self.logs, self.weights = [], []

    def on_epoch_end(self, epoch, logs=None):
        self.logs.append(dict(logs))
        self.weights.append(self.model.get_weights())


def early_stopping():
    return EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)


def replay(logs, weights):
    """(epochs run, best epoch, weights at the end) of a fit with early_stopping() over these epochs."""
    stand_in = types.SimpleNamespace(stop_training=False, epoch=0, restored=None)
    stand_in.get_weights = lambda: stand_in.epoch
    stand_in.set_weights = lambda w: setattr(stand_in, "restored", w)
    stopper = early_stopping()
    stopper.model, stopper.params = stand_in, {"metrics": list(logs[0])}
    stopper.on_train_begin()
    ran = 0
    for epoch, epoch_logs in enumerate(logs):
        stand_in.epoch = epoch
        stopper.on_epoch_begin(epoch)
        stopper.on_epoch_end(epoch, dict(epoch_logs))
        ran += 1
        if stand_in.stop_training:
            break
    stopper.on_train_end()
    final = weights[ran - 1] if stand_in.restored is None else weights[stand_in.restored]
    return ran, stopper.best_epoch + 1, final


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--verify-seed", type=int, default=None)
    parser.add_argument("--json", default=None)
    parser.add_argument("--combine", nargs="+", default=None, metavar="JSON",
                        help="only summarise the runs in these JSON files (runs split over processes)")
    args = parser.parse_args()
    if args.combine:
        rows = [row for name in args.combine for row in json.load(open(name))["runs"]]
        return summarise(sorted(rows, key=lambda r: r["seed"]), args.json)
    seeds = [int(s) for s in args.seeds.split(",")]
    (x, y), (x_test, y_test) = mnist.load_data(verbose=False)
    x, x_test = scale_images(x), scale_images(x_test)
    rows = []
    for seed in seeds:
        model, record = seed_model(seed=seed), EveryEpoch()
        start = time.perf_counter()
        model.fit(x, y, verbose=0, callbacks=[record], **SEED_FIT)
        seconds = time.perf_counter() - start
        plain = model.evaluate(x_test, y_test)[1]
        ran, best, weights = replay(record.logs, record.weights)
        model.set_weights(weights)
        early = model.evaluate(x_test, y_test)[1]
        rows.append({"seed": seed, "plain_test_accuracy": plain, "early_test_accuracy": early,
                     "early_epochs_run": ran, "early_best_epoch": best, "seconds": seconds,
                     "val_loss": [r["val_loss"] for r in record.logs]})
        print(f"seed {seed}: plain 25 epochs {plain:.4f}; EarlyStopping {early:.4f} (stops after "
              f"{ran} epochs, restores epoch {best}); {seconds:.0f}s", flush=True)
    if args.verify_seed is not None:
        model, stopper = seed_model(seed=args.verify_seed), early_stopping()
        model.fit(x, y, verbose=0, callbacks=[stopper], **SEED_FIT)
        real = model.evaluate(x_test, y_test)[1]
        want = next(r for r in rows if r["seed"] == args.verify_seed)
        print(f"verify seed {args.verify_seed}: a real fit with EarlyStopping ends at {real:.4f} "
              f"(replay: {want['early_test_accuracy']:.4f})")
        if real != want["early_test_accuracy"]:
            sys.exit(1)
    summarise(rows, args.json)


def summarise(rows, path):
    """Print the mean and standard error of both; write every run and the summary to `path`."""
    print()
    result = {"seeds": [r["seed"] for r in rows], "runs": rows, "summary": {}}
    for key, name in (("plain", "plain 25 epochs"),
                      ("early", "EarlyStopping(val_loss, patience=3, restore_best_weights)")):
        accs = [r[f"{key}_test_accuracy"] for r in rows]
        mean = statistics.fmean(accs)
        se = statistics.stdev(accs) / math.sqrt(len(accs)) if len(accs) > 1 else float("nan")
        result["summary"][name] = {"mean": mean, "standard_error": se, "min": min(accs), "max": max(accs)}
        print(f"{name:>58}: {100 * mean:.2f}% +- {100 * se:.2f}% (min {100 * min(accs):.2f}%, "
              f"max {100 * max(accs):.2f}%)")
    epochs = [r["early_epochs_run"] for r in rows]
    print(f"EarlyStopping trains {statistics.fmean(epochs):.1f} epochs on average ({min(epochs)}-{max(epochs)})")
    if path:
        with open(path, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
