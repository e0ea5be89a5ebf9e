"""bench/arch_step_noise.py: the Adam figures read off a search checkpoint's saved moments."""

from __future__ import annotations

import math

import pytest
import torch

from tests.bench.bench_module import load_bench


def test_adam_update_and_bounds_from_the_saved_moments() -> None:
    bench = load_bench("arch_step_noise")
    alpha = torch.nn.Parameter(torch.zeros(3, 5))
    opt = torch.optim.Adam([alpha], lr=0.01, betas=(0.5, 0.999))
    signs = [1.0, -1.0] * 50  # a gradient that flips sign every step: the update stays ~lr, alpha stays near 0
    for s in signs:
        alpha.grad = torch.full_like(alpha, s)
        opt.step()
    (fig,) = bench.adam_figures({"opt_arch": opt.state_dict()})
    assert fig["steps"] == 100
    assert fig["random_walk_bound"] == pytest.approx(math.sqrt(100) * 0.01)
    assert fig["straight_line_bound"] == pytest.approx(1.0)
    state = opt.state_dict()["state"][0]
    m = state["exp_avg"] / (1 - 0.5 ** 100)
    v = state["exp_avg_sq"] / (1 - 0.999 ** 100)
    assert fig["adam_update_over_lr"] == pytest.approx(float((m / (v.sqrt() + 1e-8)).abs().mean()))
    assert float(alpha.detach().abs().max()) < 0.05 < fig["adam_update_over_lr"] * 0.01 * 100  # moved far less than it stepped
