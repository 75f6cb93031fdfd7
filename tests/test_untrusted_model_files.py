"""load_model treats a file as untrusted: sizes from headers first, bounded config, clear refusals.

And save_model never writes a file load_model would refuse.
"""

import io
import json
import resource
import zipfile

import numpy as np
import pytest

from nn import Dense, Flatten, InputError, ModelError, Sequential, load_model, save_model
from nn.saving import MAX_CONFIG_BYTES, model_config


def small_model(**kwargs):
    model = Sequential([Flatten(input_shape=(2, 2)), Dense(3, activation="relu")], seed=0,
                       backend="numpy", **kwargs)
    model.compile()
    return model


def npy_bytes(array=None, shape=None, dtype="<f4", payload=b""):
    """A .npy member: a real array's bytes, or a header claiming `shape` followed by `payload`."""
    buf = io.BytesIO()
    if array is not None:
        np.lib.format.write_array(buf, np.asarray(array), allow_pickle=False)
        return buf.getvalue()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue() + payload


def write_npz(path, config, members, zeros=None):
    """An .npz with `config` and `members`; zeros=(name, shape): a member of that many float32 zeros.

    The zeros are streamed in (deflate packs 400 MB of them into ~0.4 MB), so
    the file is small and its member honest: reading it really takes the memory.
    """
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("config.npy", npy_bytes(np.array(config if isinstance(config, str) else json.dumps(config))))
        for name, data in members.items():
            zf.writestr(name + ".npy", data)
        if zeros is not None:
            name, shape = zeros
            with zf.open(name + ".npy", "w", force_zip64=True) as f:
                f.write(npy_bytes(shape=shape))
                chunk = bytes(1 << 22)
                for _ in range(int(np.prod(shape)) * 4 // len(chunk)):
                    f.write(chunk)
    return path


def good_members():
    model = small_model()
    return {f"weights/{i}/{layer.name}/{key}": npy_bytes(layer.params[key])
            for i, layer in enumerate(model.layers) for key in layer.params}


GOOD = model_config(small_model())


def peak_rss_growth(fn):
    """(result or exception, growth of the peak resident memory in MiB) of calling fn."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        out = fn()
    except Exception as exc:  # noqa: BLE001  (the caller checks which)
        out = exc
    return out, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024


def test_a_member_claiming_gigabytes_is_refused_from_its_header(tmp_path):
    # The kernel's header says 100 million float32 (400 MB), all stored as deflated
    # zeros: reading the array before checking its header would take the 400 MB.
    members = good_members()
    del members["weights/1/dense/kernel"]
    path = write_npz(tmp_path / "bomb.npz", GOOD, members, zeros=("weights/1/dense/kernel", (4, 25_000_000)))
    assert path.stat().st_size < 2_000_000  # < 2 MB on disk, 400 MB once read
    error, grown = peak_rss_growth(lambda: load_model(path))
    assert isinstance(error, ModelError) and "do not match its architecture" in str(error)
    assert grown < 100  # MiB: nothing near the claimed size was allocated


def test_a_member_the_config_does_not_explain_is_refused_before_decompressing(tmp_path):
    path = write_npz(tmp_path / "extra.npz", GOOD, good_members(),
                     zeros=("weights/9/extra/kernel", (100_000_000,)))
    error, grown = peak_rss_growth(lambda: load_model(path))
    assert isinstance(error, ModelError) and "do not match its architecture" in str(error)
    assert grown < 100


def test_a_huge_units_with_matching_headers_is_refused_as_unallocatable(tmp_path):
    config = json.loads(json.dumps(GOOD))
    config["layers"][1]["config"]["units"] = 10**12
    members = {"weights/1/dense/kernel": npy_bytes(shape=(4, 10**12)),
               "weights/1/dense/bias": npy_bytes(shape=(10**12,))}
    with pytest.raises(ModelError, match="huge.npz: cannot rebuild.*cannot allocate its parameters"):
        load_model(write_npz(tmp_path / "huge.npz", config, members))


def test_a_huge_units_with_small_weights_is_refused_before_building(tmp_path):
    config = json.loads(json.dumps(GOOD))
    config["layers"][1]["config"]["units"] = 300_000_000  # 4.8 GB of float32 kernel if built
    path = write_npz(tmp_path / "units.npz", config, good_members())
    error, grown = peak_rss_growth(lambda: load_model(path))
    assert isinstance(error, ModelError) and "do not match its architecture" in str(error)
    assert grown < 100


@pytest.mark.parametrize("text, message", [
    ("[" * 100_000 + "]" * 100_000, "nests deeper than"),
    (json.dumps({"format": "nn.Sequential/1", "x": [[[[[[[[[[[[1]]]]]]]]]]]]}), "nests deeper than"),
    (json.dumps({"format": "nn.Sequential/1", "pad": "x" * (MAX_CONFIG_BYTES + 10)}), "its config is"),
], ids=["recursion", "too-deep", "too-big"])
def test_the_config_is_bounded_in_nesting_and_size(text, message, tmp_path):
    with pytest.raises(ModelError, match=message):
        load_model(write_npz(tmp_path / "deep.npz", text, good_members()))


def test_dense_of_a_trillion_units_is_a_clear_error_and_leaves_the_model_unbuilt():
    with pytest.raises(ModelError, match="cannot allocate its parameters"):
        Sequential([Dense(10**12)], input_shape=(784,))
    model = Sequential([Dense(10**12)])
    with pytest.raises(ModelError, match="use fewer units"):
        model.build((784,))
    assert not model.built and model.layers[0].params == {}


@pytest.mark.parametrize("kwargs, rename", [
    ({"name": None}, None),
    ({"name": 123}, None),
    ({}, "den\x00se"),
], ids=["model-named-None", "model-named-123", "layer-name-with-NUL"])
def test_save_model_never_writes_what_load_model_refuses(kwargs, rename, tmp_path):
    model = small_model(**kwargs)
    if rename is not None:
        model.layers[1].name = rename
    with pytest.raises(InputError, match="would not load back"):
        save_model(model, tmp_path / "m.npz")
    assert list(tmp_path.iterdir()) == []


def test_a_saved_model_still_loads_exactly(tmp_path):
    model = small_model()
    save_model(model, tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
