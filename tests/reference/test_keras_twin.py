"""reference.twin: the Keras model built for an nn model computes what nn computes."""

import numpy as np
import pytest

import nn
from nn.errors import ModelError
from nn.recipe import scale_images, seed_model

pytestmark = pytest.mark.keras


def any_stack(dtype, seed=3):
    """Separate ReLU and Softmax layers and a linear Dense: every layer kind nn has."""
    model = nn.Sequential([nn.Flatten(input_shape=(28, 28)), nn.Dense(16), nn.ReLU(),
                           nn.Dense(10), nn.Softmax()], dtype=dtype, seed=seed, backend="numpy")
    model.compile()
    return model


def test_layers_names_dtype_and_weights_carry_over(twin, dtype):
    model = seed_model(0, dtype, backend="numpy")
    kmodel = twin.to_keras(model)
    assert [layer.name for layer in kmodel.layers] == ["flatten", "dense", "dense_1", "dense_2"]
    assert [layer.name for layer in model.layers] == [layer.name for layer in kmodel.layers]
    assert all(w.dtype == dtype for w in kmodel.get_weights())
    assert kmodel.optimizer.learning_rate.dtype == dtype  # Keras makes it in floatx
    for ours, theirs in zip(model.get_weights(), kmodel.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    back = twin.from_keras(kmodel, backend="numpy")
    assert back.dtype == model.dtype and back.optimizer.get_config() == model.optimizer.get_config()
    for ours, theirs in zip(model.get_weights(), back.get_weights()):
        np.testing.assert_array_equal(ours, theirs)


def test_forward_outputs_agree_within_rounding(twin, dtype, mnist, chain_tolerance, unit_roundoff,
                                                seed_terms, record_property):
    # Logits come from 947 summed terms, so the two sides' logits
    # may differ by chain_tolerance * max|z| (float32: 3.7e-6 * max|z|). A
    # probability moves by dp_i = p_i (dz_i - sum_j p_j dz_j), at most
    # 2 p_i (1 - p_i) max|dz| <= max|dz| / 2, plus the softmax's own few roundings
    # (4u). At initialisation max|z| ~ 1.2, so float32 allows ~2e-6.
    (_, _), (x_test, _) = mnist
    x = scale_images(x_test[:2000], dtype)
    model = seed_model(0, dtype, backend="numpy")
    logits_model = nn.Sequential([nn.Flatten(input_shape=(28, 28)), nn.Dense(128, "relu"),
                                  nn.Dense(32, "relu"), nn.Dense(10)], dtype=dtype,
                                 backend="numpy")
    logits_model.set_weights(model.get_weights())
    with twin.keras_floatx(dtype):
        k_logits = twin.to_keras(logits_model).predict(x, verbose=0)
        k_probs = twin.to_keras(model).predict(x, verbose=0)
    z = logits_model.predict(x)
    z_tol = chain_tolerance(seed_terms["forward"], dtype) * np.abs(z).max()
    p_tol = z_tol / 2 + 4 * unit_roundoff(dtype)
    assert k_probs.dtype == dtype and k_logits.dtype == dtype
    record_property("probs_max_diff", float(np.abs(model.predict(x) - k_probs).max()))
    record_property("probs_tolerance", float(p_tol))
    assert np.abs(z - k_logits).max() <= z_tol
    assert np.abs(model.predict(x) - k_probs).max() <= p_tol
    if dtype == "float32":
        assert 5e-7 <= p_tol <= 3e-6  # the "around 1e-6", for the record


def test_any_stack_of_nn_layers_has_a_twin(twin, dtype, batch, chain_tolerance, unit_roundoff,
                                           max_logit):
    model = any_stack(dtype)
    kmodel = twin.to_keras(model)
    assert [type(layer).__name__ for layer in kmodel.layers] == ["Flatten", "Dense", "ReLU",
                                                                  "Dense", "Softmax"]
    x, _ = batch(dtype, size=256)
    with twin.keras_floatx(dtype):
        k_probs = kmodel.predict(x, verbose=0)
    # As in the forward test, with 785 + 17 terms to the logits.
    tol = chain_tolerance(802, dtype) * max_logit(model, x) / 2 + 4 * unit_roundoff(dtype)
    assert np.abs(model.predict(x) - k_probs).max() <= tol
    back = twin.from_keras(kmodel, backend="numpy")
    assert [type(layer).__name__ for layer in back.layers] == ["Flatten", "Dense", "ReLU",
                                                                "Dense", "Softmax"]


def test_saved_keras_file_loads_in_keras_and_back_into_nn(twin, tmp_path, dtype, batch,
                                                          chain_tolerance, seed_terms,
                                                          unit_roundoff, max_logit):
    import keras

    model = seed_model(1, dtype, backend="numpy")
    path = str(tmp_path / "seed.keras")
    twin.save_keras(model, path)
    with twin.keras_floatx(dtype):
        loaded = keras.models.load_model(path)
        x, _ = batch(dtype, size=512)
        k_probs = loaded.predict(x, verbose=0)
    for ours, theirs in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    probs = model.predict(x)
    # As in the forward test.
    tol = (chain_tolerance(seed_terms["forward"], dtype) * max_logit(model, x) / 2
           + 4 * unit_roundoff(dtype))
    assert np.abs(probs - k_probs).max() <= tol
    assert np.array_equal(probs.argmax(axis=1), k_probs.argmax(axis=1))
    again = twin.load_keras(path, backend="numpy")
    assert again.dtype == model.dtype
    for ours, theirs in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(again.predict(x), probs)


def test_keras_layers_nn_lacks_are_refused_in_one_sentence(twin):
    import keras

    kmodel = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="tanh")])
    with pytest.raises(ModelError, match="nn has no layer computing Keras's Dense"):
        twin.from_keras(kmodel)
    other_loss = twin.to_keras(seed_model(0, backend="numpy"))
    other_loss.compile(optimizer="adam", loss="categorical_crossentropy")
    with pytest.raises(ModelError, match="sparse_categorical_crossentropy"):
        twin.from_keras(other_loss)
    assert twin.from_keras(other_loss, compile=False, backend="numpy").optimizer is None
    with pytest.raises(nn.InputError, match="end in .keras"):
        twin.save_keras(seed_model(0, backend="numpy"), "model.h5")
