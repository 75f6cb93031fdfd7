"""nn never changes the user's matplotlib, and never imports TensorFlow: importing any module leaves both alone."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROBE = """
import importlib, pkgutil, sys
import matplotlib
before = matplotlib.get_backend()
import nn
names = [m.name for m in pkgutil.walk_packages(nn.__path__, "nn.") if m.name != "nn.__main__"]
for name in names:
    importlib.import_module(name)
import nn.plotting
nn.plotting.plot_history({"loss": [1.0, 0.5], "accuracy": [0.5, 0.9]})
assert "matplotlib.pyplot" not in sys.modules or before == matplotlib.get_backend()
assert "tensorflow" not in sys.modules and "keras" not in sys.modules, "nn imported TensorFlow"
print(before, matplotlib.get_backend(), len(names))
"""


def test_importing_every_nn_module_and_plotting_keeps_the_backend():
    # svg is a real, non-default backend: a module calling matplotlib.use("Agg") would show.
    env = dict(os.environ, MPLBACKEND="svg")
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    before, after, count = done.stdout.split()
    assert before == after == "svg"
    assert int(count) >= 20  # every module of the package was imported
