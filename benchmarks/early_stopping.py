"""What EarlyStopping buys: test accuracy of the seed recipe over seeds, with and without it.

    python benchmarks/early_stopping.py --seeds 0,1,2,3,4 --json docs/results/early_stopping.json

For each seed, the seed recipe (validation_split 0.2, batch 32, Adam) is
trained twice from the same initial weights and shuffles: the plain 25
epochs, and with EarlyStopping(monitor="val_loss", patience=3,
restore_best_weights=True). Prints test accuracy per seed, then the mean and
its standard error (sample standard deviation / sqrt(seeds)) for each.
"""

import argparse
import json
import math
import statistics
import time

from nn.callbacks import EarlyStopping
from nn.datasets import mnist
from nn.recipe import SEED_FIT, scale_images, seed_model


def run(seed, x, y, x_test, y_test, early):
    model = seed_model(seed=seed)
    callbacks = [EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)] if early else []
    start = time.perf_counter()
    history = model.fit(x, y, verbose=0, callbacks=callbacks, **SEED_FIT)
    seconds = time.perf_counter() - start
    _, accuracy = model.evaluate(x_test, y_test)
    row = {"seed": seed, "early_stopping": early, "test_accuracy": accuracy,
           "epochs_run": len(history.history["loss"]), "seconds": seconds}
    if early:
        row["best_epoch"] = callbacks[0].best_epoch + 1
    return row


def summary(values):
    mean = statistics.fmean(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return mean, se


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    (x, y), (x_test, y_test) = mnist.load_data(verbose=False)
    x, x_test = scale_images(x), scale_images(x_test)
    rows = []
    for seed in seeds:
        for early in (False, True):
            rows.append(run(seed, x, y, x_test, y_test, early))
            r = rows[-1]
            print(f"seed {seed} {'EarlyStopping' if early else 'plain 25 epochs':>16}: test accuracy "
                  f"{r['test_accuracy']:.4f}, {r['epochs_run']} epochs"
                  + (f" (best {r['best_epoch']})" if early else "") + f", {r['seconds']:.0f}s", flush=True)
    print()
    result = {"seeds": seeds, "runs": rows, "summary": {}}
    for early, name in ((False, "plain 25 epochs"), (True, "EarlyStopping(val_loss, patience=3, restore best)")):
        accs = [r["test_accuracy"] for r in rows if r["early_stopping"] == early]
        epochs = [r["epochs_run"] for r in rows if r["early_stopping"] == early]
        mean, se = summary(accs)
        result["summary"][name] = {"mean": mean, "standard_error": se, "min": min(accs),
                                   "max": max(accs), "mean_epochs": statistics.fmean(epochs)}
        print(f"{name:>52}: {100 * mean:.2f}% +- {100 * se:.2f}% (min {100 * min(accs):.2f}%, "
              f"max {100 * max(accs):.2f}%), {statistics.fmean(epochs):.1f} epochs on average")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
