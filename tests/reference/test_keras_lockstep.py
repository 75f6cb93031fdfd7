"""nn and Keras trained in lockstep from the same weights on the same batches stay together."""

import numpy as np
import pytest

from nn.recipe import scale_images, seed_model

pytestmark = pytest.mark.keras


def test_float32_trajectories_stay_within_accumulated_rounding(twin, train_split, chain_tolerance,
                                                             seed_terms, record_property):
    # One step from identical weights already leaves a gap: Adam's first update,
    # lr g / (|g| + eps_hat) with eps_hat = eps / sqrt(1 - b2) = 3.2e-6, has gain
    # lr / eps_hat = 316 on gradients that cancel to nearly 0, and turns their
    # rounding disagreement (~1e-9) into ~1e-6 of the largest weight. That gain is
    # Adam's largest: eps_hat_t = eps / sqrt(1 - b2^t) only shrinks, and alpha_t
    # with it, so no later step adds more than the first did. Until a ReLU input
    # lands within rounding of 0 (not in these steps for this seed: that happens
    # near step 70) the network does not amplify the gaps, so after t steps they
    # add up to at most t times the first: gap_t <= t * gap_1. A wrong formula
    # breaks this at once: 1% off in lr moves weights by 1e-5 per step.
    from reference.lockstep import Lockstep

    images, labels = train_split
    x, y = scale_images(images[:30 * 32], "float32"), labels[:30 * 32]
    lockstep = Lockstep(seed_model(0, "float32", backend="numpy"))
    lockstep.epoch(x, y, np.arange(len(x)))
    gaps = np.array(lockstep.trace.weight_rel_diff)
    assert len(gaps) == 30
    record_property("gap_step_1", gaps[0])
    record_property("gap_step_30", gaps[-1])
    assert 0 < gaps[0] < 1e-5  # rounding, not a bug: a bug is 1e-3 on step 1
    assert np.all(gaps <= np.arange(1, 31) * gaps[0])
    m_gap, v_gap = lockstep.state_rel_diff()
    assert m_gap <= 30 * gaps[0] and v_gap <= 30 * gaps[0]
    # Step t's loss is measured before its update, from weights gap_{t-1} apart
    # (relatively). |dL/dz| <= 1 per logit and the logits are ~1 in size here, so
    # the losses differ by the logits' rounding (chain_tolerance over 947 terms)
    # plus what three layers' weight gaps move them by (3 gap_{t-1}).
    before = np.concatenate([[0.0], gaps[:-1]])
    loss_gap = np.abs(np.subtract(lockstep.trace.nn_loss, lockstep.trace.keras_loss))
    assert np.all(loss_gap <= chain_tolerance(seed_terms["forward"], "float32") + 3 * before)
    assert lockstep.trace.nn_accuracy == lockstep.trace.keras_accuracy


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_float64_stays_within_1e_10_of_keras_for_a_full_epoch(backend, twin, train_split,
                                                              record_property):
    # The promise, held at every one of 1,500 steps: float64 rounding
    # (u = 1.1e-16) accumulated over a chain of ~1,021 terms per gradient is
    # ~7e-15 per step (test_keras_gradients); a random walk over 1,500 steps
    # grows it by sqrt(1500) ~ 39 and Adam's gain on nearly-zero gradients by up
    # to 316 at worst: ~1e-10. Measured: 6e-14 at the end of the epoch.
    from reference.lockstep import Lockstep

    images, labels = train_split
    x = scale_images(images, "float64")
    model = seed_model(0, "float64", backend=backend)
    order = model.shuffle_rng.permutation(len(x))  # the permutation nn's fit would draw
    lockstep = Lockstep(model, state_every=100)
    nn_logs, keras_logs = lockstep.epoch(x, labels, order)
    trace = lockstep.trace
    assert len(trace) == 1500
    record_property("max_weight_rel_diff", max(trace.weight_rel_diff))
    assert max(trace.weight_rel_diff) <= 1e-10
    m_gaps = [g for g in trace.m_rel_diff if not np.isnan(g)]
    v_gaps = [g for g in trace.v_rel_diff if not np.isnan(g)]
    assert len(m_gaps) == 15 and max(m_gaps) <= 1e-10 and max(v_gaps) <= 1e-10
    # Losses are measured from weights within 1e-10 of each other.
    np.testing.assert_allclose(trace.nn_loss, trace.keras_loss, rtol=1e-10)
    assert trace.nn_accuracy == trace.keras_accuracy
    assert nn_logs["loss"] == pytest.approx(keras_logs["loss"], rel=1e-10)
