"""The exceptions nn raises on purpose.

Every error nn raises deliberately derives from `NNError`, so callers can catch
them all at once; the command line turns them into one line on stderr.

- `InputError` (also a `ValueError`): an argument has the wrong shape, dtype,
  range or value. The message names the argument and what was expected.
- `DataError`: a dataset could not be obtained, or what was found failed
  verification (checksum, IDX header, size).
- `ModelError`: the model is used in a way its state does not allow (not
  built, not compiled, weights that do not fit its architecture).
"""


class NNError(Exception):
    """Base class of every error nn raises deliberately."""


class InputError(NNError, ValueError):
    """An argument has the wrong shape, dtype, range or value."""


class DataError(NNError):
    """A dataset could not be obtained or failed verification."""


class ModelError(NNError):
    """The model's state does not allow the requested operation."""


class NonFiniteError(ModelError):
    """Training met a non-finite loss, gradient or weight and stopped before that step.

    Attributes: `epoch` and `step` (0-based) of the step that went wrong,
    `layer` (the name of the first layer whose output, gradient or update
    went non-finite, or None when only the loss did) and `where` (what went
    non-finite, e.g. "output" or "kernel gradient").
    """

    def __init__(self, message, epoch=None, step=None, layer=None, where=None):
        super().__init__(message)
        self.epoch, self.step, self.layer, self.where = epoch, step, layer, where
