"""Where nn and Keras part: the first step their weights differ by more than rounding explains.

    python -m reference.diverge --dtype float32|float64 --seed S [--steps 1500] [--json FILE]

Both start from the seed model's weights and train in lockstep
(reference.lockstep) on the batches nn's own fit would draw in epoch 1. Before
each step, both sides' ReLU pre-activations on that step's batch are compared:
a unit whose value lay on opposite sides of zero (one side's ReLU passes it,
the other's does not) is recorded with both values. That is the one place the
network turns a rounding-sized difference into an O(1) one: the unit's whole
gradient is on for one side and off for the other.

What rounding explains (the rule of tests/reference/conftest.py and the
derivation in test_keras_lockstep.py): the first step, from identical weights,
leaves a rounding-only gap g1 (relative to the largest weight). Adam's gain on
nearly-cancelling gradients is largest on step 1 (eps_hat = eps / sqrt(1 -
b2^t) only shrinks), and without a ReLU flip the network does not amplify the
gaps, so no later step adds more to the gap than the first did (gap_t <= t *
g1, as that test asserts). What the network does amplify, slowly, is the gap
already there (its gradients move with its weights), so a step may add
somewhat more than g1 once the gap has grown: measured, at most 1.05 g1 in
float32 (seed 4, by step 1,400, the gap then 40 g1) and 0.85 g1 in float64
(seed 0 over 1,500 steps: 0.69 g1; seed 19 over 3,000: 0.85 g1). A ReLU
flip adds tens to hundreds of g1 in one step (72 g1 at seed 4's step 1,401,
42 g1 at seed 19's step 181). The threshold, 2 g1, is one g1 for the
step's own rounding and one for that slow amplification: above every
flip-free step measured, far below a flip. If the first step is
bit-identical (g1 = 0), 2 sqrt(N) u, the rounding difference of the N-term
gradient chain (N = GRADIENT_TERMS), stands in for g1.
"""

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field

import numpy as np

from reference import runtime  # noqa: F401  (configures TensorFlow first)

import keras

from nn.inspect import trace as nn_trace
from nn.layers import Dense
from nn.recipe import scale_images, seed_model
from reference.inspect_keras import chain_tolerance

#: Terms summed on the way to a weight's gradient in the seed network (as
#: tests/reference/conftest.py counts them): 785 + 129 + 33 forward, back
#: through the 10- and 32-wide layers, and over the batch of 32.
GRADIENT_TERMS = 785 + 129 + 33 + 10 + 32 + 32
#: How many first-step gaps one step may add before it counts as parting (see above).
SLACK = 2
TRAIN_EXAMPLES = 48000  # fit(validation_split=0.2) trains on the first 80% of 60,000


@dataclass
class Flip:
    """A ReLU pre-activation that lay on opposite sides of zero in nn and Keras."""

    step: int
    layer: str
    unit: int
    example: int  # row of the step's batch
    nn_value: float
    keras_value: float

    def line(self):
        return (f"step {self.step}, layer {self.layer}, unit {self.unit}, example {self.example} "
                f"of the batch: nn pre-activation {self.nn_value:+.3e}, Keras {self.keras_value:+.3e}")


@dataclass
class Divergence:
    """The result: the per-step gaps and bounds, every flip seen, and the step they parted (or None)."""

    dtype: str
    seed: int
    steps: int
    first_gap: float
    budget: float  # the first step's gap (chain_tolerance if 0); a step may add SLACK times it
    gaps: list = field(default_factory=list)
    flips: list = field(default_factory=list)
    step: int | None = None  # the first step that added more than SLACK * budget to the gap

    def flips_at(self, step):
        return [f for f in self.flips if f.step == step]

    def report(self):
        """The human-readable summary, one finding a line."""
        head = f"{self.dtype}, seed {self.seed}:"
        if self.step is None:
            added = np.diff(np.concatenate([[0.0], self.gaps]))
            worst = int(np.argmax(added[1:])) + 2 if len(added) > 1 else 1
            lines = [f"{head} no divergence in {self.steps} steps: no step added more to the weight gap "
                     f"than rounding explains ({SLACK} x {self.budget:.2e}, the first step's gap; the most, "
                     f"{added[worst - 1]:.2e}, at step {worst}); largest gap {max(self.gaps):.2e}",
                     f"  ReLU pre-activations on opposite sides of zero: {len(self.flips)}"]
            return "\n".join(lines + [f"  {f.line()}" for f in self.flips])
        gap = self.gaps[self.step - 1]
        before = self.gaps[self.step - 2] if self.step > 1 else 0.0
        lines = [f"{head} nn and Keras part at step {self.step}: the weight gap grew from {before:.2e} "
                 f"to {gap:.2e}, more than the {SLACK} x {self.budget:.2e} rounding explains (the first step's gap)"]
        at = self.flips_at(self.step)
        earlier = [f for f in self.flips if f.step < self.step]
        if at:
            lines.append(f"  where: {len(at)} ReLU pre-activation(s) on opposite sides of zero at that step")
            lines += [f"  {f.line()}" for f in at]
        else:
            lines.append("  no ReLU pre-activation on opposite sides of zero at that step")
        if earlier:
            lines.append(f"  earlier flips that stayed within rounding: {len(earlier)}")
            lines += [f"  {f.line()}" for f in earlier]
        return "\n".join(lines)

    def as_dict(self):
        return {**asdict(self), "flips": [asdict(f) for f in self.flips]}


