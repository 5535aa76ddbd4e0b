"""The recovered network reproduces the convex optimum; torch twin agrees."""

import numpy as np
import pytest
import torch

from skconvexscore._cvxpy_solver import solve_arrangement_output_cvxpy, solve_univariate_cvxpy
from skconvexscore._network import ScoreNetwork, recover_arrangement, recover_univariate
from skconvexscore._programs import ArrangementProgram, UnivariateProgram, sample_patterns, standardize
from skconvexscore._univariate_solver import solve_univariate_exact

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


@pytest.mark.parametrize("activation", ["relu", "abs"])
def test_jacobians_are_autograds_and_their_trace_is_the_jacobian_trace(activation):
    net = _random_network(3, 12, activation, seed=2)
    X = np.random.default_rng(5).normal(size=(25, 3))
    x = torch.tensor(X, requires_grad=True)
    s = net.to_torch()(x)
    rows = [torch.autograd.grad(s[:, k].sum(), x, retain_graph=True)[0] for k in range(3)]
    jac = net.jacobians(X)
    np.testing.assert_allclose(jac, torch.stack(rows, dim=1).numpy(), atol=1e-12)
    np.testing.assert_allclose(np.trace(jac, axis1=1, axis2=2), net.jacobian_trace(X), atol=1e-12)


