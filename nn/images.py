"""Teaching path: image files of handwritten digits turned into MNIST-style 28x28 inputs (with Pillow).

MNIST's digits were made this way (LeCun, Cortes and Burges): a light digit on
a black background, size-normalised to fit a 20x20 box keeping the aspect
ratio (with anti-aliasing, hence grey levels), then placed in a 28x28 image
so that its centre of mass lies at the centre. `load_digit(path)` does the
same to any PNG or JPEG:

1. grayscale (a transparent background is laid over white first);
2. inverted when the digit is dark on light, judged by the border pixels
   (the background), so the digit ends up light on black as in MNIST;
3. the background level (the border's median) subtracted and the
   brightest pixel scaled to 1;
4. cropped to the digit's bounding box (pixels above 10% of the maximum)
   and resized, keeping the aspect ratio, so its longer side is 20 pixels;
5. pasted into 28x28 with its centre of mass at pixel (14, 14), rounded to
   whole pixels.
"""

import os

import numpy as np

from nn.errors import InputError

SIZE, BOX = 28, 20
INK = 0.1  # a pixel above this fraction of the brightest belongs to the digit's bounding box


def _open(path):
    """The image at `path` as a float64 grayscale array (H, W) in 0..255; InputError if it is not one."""
    from PIL import Image, UnidentifiedImageError

    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"image path must be a str or os.PathLike; got {path!r}")
    if not os.path.isfile(path):
        raise InputError(f"image {path} does not exist or is not a file")
    if os.path.getsize(path) == 0:
        raise InputError(f"image {path} is an empty file")
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                img = Image.alpha_composite(white, rgba)
            return np.asarray(img.convert("L"), np.float64)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"image {path} is not an image Pillow can read ({type(exc).__name__})") from None


def to_mnist(gray, name="image"):
    """A grayscale array (H, W) in 0..255, any size, as a (28, 28) float64 MNIST digit in [0, 1]."""
    from PIL import Image

    a = np.asarray(gray, np.float64)
    if a.ndim != 2 or min(a.shape) < 2:
        raise InputError(f"{name} must be a 2-D picture of at least 2x2 pixels; got shape {a.shape}")
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    if np.median(border) > 127:  # light background: a dark digit, unlike MNIST's
        a, border = 255 - a, 255 - border
    a = np.clip(a - np.median(border), 0, None)
    if a.max() <= 0:
        raise InputError(f"{name} holds no digit: every pixel is the background colour")
    a /= a.max()
    rows, cols = np.nonzero(a > INK)
    a = a[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    h, w = a.shape
    scale = BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    box = np.asarray(Image.fromarray(a.astype(np.float32), mode="F").resize(size, Image.LANCZOS),
                     np.float64)
    box = np.clip(box, 0, 1)  # Lanczos overshoots a little at edges
    out = np.zeros((SIZE, SIZE))
    if box.sum() == 0:
        raise InputError(f"{name} holds no digit after resizing")
    ys, xs = np.indices(box.shape)
    cy, cx = (ys * box).sum() / box.sum(), (xs * box).sum() / box.sum()
    top = int(np.clip(round(SIZE / 2 - cy), 0, SIZE - box.shape[0]))
    left = int(np.clip(round(SIZE / 2 - cx), 0, SIZE - box.shape[1]))
    out[top:top + box.shape[0], left:left + box.shape[1]] = box
    return out


def load_digit(path):
    """The digit in the image file at `path` (PNG, JPEG, ...) as a (28, 28) float64 array in [0, 1]."""
    return to_mnist(_open(path), f"image {path}")


__all__ = ["load_digit", "to_mnist"]
