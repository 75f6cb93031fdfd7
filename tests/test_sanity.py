"""`nn sanity`: passes on the recipe, and each planted fault fails its check with exit 1."""

import pytest

from nn.cli import main
from nn.gradcheck import mutants

pytestmark = pytest.mark.data


def test_the_recipe_passes_every_sanity_check(capsys):
    assert main(["sanity"]) == 0
    out = capsys.readouterr().out
    assert out.count("ok  ") == 4 and "PASSED: 4 of 4" in out
    assert "initial loss 2.3" in out and "accepted [2.003, 2.603]" in out


def test_unscaled_pixels_fail_the_initial_loss(monkeypatch, capsys):
    import nn.recipe

    monkeypatch.setattr(nn.recipe, "scale_images", lambda images, dtype="float32": images.astype(dtype))
    assert main(["sanity"]) == 1
    out = capsys.readouterr().out
    assert "FAIL initial loss" in out and "FAILED" in out


def test_a_backprop_bug_fails_the_gradient_check(capsys):
    bug = {m.name: m for m in mutants.MUTANTS}["input-grad-before-relu-mask"]
    with bug.applied():
        assert main(["sanity", "--backend", "numpy"]) == 1
    assert "FAIL gradient check" in capsys.readouterr().out
