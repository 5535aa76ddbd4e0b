"""The recovered network reproduces the convex optimum; torch twin agrees."""

import numpy as np
import pytest
import torch

from skconvexscore._cvxpy_solver import solve_arrangement_output_cvxpy, solve_univariate_cvxpy
from skconvexscore._network import ScoreNetwork, recover_arrangement, recover_univariate
from skconvexscore._programs import ArrangementProgram, UnivariateProgram, sample_patterns, standardize

VARIANTS = [("relu", True), ("relu", False), ("abs", True), ("abs", False)]


def _bimodal(n, seed=0, offset=0.0):
    rng = np.random.default_rng(seed)
    x = np.where(rng.random(n) < 0.5, rng.normal(-2, 0.5, n), rng.normal(2, 0.7, n))
    return (x + offset)[:, None]


@pytest.mark.parametrize("activation, skip", VARIANTS)
def test_univariate_network_tends_to_the_convex_value_as_kinks_approach_the_data(activation, skip):
    X = _bimodal(60, seed=1, offset=50.0)
    Z, st = standardize(X)
    alpha = 3.0 / 60 * (2 if (activation, skip) == ("abs", True) else 1)
    program = UnivariateProgram("sm", np.sort(Z[:, 0]), alpha, activation, skip)
    sol = solve_univariate_cvxpy(program)
    optimum = sol.objective / st.scale**2
    gaps = []
    for shift in (1e-1, 1e-2, 1e-3):
        net = recover_univariate(program, sol.coef, sol.slope, sol.intercept, st, kink_shift=shift)
        gaps.append(net.sm_objective(X, alpha) - optimum)
    gaps = np.abs(gaps)
    # the gap is O(delta): it shrinks about tenfold with delta
    assert gaps[1] < 0.2 * gaps[0] and gaps[2] < 0.2 * gaps[1]
    default = recover_univariate(program, sol.coef, sol.slope, sol.intercept, st)
    assert default.sm_objective(X, alpha) == pytest.approx(optimum, rel=1e-5)


@pytest.mark.parametrize("objective", ["sm", "dsm"])
@pytest.mark.parametrize("activation, skip", VARIANTS)
def test_arrangement_network_objective_equals_the_convex_value(objective, activation, skip):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(40, 2)) @ np.array([[1.0, 0.3], [0.0, 0.6]]) + [10.0, -5.0]
    targets = None
    if objective == "dsm":
        eps = rng.standard_normal(X.shape)
        X, targets_x = X + 0.3 * eps, -eps / 0.3
    Z, st = standardize(X)
    if objective == "dsm":
        targets = targets_x * st.scale  # s_z = scale * s_x
    masks, gates = sample_patterns(Z, 40, activation, np.random.RandomState(0))
    alpha = 0.2 if objective == "sm" else 0.02
    program = ArrangementProgram(objective, Z, masks, gates, alpha, activation, skip, targets)
    sols = [solve_arrangement_output_cvxpy(program, k) for k in range(2)]
    net = recover_arrangement(program, sols, st)
    optimum = sum(s.objective for s in sols) / st.scale**2
    assert net.n_units > 0
    if objective == "sm":
        value = net.sm_objective(X, alpha)
    else:
        value = net.dsm_objective(X, targets_x, alpha)
    assert value == pytest.approx(optimum, rel=1e-5, abs=1e-7)


def _random_network(d, m, activation, seed=0):
    rng = np.random.default_rng(seed)
    out = np.zeros((m, d))
    out[np.arange(m), rng.integers(0, d, m)] = rng.normal(size=m)
    return ScoreNetwork(rng.normal(size=(m, d)), rng.normal(size=m), out,
                        rng.normal(size=(d, d)), rng.normal(size=d), activation)


@pytest.mark.parametrize("activation", ["relu", "abs"])
def test_torch_module_computes_the_same_score_and_trace(activation):
    net = _random_network(3, 12, activation)
    X = np.random.default_rng(1).normal(size=(25, 3))
    module = net.to_torch()
    x = torch.tensor(X, requires_grad=True)
    s = module(x)
    np.testing.assert_allclose(s.detach().numpy(), net.score(X), atol=1e-12)
    trace = sum(torch.autograd.grad(s[:, k].sum(), x, retain_graph=True)[0][:, k] for k in range(3))
    np.testing.assert_allclose(trace.numpy(), net.jacobian_trace(X), atol=1e-12)


def test_trace_at_a_kink_takes_the_smaller_one_sided_derivative():
    # s(x) = r relu(x); at x = 0 the one-sided derivatives are 0 and r
    for r, expected in ((2.0, 0.0), (-2.0, -2.0)):
        net = ScoreNetwork(np.ones((1, 1)), np.zeros(1), np.array([[r]]), np.zeros((1, 1)), np.zeros(1))
        assert net.jacobian_trace(np.zeros((1, 1)))[0] == expected


def test_lipschitz_bound_bounds_finite_differences():
    net = _random_network(2, 30, "relu", seed=3)
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(500, 2)), rng.normal(size=(500, 2))
    ratio = np.linalg.norm(net.score(a) - net.score(b), axis=1) / np.linalg.norm(a - b, axis=1)
    assert ratio.max() <= net.lipschitz_bound() + 1e-12