def keras_pre_activations(kmodel, x):
    """{layer name: x @ kernel + bias} for Keras's ReLU Dense layers, as its Dense.call computes it."""
    found, h = {}, keras.ops.convert_to_tensor(x)
    for layer in kmodel.layers:
        if isinstance(layer, keras.layers.Dense) and keras.activations.serialize(layer.activation) == "relu":
            z = keras.ops.add(keras.ops.matmul(h, layer.kernel), layer.bias)
            found[layer.name] = keras.ops.convert_to_numpy(z)
            h = layer.activation(z)
        else:
            h = layer(h)
    return found


def nn_pre_activations(model, x, y):
    """{layer name: pre-activation} of nn's ReLU Dense layers, from nn.inspect.trace (the teaching path)."""
    return {entry["name"]: entry["pre_activation"] for entry in nn_trace(model, x, y)["layers"]
            if entry["class"] == Dense.__name__ and entry["activation"] == "relu"}


def flips(step, ours, theirs):
    """Every (layer, example, unit) whose ReLU would pass on one side and not the other."""
    found = []
    for name, z in ours.items():
        k = theirs[name]
        for example, unit in zip(*np.nonzero((z > 0) != (k > 0))):
            found.append(Flip(step, name, int(unit), int(example), float(z[example, unit]),
                              float(k[example, unit])))
    return found


def find(dtype="float32", seed=0, steps=1500, data=None, stop=True, backend="numpy", log=None):
    """Run the lockstep for up to `steps` steps (1,500 an epoch); return a Divergence.

    data: (uint8 images, labels) of the training split, or None to load MNIST.
    stop: end at the first step beyond rounding (False: run all `steps`, for
    the whole divergence curve; `step` is still the first one).
    """
    from reference.lockstep import Lockstep

    if data is None:
        from nn.datasets import mnist

        (images, labels), _ = mnist.load_data(verbose=False)
        data = images[:TRAIN_EXAMPLES], labels[:TRAIN_EXAMPLES]
    images, labels = data
    model = seed_model(seed, dtype, backend=backend)
    per_epoch = len(images) // 32  # 1,500 full batches (48,000 / 32 leaves no partial one)
    lockstep = Lockstep(model, state_every=0)
    floor = chain_tolerance(GRADIENT_TERMS, dtype)
    result = Divergence(dtype, seed, 0, 0.0, floor)
    for step in range(1, steps + 1):
        if (step - 1) % per_epoch == 0:
            order = model.shuffle_rng.permutation(len(images))  # as nn's fit draws each epoch
        start = (step - 1) % per_epoch * 32
        batch = order[start:start + 32]
        x, y = scale_images(images[batch], dtype), labels[batch]
        result.flips += flips(step, nn_pre_activations(model, x, y), keras_pre_activations(lockstep.kmodel, x))
        lockstep.step(x, y)
        gap = lockstep.trace.weight_rel_diff[-1]
        result.gaps.append(gap)
        result.steps = step
        if step == 1:
            result.first_gap, result.budget = gap, gap if gap > 0 else floor
        added = gap - (result.gaps[-2] if step > 1 else 0.0)
        if result.step is None and added > SLACK * result.budget:
            result.step = step
            if log:
                log(f"step {step}: the gap grew by {added:.2e} > {result.budget:.2e}")
            if stop:
                break
    return result


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m reference.diverge", description=__doc__.split("\n")[0])
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--continue", dest="stop", action="store_false",
                        help="keep going after the parting step, to record the whole curve")
    parser.add_argument("--steps", type=int, default=1500, help="at most this many steps (1500: one epoch)")
    parser.add_argument("--json", default=None, help="also write the result (gaps, flips) to this file")
    args = parser.parse_args(argv)
    if args.seed < 0 or args.steps < 1:
        parser.error("--seed must be >= 0 and --steps >= 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.json:
        from nn.cli._common import check_json
        from nn.errors import InputError

        try:
            check_json(args.json)
        except InputError as exc:
            print(f"reference.diverge: error: {exc}", file=sys.stderr)
            return 2
    result = find(args.dtype, args.seed, args.steps, stop=args.stop)
    print(result.report())
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result.as_dict(), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