def test_torch_inference_runs_in_row_chunks_with_the_same_numbers(monkeypatch):
    """Without gradients the module evaluates rows in chunks: a fit near the bound has 1e4-1e5
    units, and 2e4 rows took 4.4 GB in one (rows x units) activation."""
    import skconvexscore._torch_network as torch_network

    net = _random_network(2, 40, "relu", seed=4)
    X = torch.tensor(np.random.default_rng(6).normal(size=(1000, 2)))
    module = net.to_torch()
    with torch.no_grad():
        whole = module(X)
        monkeypatch.setattr(torch_network, "_FORWARD_CHUNK_ELEMENTS", 40 * 64)
        chunked = module(X)
    np.testing.assert_allclose(chunked.numpy(), whole.numpy(), rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(chunked.numpy(), net.score(X.numpy()), atol=1e-12)


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


def _units_score_and_trace(net, x, dtype=np.float64):
    """Score and trace of a univariate network summed unit by unit (the definition)."""
    w, b = net.hidden_weights[:, 0].astype(dtype), net.hidden_biases.astype(dtype)
    a = net.output_weights[:, 0].astype(dtype)
    x = np.asarray(x, dtype=dtype) - dtype(net.origin[0])
    pre = x[:, None] * w + b
    gain = a * w
    if net.activation == "abs":
        hidden, deriv = np.abs(pre), np.where(pre == 0, -np.sign(gain), np.sign(pre))
    else:
        hidden, deriv = np.maximum(pre, 0), np.where(pre == 0, gain < 0, pre > 0)
    v, c = dtype(net.skip_weights[0, 0]), dtype(net.output_bias[0])
    return hidden @ a + v * x + c, deriv.astype(dtype) @ gain + v


@pytest.mark.parametrize("activation", ["relu", "abs"])
@pytest.mark.parametrize("n_units", [0, 1, 7, 300])
def test_univariate_pieces_are_the_units_summed(activation, n_units):
    rng = np.random.default_rng(n_units)
    w = rng.normal(size=n_units)
    w[::5] = 0.0  # constants
    b = rng.normal(size=n_units)
    if n_units > 3:
        b[3] = 2.0 * b[1]
        w[3] = 2.0 * w[1]  # two units with one kink
    net = ScoreNetwork(w[:, None], b, rng.normal(size=(n_units, 1)), rng.normal(size=(1, 1)),
                       rng.normal(size=1), activation)
    pieces = net.piecewise()
    x = 3.0 * rng.normal(size=2000)
    score, trace = _units_score_and_trace(net, x)
    scale = 1.0 + np.abs(score).max()
    np.testing.assert_allclose(net.score(x[:, None])[:, 0], score, rtol=0, atol=1e-13 * scale)
    np.testing.assert_allclose(net.jacobian_trace(x[:, None]), trace, rtol=0, atol=1e-13 * scale)
    # continuity: the score at a breakpoint is the limit from both sides
    t = pieces.breakpoints
    np.testing.assert_allclose(pieces.score(t), _units_score_and_trace(net, t)[0],
                               rtol=0, atol=1e-12 * scale)
    assert pieces.slopes.size == t.size + 1
    kinks = np.unique(-b[w != 0] / w[w != 0])
    if kinks.size:
        np.testing.assert_array_equal(t, kinks)
    else:  # no kink: one breakpoint where the slope does not change
        assert t.size == 1 and pieces.slopes[0] == pieces.slopes[1]


@pytest.mark.parametrize("activation", ["relu", "abs"])
def test_univariate_trace_at_shared_kinks_takes_each_units_smaller_side(activation):
    # three units kink exactly at 0 (pre-activation exactly 0 there), one elsewhere
    w = np.array([1.0, -2.0, 0.5, 3.0])
    b = np.array([0.0, 0.0, 0.0, 1.0])
    a = np.array([2.0, 1.5, -4.0, -1.0])
    net = ScoreNetwork(w[:, None], b, a[:, None], np.array([[0.3]]), np.array([0.1]), activation)
    gain = a * w
    on_side = -np.abs(gain[:3]) if activation == "abs" else np.minimum(gain[:3], 0.0)
    # the fourth unit kinks at -1/3; at 0 its pre-activation is positive
    other = gain[3]
    assert net.jacobian_trace(np.zeros((1, 1)))[0] == pytest.approx(0.3 + on_side.sum() + other)
    assert net.jacobian_trace(np.zeros((1, 1)))[0] == _units_score_and_trace(net, [0.0])[1][0]


def test_univariate_pieces_are_at_least_as_accurate_as_summing_the_units():
    # near the well-posedness bound the units' slopes reach ~1e7 here, with alternating
    # signs, while the score stays ~1e3: the sum of the units cancels
    n = 3000
    X = np.random.default_rng(1).standard_normal((n, 1)) + 40.0
    Z, st = standardize(X)
    program = UnivariateProgram("sm", np.sort(Z[:, 0]), 2.0 / n)
    sol = solve_univariate_exact(program)
    net = recover_univariate(program, sol.coef, sol.slope, sol.intercept, st)
    assert net.n_units > 300
    x = X[:, 0]
    exact = _units_score_and_trace(net, x, dtype=np.longdouble)[0].astype(np.float64)
    summed_error = np.abs(_units_score_and_trace(net, x)[0] - exact).max()
    error = np.abs(net.score(X)[:, 0] - exact).max()
    assert error <= summed_error
    if np.finfo(np.longdouble).eps < 1e-18:  # x87 extended precision (x86-64 Linux)
        # measured 3e-14 here, where summing the units in float64 loses 4e-11
        assert error <= 1e-12 * np.abs(exact).max()


def test_univariate_evaluation_does_not_build_a_points_by_units_array():
    import tracemalloc

    rng = np.random.default_rng(6)
    m, n = 5_000, 20_000  # one (n, m) float64 array would take 800 MB
    net = ScoreNetwork(rng.normal(size=(m, 1)), rng.normal(size=m), rng.normal(size=(m, 1)),
                       np.array([[-1.0]]), np.zeros(1))
    X = rng.normal(size=(n, 1))
    tracemalloc.start()
    try:
        net.score(X)
        net.jacobian_trace(X)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50e6


@pytest.mark.parametrize("d", [1, 3])
def test_recentred_network_is_the_same_function(d):
    net = _random_network(d, 40, "relu", seed=7)
    X = np.random.default_rng(8).normal(size=(200, d)) + 5.0
    moved = net.recentred(np.full(d, 5.0))
    np.testing.assert_allclose(moved.origin, 5.0)
    np.testing.assert_allclose(moved.score(X), net.score(X), atol=1e-11)
    np.testing.assert_allclose(moved.jacobian_trace(X), net.jacobian_trace(X), atol=1e-11)
    back = moved.recentred(0.0)
    np.testing.assert_allclose(back.hidden_biases, net.hidden_biases, atol=1e-12)
    np.testing.assert_allclose(back.output_bias, net.output_bias, atol=1e-12)
    # the torch twin subtracts the origin too
    with torch.no_grad():
        np.testing.assert_allclose(moved.to_torch()(torch.as_tensor(X)).numpy(), net.score(X),
                                   atol=1e-11)


def test_near_duplicate_kinks_stay_on_their_side_of_the_point():
    """Two points 1.1e-12 apart near 92: the kink beside them was shifted by 1e-6 of that gap,
    below one rounding of its coordinate, so it landed on the point and the network's
    objective was +0.0102 instead of the optimum -0.0324 (which cvxpy confirms)."""
    from skconvexscore import ConvexScoreMatcher

    x = np.array([93.66805909807773, 96.22436494767192, 89.08853882380805, 87.22319833613392,
                  106.30411490768232, 105.81165812412806, 112.94558819441117,
                  92.45394208740069, 92.45394208740178])
    alpha = 1.01 / x.size
    model = ConvexScoreMatcher(alpha=alpha).fit(x[:, None])
    assert model.objective_ == pytest.approx(-0.03240935721265, rel=1e-8)
    network_value = model.networks_[0].sm_objective(x[:, None], alpha)
    assert network_value == pytest.approx(model.objective_, rel=1e-7)


def test_points_too_close_for_a_kink_beside_them_raise():
    """0..7 and a point 1e-13 from 3: as ties these points would make the abs program without
    skip connection unbounded at this alpha; its optimum (~-4e21) puts a kink beside a point
    with no room left in floating point. fit says so instead of returning a network whose
    objective is not objective_."""
    from skconvexscore import ConvexScoreMatcher
    from skconvexscore._programs import SolverError

    x = np.r_[np.arange(8.0), 3.0 + 1e-13]
    model = ConvexScoreMatcher(alpha=1.05 / x.size, activation="abs", skip_connection=False)
    with pytest.raises(SolverError, match="Merge near-duplicate points"):
        model.fit(x[:, None])
