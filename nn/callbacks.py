"""Teaching path: callbacks, hooks into `fit` the Keras way, plus History and the progress line."""

import sys
import time

from tqdm import tqdm


class Callback:
    """Base class: override any hook; `self.model` is set before training starts."""

    model = None

    def on_train_begin(self, logs=None):
        """Called once before the first epoch."""

    def on_epoch_begin(self, epoch, logs=None):
        """Called before each epoch (0-based)."""

    def on_train_batch_end(self, batch, logs=None):
        """Called after each update with the epoch's running loss and accuracy."""

    def on_epoch_end(self, epoch, logs=None):
        """Called after each epoch with its loss, accuracy and validation figures."""

    def on_train_end(self, logs=None):
        """Called once after the last epoch."""


class History(Callback):
    """Per-epoch figures, as keras.callbacks.History: `history[key]` is a list per epoch.

    `params` holds fit's settings as Keras's does (epochs, steps, verbose),
    plus the `engine` that ran ("layers" or "fused") and the `backend`.
    """

    def __init__(self):
        self.history = {}
        self.epoch = []
        self.params = {}

    @property
    def engine(self):
        """The engine fit ran: "layers" (the teaching path) or "fused" (nn.fast)."""
        return self.params.get("engine")

    def on_epoch_end(self, epoch, logs=None):
        """Append this epoch's figures."""
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))


def format_logs(logs):
    """'accuracy: 0.9712 - loss: 0.0934 - ...' with keys sorted as Keras prints them."""
    return " - ".join(f"{k}: {logs[k]:.4f}" for k in sorted(logs))


class ProgressBar(Callback):
    """One Keras-style line per epoch, with a live bar when stdout is a terminal."""

    def __init__(self, epochs, steps, stream=None):
        self.epochs, self.steps = epochs, steps
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty()
        self._bar = None

    def on_epoch_begin(self, epoch, logs=None):
        """Print the epoch header and start the bar."""
        print(f"Epoch {epoch + 1}/{self.epochs}", file=self.stream, flush=True)
        self._start = time.perf_counter()
        if self.live:
            self._bar = tqdm(total=self.steps, file=self.stream, ncols=100, leave=False,
                             bar_format="{n_fmt}/{total_fmt} {bar} {elapsed} {postfix}")

    def on_train_batch_end(self, batch, logs=None):
        """Advance the bar; its text is refreshed at most ten times a second."""
        if self._bar is not None:
            self._bar.update(batch + 1 - self._bar.n)
            if self._bar.n == self.steps or self._bar.n % 50 == 0:
                self._bar.set_postfix_str(format_logs(logs), refresh=False)

    def on_epoch_end(self, epoch, logs=None):
        """Replace the bar by the epoch's final line."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        seconds = time.perf_counter() - self._start
        per_step = 1000 * seconds / max(self.steps, 1)
        print(f"{self.steps}/{self.steps} - {seconds:.1f}s {per_step:.2f}ms/step - {format_logs(logs)}",
              file=self.stream, flush=True)
