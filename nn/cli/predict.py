"""`nn predict MODEL IMAGE...`: the digit in each image file, converted as MNIST was made."""

import json

from nn.cli._common import check_backend, check_json
from nn.errors import InputError


def add_parser(sub, common):
    """Register `predict`."""
    p = sub.add_parser("predict", parents=[common], help="predict the digit in PNG or JPEG files "
                       "(grayscale, inverted if dark on light, fitted into 20x20, centred by mass)")
    p.add_argument("model", help="a model.npz written by `nn train`")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files of handwritten digits")
    p.add_argument("--json", default=None, help="also write the predictions to this JSON file")
    p.set_defaults(func=run)


def run(args):
    """Print each image's predicted digit and the ten probabilities."""
    import numpy as np

    from nn.images import load_digit
    from nn.saving import load_model

    if args.json:
        check_json(args.json)
    check_backend(args.backend)
    model = load_model(args.model, backend=args.backend)
    if int(np.prod(model.input_shape)) != 28 * 28:
        raise InputError(f"{args.model} takes examples shaped {model.input_shape}, not 28x28 images")
    digits = np.stack([load_digit(path) for path in args.images])  # every file checked before any output
    probs = model.predict(digits.reshape((len(digits),) + model.input_shape).astype(model.dtype))
    results = []
    for path, p in zip(args.images, probs):
        digit = int(np.argmax(p))
        print(f"{path}: {digit} ({p[digit]:.1%})  " + " ".join(f"{i}:{q:.4f}" for i, q in enumerate(p)))
        results.append({"image": path, "digit": digit, "probabilities": [float(q) for q in p]})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0
