"""`nn train`: the seed recipe, trained and written to a run folder, all or nothing.

The outputs go into a temporary folder beside --out (nn.runfolder), which is
renamed into place with a manifest once every file is on disk. With
--backup-dir, training backs up after every epoch (and at SIGTERM/SIGINT),
and the same command run again resumes from the backup and ends
bit-identical to an uninterrupted run; the backup is removed once the run
folder is in place.
"""

import os
import platform
import sys
import time

import numpy as np

from nn.cli._common import (LOADERS, add_dataset_argument, check_backend, load_images, positive_int, seed,
                            split)
from nn.errors import InputError
from nn.model import ENGINES


def add_parser(sub, common):
    """Register `train`."""
    train = sub.add_parser("train", parents=[common], help="train the seed recipe (the default "
                           "settings are the Keras notebook's)")
    train.add_argument("--epochs", type=positive_int, default=25)
    train.add_argument("--batch-size", type=positive_int, default=32)
    train.add_argument("--validation-split", type=split, default=0.2)
    train.add_argument("--seed", type=seed, default=0)
    train.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    train.add_argument("--engine", choices=ENGINES, default=None,
                       help="layers: the teaching path, layer by layer; fused: whole chunks of "
                            "steps in one call (default: fused on numba, layers on numpy)")
    train.add_argument("--examples", type=positive_int, default=None,
                       help="train on the first N training images only (default: all 60,000)")
    train.add_argument("--diagnostics", nargs="?", type=positive_int, const=0, default=None, metavar="N",
                       help="record per-layer gradient and weight norms, update ratios and dead ReLUs "
                            "into history.json (nn.diagnostics) each epoch, and every N steps if given")
    add_dataset_argument(train)
    train.add_argument("--out", default="runs/train", help="output folder (default: runs/train)")
    train.add_argument("--backup-dir", default=None,
                       help="back training up here after every epoch and on SIGTERM/SIGINT; run "
                            "the same command again to resume")
    train.set_defaults(func=run)


def check_backup_dir(path):
    """Refuse a --backup-dir that cannot be a writable folder, before any work."""
    if not path.strip():
        raise InputError(f"--backup-dir must be a folder path; got {path!r}")
    if os.path.exists(path) and not os.path.isdir(path):
        raise InputError(f"--backup-dir {path} exists and is not a folder")
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"--backup-dir {path} cannot be written ({existing} does not allow it)")


def announce_compile(backend, dtype):
    """On numba with a cold cache, say so in one line and start compiling in a second process too.

    At launch, so that the helper process (nn.fast.compile_helper) compiles
    while this one loads the data.
    """
    from nn import kernels

    if kernels.get_backend(backend).NAME != "numba":
        return
    from nn.fast import numba_steps

    if numba_steps.cached(dtype):
        return
    if numba_steps.start_helper(dtype):
        print("Compiling the fused steps for this CPU, in a second process too (once; later runs "
              "load them from numba's cache) ...", flush=True)
    else:
        print("Compiling the fused steps for this CPU: the one-thread steps now, the "
              "multi-threaded ones after the first batches (once; later runs load them "
              "from numba's cache) ...", flush=True)


def run(args):
    """Train the seed recipe; write model, history, metrics, curves and the pictures to --out."""
    from nn.backup import BackupAndRestore
    from nn.metrics import evaluate_classes
    from nn.recipe import seed_model
    from nn.runfolder import RunFolder
    from nn.saving import save_model
    from nn.scaled import ScaledImages

    check_backend(args.backend)
    if args.backup_dir is not None:
        check_backup_dir(args.backup_dir)
    command = ["python", "-m", "nn"] + sys.argv[1:]
    with RunFolder(args.out, command) as folder:  # refuses a bad or busy --out before any work
        if args.engine != "layers":
            announce_compile(args.backend, args.dtype)  # before the data loads: it compiles meanwhile
        # The images stay uint8 (a quarter of float32's memory): ScaledImages gives
        # fit, evaluate and predict the very floats of scale_images a batch at a
        # time, and the fused engine builds its compressed rows from them directly.
        (train_images, y_train), (test_images, y_test) = load_images(args.dataset, args.data_dir)
        class_names = LOADERS[args.dataset].CLASS_NAMES
        if args.examples is not None:
            train_images, y_train = train_images[:args.examples], y_train[:args.examples]
        x_train, train_images = ScaledImages(train_images, dtype=args.dtype), None
        examples = len(x_train)
        model = seed_model(seed=args.seed, dtype=args.dtype, backend=args.backend)
        backup = None if args.backup_dir is None else BackupAndRestore(args.backup_dir,
                                                                      delete_checkpoint=False)
        callbacks = []
        if args.diagnostics is not None:  # probe: the first 512 training images
            from nn.diagnostics import Diagnostics

            callbacks.append(Diagnostics(x_train[:512], y_train[:512], every=args.diagnostics or None))
        start = time.perf_counter()
        history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                            validation_split=args.validation_split, verbose=1, engine=args.engine,
                            callbacks=callbacks + ([backup] if backup else []))
        train_seconds = time.perf_counter() - start
        # Free the training images before the pictures are drawn.
        del x_train, callbacks
        x_test, test_images = ScaledImages(test_images, dtype=args.dtype), None
        if backup is not None and backup.restored is not None:
            epoch, step = backup.restored
            print(f"Resumed from the backup in {args.backup_dir} at epoch {epoch + 1}, step {step}")
        test_loss, test_accuracy = model.evaluate(x_test, y_test, batch_size=args.batch_size)
        print(f"Test accuracy: {test_accuracy:.4f} - test loss: {test_loss:.4f}", flush=True)
        probs = model.predict(x_test, batch_size=256)  # once, for the report and the pictures
        metrics = {
            "dataset": args.dataset,
            "test_accuracy": test_accuracy, "test_loss": test_loss, "epochs": args.epochs,
            "batch_size": args.batch_size, "validation_split": args.validation_split,
            "seed": args.seed, "examples": examples, "train_seconds": train_seconds,
            "backend": model.backend_name, "engine": history.engine,
            "dtype": model.dtype.name, "python": platform.python_version(),
            "numpy": np.__version__, "machine": platform.machine(),
            "classification": evaluate_classes(model, x_test, y_test, class_names, probs=probs),
        }
        from nn.plotting import plot_history  # only now: matplotlib's import delays the first step
        from nn.report import write_pictures

        with folder.file("model.npz") as path:
            save_model(model, path)
        folder.write_json("history.json", history.history)
        folder.write_json("metrics.json", metrics)
        with folder.file("curves.png") as path:
            plot_history(history, path,
                         title=f"seed recipe on {args.dataset}, seed {args.seed}, "
                               f"test accuracy {test_accuracy:.4f}")
        with folder.file("pictures"):  # into the same temporary folder; an error names the file
            pictures = write_pictures(folder.path, model, history, x_test, y_test, class_names, probs=probs)
        folder.commit()
    print(f"Wrote model.npz, history.json, metrics.json, curves.png, {len(pictures)} more pictures "
          f"({', '.join(os.path.basename(p) for p in pictures)}) and manifest.json to {args.out}",
          flush=True)
    if backup is not None:
        backup.delete()  # only now: a kill before the rename resumes from the finished backup
    return 0
