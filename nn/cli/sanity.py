"""`nn sanity`: CS231n's checks before training the seed recipe; each prints its figure and verdict.

1. The initial loss is near ln(10) = 2.303. With zero biases and Glorot
   weights the logits start small (std about 0.3 across classes on MNIST),
   and for logits of std s the expected cross-entropy of 10 classes is about
   ln(10) + s^2 / 2 (measured 2.29-2.41 over seeds 0-5). LOSS_RANGE accepts
   ln(10) +- 0.3, logits up to std ~0.75: a wrongly scaled init or input
   (pixels in 0-255, say) lands far above it; a loss well below it before
   any training means the labels leak into the inputs.
2. 20 training examples can be overfitted: full-batch Adam (the recipe's,
   lr 1e-3) reaches 100% accuracy and a loss below OVERFIT_LOSS within
   OVERFIT_STEPS steps (measured: 44-49 steps for seeds 0-2, so 200 leaves
   a margin of four).
3. The loss falls over the first FIRST_STEPS of those steps.
4. The gradient check (nn.gradcheck, batched finite differences) passes on
   GRADCHECK_EXAMPLES examples.
"""

import math

from nn.cli._common import check_backend, seed

LOSS_RANGE = (math.log(10) - 0.3, math.log(10) + 0.3)
LOSS_EXAMPLES = 1000
OVERFIT_EXAMPLES = 20
OVERFIT_STEPS = 200
OVERFIT_LOSS = 0.01
FIRST_STEPS = 10
GRADCHECK_EXAMPLES = 2


def add_parser(sub, common):
    """Register `sanity`."""
    check = sub.add_parser("sanity", parents=[common], help="checks before training: initial loss, "
                           "overfitting 20 examples, falling loss, gradient check")
    check.add_argument("--seed", type=seed, default=0)
    check.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    check.set_defaults(func=run)


def _verdict(ok, text):
    print(f"{'ok  ' if ok else 'FAIL'} {text}")
    return ok


def run(args):
    """Run the four checks; exit 1 if any fails."""
    from nn import gradcheck
    from nn.datasets import mnist
    from nn.recipe import scale_images, seed_model

    check_backend(args.backend)
    (x_train, y_train), _ = mnist.load_data(path=args.data_dir, verbose=False)
    x, y = scale_images(x_train[:LOSS_EXAMPLES], args.dtype), y_train[:LOSS_EXAMPLES]
    model = seed_model(seed=args.seed, dtype=args.dtype, backend=args.backend)
    results = []

    loss = model.evaluate(x, y, verbose=0)[0]
    low, high = LOSS_RANGE
    results.append(_verdict(low <= loss <= high, f"initial loss {loss:.4f} on {LOSS_EXAMPLES} examples; "
                            f"expected ln(10) = {math.log(10):.4f}, accepted [{low:.3f}, {high:.3f}]"))

    x20, y20 = x[:OVERFIT_EXAMPLES], y[:OVERFIT_EXAMPLES]
    losses, reached = [model.evaluate(x20, y20, verbose=0)[0]], None
    for step in range(1, OVERFIT_STEPS + 1):
        model.train_on_batch(x20, y20)
        loss20, accuracy = model.evaluate(x20, y20, verbose=0)
        losses.append(loss20)
        if accuracy == 1.0 and loss20 < OVERFIT_LOSS:
            reached = step
            break
    results.append(_verdict(reached is not None, (
        f"overfit {OVERFIT_EXAMPLES} examples: 100% accuracy and loss {losses[-1]:.4f} < {OVERFIT_LOSS} "
        f"after {reached} full-batch Adam steps (allowed {OVERFIT_STEPS})") if reached else (
        f"overfit {OVERFIT_EXAMPLES} examples: after {OVERFIT_STEPS} steps accuracy {accuracy:.0%}, "
        f"loss {losses[-1]:.4f} (wanted 100% and < {OVERFIT_LOSS})")))

    first = losses[min(FIRST_STEPS, len(losses) - 1)]
    results.append(_verdict(first < losses[0], f"loss falls over the first {FIRST_STEPS} steps: "
                            f"{losses[0]:.4f} -> {first:.4f}"))

    reports, seconds = gradcheck.check_seed_architecture(
        examples=GRADCHECK_EXAMPLES, seed=args.seed, dtype="float64", backend=args.backend,
        data_dir=args.data_dir, method="fd")
    worst = gradcheck.worst(reports)
    results.append(_verdict(all(r.passed for r in reports), (
        f"gradient check on {GRADCHECK_EXAMPLES} examples: worst error {worst.worst_error:.2e} "
        f"(tolerance {worst.tolerance:.0e}) in {worst.name}, {len(reports)} arrays, {seconds:.1f} s")))

    passed = all(results)
    print(f"{'PASSED' if passed else 'FAILED'}: {sum(results)} of {len(results)} sanity checks")
    return 0 if passed else 1
