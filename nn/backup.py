"""Teaching path: BackupAndRestore, training that survives kill -9 and resumes bit-identically.

A backup is one .npz file (`backup_dir/backup.npz`) holding everything that
decides the rest of a run: the weights, Adam's moments, step count and
learning rate, both random streams (`model._init_rng`, `model.shuffle_rng`
as it stood when the epoch drew its permutation), the position in the
epoch (next step and the running loss and accuracy sums), the History so
far and the state of the callbacks that keep one (EarlyStopping,
ReduceLROnPlateau, ModelCheckpoint). It is written to a temporary file,
flushed to disk and renamed over the old one, so a kill at any moment
leaves the previous backup or the new one; it records the SHA-256 of every
array and a fingerprint of the run (architecture, seed, data, batch size,
engine, backend), all checked before use. Fit resumed from it takes the
same steps on the same numbers as the uninterrupted run, so it ends with
bit-identical weights, moments and History.

SIGTERM and SIGINT during fit write a backup at the next step whose state
the model holds (every step on the layers engine, every chunk on the fused
one) and raise TrainingInterrupted saying how to resume.
"""

import hashlib
import json
import os
import signal
import threading
import zipfile
import zlib

import numpy as np

from nn.callbacks import Callback, EarlyStopping, ModelCheckpoint, ReduceLROnPlateau, _number
from nn.errors import InputError, ModelError
from nn.saving import _write_checked
from nn.scaled import ScaledImages, row_blocks

FORMAT = "nn.backup/1"
FILE = "backup.npz"

#: Callback attributes a backup keeps, so that a resumed run decides as the whole run would.
STATE = {
    EarlyStopping: ("wait", "stopped_epoch", "best_epoch", "best"),
    ReduceLROnPlateau: ("wait", "cooldown_counter", "best", "reduced_at"),
    ModelCheckpoint: ("best", "saved", "_since", "_epoch"),
}


class TrainingInterrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT stopped fit after writing a backup; the message says how to resume."""


def _digest(*arrays):
    h = hashlib.sha256()
    for a in arrays:  # block by block: the same bytes, without a copy of a whole ScaledImages
        a = a if isinstance(a, ScaledImages) else np.asarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        for block in row_blocks(a):
            h.update(block.data)
    return h.hexdigest()


def fsync_dir(folder):
    """Flush a folder's entries (a rename in it) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class BackupAndRestore(Callback):
    """Back training up to `backup_dir` and resume from it, as keras.callbacks.BackupAndRestore.

    save_freq: "epoch" (after every epoch) or a number of batches (at the
    first step after that many whose state the model holds). At the start of
    fit, a backup in backup_dir is checked and training continues from it;
    delete_checkpoint: remove it when fit ends normally (Keras's default).
    """

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True):
        backup_dir = os.fspath(backup_dir) if isinstance(backup_dir, os.PathLike) else backup_dir
        if not isinstance(backup_dir, str) or not backup_dir:
            raise InputError(f"backup_dir must be a folder path; got {backup_dir!r}")
        if save_freq != "epoch":
            save_freq = _number(save_freq, "save_freq ('epoch' or a number of batches)", 1, integer=True)
        self.backup_dir, self.save_freq = backup_dir, save_freq
        self.delete_checkpoint = bool(delete_checkpoint)
        self.path = os.path.join(backup_dir, FILE)
        self.peers = []  # the fit's other callbacks (set by fit)
        self.restored = None  # (epoch, step) a fit resumed from, else None
        self._since, self._signal, self._handlers = 0, None, {}

    # ------------------------------------------------------------ fit hooks
    def on_train_begin(self, logs=None):
        """Check the folder; resume from its backup if there is one; catch SIGTERM and SIGINT."""
        if os.path.exists(self.backup_dir) and not os.path.isdir(self.backup_dir):
            raise InputError(f"backup_dir {self.backup_dir} exists and is not a folder")
        os.makedirs(self.backup_dir, exist_ok=True)
        if not os.access(self.backup_dir, os.W_OK | os.X_OK):
            raise InputError(f"backup_dir {self.backup_dir} is not writable")
        self._fingerprint = self._run_fingerprint()
        self.restored = None
        if os.path.exists(self.path):
            self._restore(*self._read())
        self._since, self._signal = 0, None
        self._catch_signals()

    def on_train_batch_end(self, batch, logs=None):
        """Back up every save_freq batches, or now after a signal, if the model holds this step."""
        self._since += 1
        if self.model._progress.get("step") != batch + 1:
            return  # the fused engine replays a chunk's logs: its state is the chunk's end
        if self._signal is not None:
            self._interrupt()
        if self.save_freq != "epoch" and self._since >= self.save_freq:
            self.write()
            self._since = 0  # as Keras: count again from this backup (epoch-end writes do not reset it)

    def on_epoch_end(self, epoch, logs=None):
        """Back up after the epoch (the History and callbacks already hold it)."""
        if self.save_freq == "epoch":
            self.write()
        if self._signal is not None:
            self._interrupt()

    def on_train_end(self, logs=None):
        """Stop catching signals; remove the backup if asked (the run is complete)."""
        self._release()
        if self.delete_checkpoint:
            self.delete()

    def _abort(self):
        """fit failed: stop catching signals, keep the last backup."""
        self._release()

    # --------------------------------------------------------------- signals
    def _catch_signals(self):
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may set handlers; there, signals keep their meaning
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._handlers[sig] = signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, frame):
        if self._signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop at once, keep the last backup
        self._signal = signum

    def _release(self):
        for sig, handler in self._handlers.items():
            signal.signal(sig, handler)
        self._handlers = {}

    def _interrupt(self):
        self.write()
        self._release()
        progress = self.model._progress
        name = signal.Signals(self._signal).name
        raise TrainingInterrupted(f"{name}: stopped at epoch {progress['epoch'] + 1}, step "
                                  f"{progress['step']}, after writing a backup to {self.path}; "
                                  f"run the same command again to resume")

    # ------------------------------------------------------- write and read
    def _run_fingerprint(self):
        """What must be the same for a backup to continue this run."""
        from nn.saving import model_config

        model, params = self.model, self.params
        x, y, val = model._fit_arrays
        config = model_config(model)
        config.pop("compile", None)  # the learning rate may change; the backup holds it
        return {"model": config, "seed": model.seed, "backend": model.backend_name,
                "engine": params.get("engine"), "batch_size": params.get("batch_size"),
                "shuffle": params.get("shuffle"), "data": _digest(x, y),
                "validation": None if val is None else _digest(*val)}

    def write(self):
        """Write the backup of the model's current step, atomically."""
        model, opt = self.model, self.model.optimizer
        state = opt.state_for([layer.params[k] for layer, k in model.parameter_refs()])
        arrays = {}
        for i, w in enumerate(model.get_weights()):
            arrays[f"w/{i}"] = w
        for i, (m, v) in enumerate(zip(state.m, state.v)):
            arrays[f"m/{i}"], arrays[f"v/{i}"] = m, v
        peers = []
        for j, cb in enumerate(self.peers):
            keys = next((k for cls, k in STATE.items() if isinstance(cb, cls)), ())
            peers.append({k: getattr(cb, k) for k in keys})
            for i, w in enumerate(getattr(cb, "best_weights", None) or []):
                arrays[f"cb/{j}/{i}"] = w
        history = model.history
        progress = model._progress
        meta = {"format": FORMAT, "fingerprint": self._fingerprint,
                "epoch": progress["epoch"], "step": progress["step"], "sums": list(progress["sums"]),
                "stopped": bool(model.stop_training), "count": state.count,
                "learning_rate": opt.learning_rate,
                "shuffle_state": progress["shuffle_state"],
                "init_state": model._init_rng.bit_generator.state,
                "history": history.history, "history_epoch": history.epoch, "callbacks": peers,
                "sha256": {k: _digest(a) for k, a in arrays.items()}}
        arrays["meta"] = np.array(json.dumps(meta, allow_nan=False))
        _write_checked(self.path, arrays, what="the backup")  # atomic, as save_model writes
        fsync_dir(self.backup_dir)

    def delete(self):
        """Remove the backup (and any temporary file a killed write left)."""
        for name in os.listdir(self.backup_dir) if os.path.isdir(self.backup_dir) else []:
            if name == FILE or name.startswith(FILE + ".tmp-"):
                os.unlink(os.path.join(self.backup_dir, name))

    def _read(self):
        damaged = f"the backup {self.path} is damaged; delete it to start the run over"
        try:
            with np.load(self.path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                arrays = {k: data[k] for k in data.files if k != "meta"}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise ModelError(f"{damaged} ({type(exc).__name__}: {exc})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ModelError(f"{self.path} is not an nn backup ({FORMAT}); move it away or "
                             f"give another backup_dir")
        sums = meta.get("sha256", {})
        if sorted(sums) != sorted(arrays) or any(_digest(a) != sums[k] for k, a in arrays.items()):
            raise ModelError(f"{damaged} (an array's SHA-256 does not match)")
        theirs = meta["fingerprint"]
        different = [k for k in self._fingerprint if theirs.get(k) != self._fingerprint[k]]
        if different:
            raise ModelError(f"the backup {self.path} belongs to another run (its "
                             f"{', '.join(different)} differ); delete it or give another backup_dir")
        return meta, arrays

    def _restore(self, meta, arrays):
        model, opt = self.model, self.model.optimizer
        refs = model.parameter_refs()
        model.set_weights([arrays[f"w/{i}"] for i in range(len(refs))])
        opt.build([layer.params[k] for layer, k in refs])
        for i in range(len(refs)):
            opt.state.m[i][...] = arrays[f"m/{i}"]
            opt.state.v[i][...] = arrays[f"v/{i}"]
        opt.state = opt.state._replace(count=meta["count"])
        opt.learning_rate = meta["learning_rate"]
        model._init_rng.bit_generator.state = meta["init_state"]
        for j, (cb, state) in enumerate(zip(self.peers, meta["callbacks"])):
            for key, value in state.items():
                setattr(cb, key, value)
            if hasattr(cb, "best_weights"):
                best = [arrays[k] for k in sorted((k for k in arrays if k.startswith(f"cb/{j}/")),
                                                  key=lambda k: int(k.rsplit("/", 1)[1]))]
                cb.best_weights = best or None
        sums = meta["sums"]
        model._resume = {"epoch": meta["epoch"], "step": meta["step"],
                         "sums": (float(sums[0]), int(sums[1]), int(sums[2])),
                         "shuffle_state": meta["shuffle_state"], "stopped": meta["stopped"],
                         "history": meta["history"], "history_epoch": meta["history_epoch"]}
        self.restored = (meta["epoch"], meta["step"])
