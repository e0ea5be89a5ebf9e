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


def test_adam_with_coupled_decay_stops_an_alpha_where_decay_cancels_its_gradient() -> None:
    """The mechanism behind ``decay_equilibrium``: a constant gradient g, L2 decay wd, Adam: alpha -> g / wd."""
    bench = load_bench("arch_step_noise")
    g, wd = 1e-3, 1e-3
    alpha = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([alpha], lr=0.03, betas=(0.5, 0.999), weight_decay=wd)
    for _ in range(3000):  # the loss pushes alpha down by g per unit; decay pulls it back to 0
        alpha.grad = torch.full_like(alpha, -g)
        opt.step()
    eq = bench.decay_equilibrium(g, 1.0, wd)
    assert eq["cap"] == pytest.approx(1.0) and eq["mean"] == pytest.approx(1.0)
    assert float(alpha.detach()) == pytest.approx(eq["cap"], abs=0.05)  # 3000 steps x lr 0.03 = 90 allowed, 1 reached
    assert bench.decay_equilibrium(g, 0.5, wd)["mean"] == pytest.approx(0.5)
    assert bench.decay_equilibrium(g, 0.5, 0.0) == {"weight_decay": 0.0, "cap": None, "mean": None}
