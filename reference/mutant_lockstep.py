"""The Keras lockstep check of nn's mutant catalogue (nn.gradcheck.mutants), when TensorFlow is installed.

nn and its Keras twin take LOCKSTEP_STEPS training steps side by side from the
same weights on the same batches of each mutant network; a mutant is caught
when the weights or Adam's moments drift apart by more than LOCKSTEP_TOLERANCE
relative. The correct float64 code stays within 1e-10 over whole epochs
(tests/reference/test_keras_lockstep.py), and it is that bound used here.
A gradient bug that Adam's scale invariance hides from the weights (a
missing 1/B) still shows in the moments.
"""

from reference.lockstep import Lockstep

LOCKSTEP_STEPS = 3
LOCKSTEP_TOLERANCE = 1e-10


def lockstep_check(seed=0):
    """Names of the networks whose nn and Keras training steps disagree."""
    from nn.gradcheck.mutants import networks

    found = []
    for i, (model, x, y) in enumerate(networks(seed)):
        lockstep = Lockstep(model)
        for _ in range(LOCKSTEP_STEPS):
            lockstep.step(x, y)
        m_gap, v_gap = lockstep.state_rel_diff()
        if max(max(lockstep.trace.weight_rel_diff), m_gap, v_gap) > LOCKSTEP_TOLERANCE:
            found.append(f"network {i}")
    return found
