"""python -m reference.compare runs end to end and writes what it promises."""

import json

import pytest

pytestmark = pytest.mark.keras


def test_compare_writes_tables_json_and_pngs(twin, tmp_path, capsys):
    from reference import compare

    out = tmp_path / "out.json"
    assert compare.main(["--dtype", "float32,float64", "--epochs", "2", "--seeds", "0,1",
                         "--limit", "800", "--state-every", "5", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| seed | nn test acc | Keras test acc |" in printed
    doc = json.loads(out.read_text())
    assert doc["command"].startswith("python -m reference.compare --dtype float32,float64")
    assert doc["settings"]["tf_intra_op_threads"] == 1
    assert doc["settings"]["openblas_threads"] in (1, None)  # None: no OpenBLAS (e.g. MKL)
    assert [(r["seed"], r["dtype"]) for r in doc["runs"]] == [
        (0, "float32"), (1, "float32"), (0, "float64"), (1, "float64")]
    for run in doc["runs"]:
        for key in ("nn_test_accuracy", "keras_test_accuracy", "prediction_agreement",
                    "max_weight_rel_diff"):
            assert isinstance(run[key], float)
        assert len(run["epochs"]) == 2 and run["steps"] == 40  # 640 training images / 32
        assert len(run["curves"]["weight_rel_diff"]) == 40
        assert set(run["epochs"][0]["nn"]) == set(run["epochs"][0]["keras"]) == {
            "loss", "accuracy", "val_loss", "val_accuracy"}
        if run["dtype"] == "float64":  # 40 float64 steps: rounding only
            assert run["max_weight_rel_diff"] < 1e-12 and run["prediction_agreement"] == 1.0
    assert [s["dtype"] for s in doc["summaries"]] == ["float32", "float64"]
    for name in ("curves-float32.png", "curves-float64.png", "divergence-float32-float64.png"):
        assert (tmp_path / name).stat().st_size > 10_000
    # nn's side of each run is exactly nn's own fit of the seed recipe: same
    # initial weights, same permutations from the same stream, same batches.
    from nn.recipe import seed_model

    (x, y), val, _ = compare.load("float64", limit=800)
    model = seed_model(0, "float64", backend="numpy")
    history = model.fit(x, y, batch_size=32, epochs=2, validation_data=val, verbose=0).history
    ours = doc["runs"][2]["epochs"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        # Same values summed in the same order: only the epoch mean's last division may round.
        assert [e["nn"][key] for e in ours] == pytest.approx(history[key], rel=1e-15)
