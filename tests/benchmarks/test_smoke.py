"""Each benchmark script runs end to end for nn only, with tiny settings, and writes valid JSON."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = [pytest.mark.data, pytest.mark.slow]


def run(script, tmp_path, *args):
    out = tmp_path / "result.json"
    done = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", script), *args, "--json", str(out)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["machine"]["cores"] >= 1 and "numpy" in result["versions"]
    return result, done.stdout


def test_train_speed(tmp_path):
    result, stdout = run("train_speed.py", tmp_path, "--frameworks", "nn-numba,nn-numpy",
                         "--batch-sizes", "1024", "--epochs", "2")
    assert result["matmul_gflops"] > 0
    rows = {r["framework"]: r for r in result["rows"]}
    assert set(rows) == {"nn-numba", "nn-numpy"}
    for row in rows.values():
        assert row["batch_size"] == 1024 and row["epoch_seconds_median"] > 0
        assert row["first_epoch_seconds"] > 0 and 0 < row["test_accuracy"] <= 1
    assert "x Keras" in stdout


def test_scaling(tmp_path):
    result, _ = run("scaling.py", tmp_path, "--backends", "numba,numpy", "--widths", "128,256",
                    "--batch-sizes", "64", "--examples", "512", "--repeats", "1",
                    "--plot", str(tmp_path / "scaling.png"))
    assert len(result["rows"]) == 2 * 3 and all(r["gflops"] > 0 for r in result["rows"])
    assert (tmp_path / "scaling.png").stat().st_size > 1000


def test_inference(tmp_path):
    result, _ = run("inference.py", tmp_path, "--batch-sizes", "1000", "--repeats", "1", "--calls", "20")
    latency = [r for r in result["rows"] if r["batch_size"] == 1]
    assert len(latency) == 2 and all(r["latency_us_median"] > 0 for r in latency)


def test_startup_memory(tmp_path):
    result, _ = run("startup_memory.py", tmp_path, "--backends", "numpy", "--epochs", "1")
    assert result["rows"][0]["peak_rss_mib"] > 0


def test_gradcheck_speed(tmp_path):
    result, stdout = run("gradcheck_speed.py", tmp_path, "--examples", "1", "--repeats", "1")
    assert [r["method"] for r in result["rows"]] == ["fd", "complex", "directional"]
    assert all(r["passed"] and r["seconds_median"] > 0 for r in result["rows"])
    assert "worst error" in stdout


def test_subnormals(tmp_path):
    result, stdout = run("subnormals.py", tmp_path, "--epochs", "1")  # 1,500 steps: moments decay
    (row,) = result["rows"]  # below 1.2e-38 after about 800 steps without their pixel
    assert row["ieee_s"] > 0 and row["flushed_s"] > 0
    assert row["subnormal_m_ieee"] > 0 and row["subnormal_moments_flushed"] == 0
    assert row["parameters"] == 104_938 and "IEEE/flushed" in stdout
