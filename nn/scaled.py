"""Teaching path: ScaledImages, uint8 images whose rows become floats only as they are used.

`ScaledImages(images)` stands for the float array `images / 255` (in float32
by default) without making it: MNIST's 60,000 training images are 45 MiB as
uint8 and 180 MiB as float32. Indexing it returns that array's rows, divided
when asked for, so `fit`, `evaluate` and `predict` (and nn.inspect, the
callbacks, the validation split) see exactly the floats that
`nn.recipe.scale_images(images)` would have given them, and a model trained
on it ends bit-identical to one trained on the float array:

    x_train = nn.ScaledImages(train_images)      # uint8 (N, 28, 28), nothing divided yet
    model.fit(x_train, y_train, validation_split=0.2)
    x_train[:32]                                  # float32 (32, 28, 28): train_images[:32] / 255

It is explicit on purpose: a bare uint8 array given to fit is used as its
values 0..255, as Keras does, never silently scaled.
"""

import numpy as np

from nn import _checks
from nn.errors import InputError

#: Rows per block when all of x is visited (nonzero_rows, the backup digest): 1,024
#: MNIST images are 3.2 MB of float32, which stays in cache; 4,096 took twice as long
#: for nonzero_rows here (0.23 against 0.11 s for 48,000 images, best of 5).
BLOCK_ROWS = 1024


def divide(images, scale, dtype):
    """images / scale in `dtype`: one division in `dtype` itself, elementwise (see scale_images)."""
    return np.divide(images, dtype.type(scale), dtype=dtype)


class ScaledImages:
    """uint8 images (N, ...) read as the floats images / scale in `dtype`, one selection at a time.

    images: a uint8 array of at least 2 dimensions (the first is the
    examples), kept as it is (no copy; do not change it while a model uses
    it). scale: the positive number every pixel is divided by (default 255,
    MNIST's largest value). dtype: "float32" (default) or "float64", that of
    the rows returned; a model computing in the other one refuses it rather
    than mix two roundings.

    Indexing (`s[key]`, any NumPy key) and `np.asarray(s)` return ordinary
    float arrays; `select(key)` returns the chosen examples as a smaller
    ScaledImages (a view of the uint8 images for a slice).
    """

    def __init__(self, images, scale=255, dtype="float32"):
        self.dtype = _checks.float_dtype(dtype, "dtype")
        images = _checks._as_array(images, "images")
        if images.dtype != np.uint8:
            raise InputError(f"images must be uint8 (0-255), as MNIST ships them; got {images.dtype} "
                             f"(a float array needs no ScaledImages: pass it as it is)")
        if images.ndim < 2:
            raise InputError(f"images must have a batch axis first, shape (N, ...); got shape {images.shape}")
        if isinstance(scale, bool) or not isinstance(scale, (int, float, np.integer, np.floating)) or not (
                np.isfinite(scale) and scale > 0):
            raise InputError(f"scale must be a positive finite number; got {scale!r}")
        with np.errstate(over="ignore"):
            too_large = not np.isfinite(self.dtype.type(scale))  # every quotient would be 0
        if too_large:
            raise InputError(f"scale {scale!r} is too large for {self.dtype.name}")
        self.images, self.scale = images, scale

    # What NumPy code reads off an array.
    @property
    def shape(self):
        """(N, ...): that of the images."""
        return self.images.shape

    @property
    def ndim(self):
        return self.images.ndim

    @property
    def size(self):
        return self.images.size

    def __len__(self):
        return len(self.images)

    def __repr__(self):
        return f"ScaledImages({self.images.dtype} {self.shape} / {self.scale}, dtype={self.dtype.name})"

    def __getitem__(self, key):
        """The float array's x[key], dividing only the selected pixels."""
        return divide(self.images[key], self.scale, self.dtype)

    def __array__(self, dtype=None, copy=None):
        """The whole float array (N, ...), made now: as much memory as the plain array."""
        if copy is False:  # NumPy 2's "never copy": the floats do not exist yet
            raise ValueError("a ScaledImages has no float array to share; its rows are made when read")
        out = divide(self.images, self.scale, self.dtype)
        return out if dtype is None else out.astype(dtype, copy=False)

    def checked(self, name, dtype, sample_shape=None):
        """self, once it suits a model computing in `dtype` on examples shaped `sample_shape`.

        The messages are those of a plain array's checks; a ScaledImages of the
        other float type is refused: converting its rows would round them twice.
        """
        if len(self) == 0:
            raise InputError(f"{name} is empty (shape {self.shape}); it needs at least one example")
        if sample_shape is not None and self.shape[1:] != tuple(sample_shape):
            raise InputError(f"{name} must be shaped (N, {', '.join(map(str, sample_shape))}) for this "
                             f"model; got {self.shape}")
        dtype = np.dtype(dtype)
        if dtype != self.dtype:
            raise InputError(f"{name} is a ScaledImages of {self.dtype.name} rows but the model computes "
                             f"in {dtype.name}; make it with ScaledImages(images, dtype='{dtype.name}')")
        return self

    def select(self, key):
        """The examples `key` picks (a slice, indices or a mask over axis 0) as a ScaledImages."""
        images = None if isinstance(key, tuple) else self.images[key]
        if images is None or images.ndim != self.ndim:
            raise InputError(f"select picks examples along the first axis; {key!r} does not")
        return ScaledImages(images, self.scale, self.dtype)

    def reshape(self, *shape):
        """The same images with each example reshaped; the first axis must stay the examples."""
        images = self.images.reshape(*shape)
        if len(images) != len(self):
            raise InputError(f"reshape must keep the {len(self)} examples on the first axis; got {images.shape}")
        return ScaledImages(images, self.scale, self.dtype)


def row_blocks(x):
    """x's rows, BLOCK_ROWS at a time, as C-contiguous arrays: an array's or a ScaledImages'."""
    for start in range(0, len(x), BLOCK_ROWS):
        yield np.ascontiguousarray(x[start:start + BLOCK_ROWS])
