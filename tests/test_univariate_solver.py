"""The exact 1-D solver against the dense CVXPY reference and the maths' predictions."""

import numpy as np
import pytest

from skconvexscore import _univariate_solver as _us
from skconvexscore._cvxpy_solver import solve_univariate_cvxpy
from skconvexscore._network import recover_univariate
from skconvexscore._programs import (
    _dsm_natural_scale,
    SolverError,
    UnboundedProgramError,
    UnivariateProgram,
    gaussian_regime_alpha,
    standardize,
)
from skconvexscore._univariate_solver import solve_univariate_exact

VARIANTS = [(a, s) for a in ("relu", "abs") for s in (True, False)]


def _standardised(X):
    Z, st = standardize(np.asarray(X, dtype=np.float64)[:, None])
    return np.sort(Z.ravel()), st


def _sm_program(z, factor, activation, skip):
    bound = UnivariateProgram("sm", z, 1.0, activation, skip).well_posedness_bound()
    return UnivariateProgram("sm", z, factor * bound, activation, skip)


def _dsm_program(z, alpha, activation, skip, rng, K=3, sigma=0.3):
    x = np.repeat(z, K)
    eps = rng.standard_normal(x.size)
    noisy = x + sigma * eps
    order = np.argsort(noisy)
    return UnivariateProgram("dsm", noisy[order], alpha, activation, skip, targets=(-eps / sigma)[order])


def _agree(program, tol=1e-6):
    """Same optimum as the dense reference (which rejects points it can prove suboptimal)."""
    fast = solve_univariate_exact(program)
    ref = solve_univariate_cvxpy(program)
    assert fast.status == "optimal"
    assert fast.duality_gap <= 1e-7
    rel = (fast.objective - ref.objective) / max(1.0, abs(ref.objective))
    assert abs(rel) <= tol, (fast.objective, ref.objective)
    # the returned objective is the program's value at the returned point
    assert fast.objective == pytest.approx(
        program.objective_value(fast.coef, fast.slope, fast.intercept), rel=1e-12, abs=1e-12
    )
    return fast, ref


@pytest.mark.parametrize("activation,skip", VARIANTS)
@pytest.mark.parametrize("factor", [1.05, 2.0, 10.0])
def test_sm_matches_cvxpy(activation, skip, factor):
    rng = np.random.default_rng(1)
    z, _ = _standardised(rng.standard_normal(40))
    _agree(_sm_program(z, factor, activation, skip))


@pytest.mark.parametrize("activation,skip", VARIANTS)
@pytest.mark.parametrize("alpha", [1e-3, 1e-2, 1e-1])
def test_dsm_matches_cvxpy(activation, skip, alpha):
    rng = np.random.default_rng(2)
    z, _ = _standardised(rng.standard_normal(30))
    _agree(_dsm_program(z, alpha, activation, skip, rng))


def test_bimodal_many_kinks_matches_cvxpy():
    rng = np.random.default_rng(3)
    X = np.concatenate([rng.normal(-2, 0.5, 100), rng.normal(2, 0.5, 100)])
    z, _ = _standardised(X)
    fast, _ = _agree(_sm_program(z, 1.5, "relu", True))
    assert np.count_nonzero(fast.coef) > 5
    _agree(_sm_program(z, 20.0, "relu", True))


@pytest.mark.parametrize("activation", ["relu", "abs"])
def test_gaussian_regime(activation):
    """Above alpha_G (relu) the optimum is u = 0 with value -1/2 (standardised)."""
    rng = np.random.default_rng(4)
    z, _ = _standardised(rng.standard_normal(200))
    alpha = gaussian_regime_alpha(z) * 1.01
    if activation == "abs":
        alpha *= 2  # abs with skip at alpha = relu with skip at alpha / 2
    sol = solve_univariate_exact(UnivariateProgram("sm", z, alpha, activation, True))
    assert np.count_nonzero(sol.coef) == 0
    assert sol.objective == pytest.approx(-0.5, abs=1e-9)
    assert sol.slope == pytest.approx(-1.0, abs=1e-9)


@pytest.mark.parametrize("activation,skip", VARIANTS)
def test_unbounded_below_the_bound(activation, skip):
    rng = np.random.default_rng(5)
    z, _ = _standardised(rng.standard_normal(25))
    program = _sm_program(z, 1.0 - 1e-9, activation, skip)
    with pytest.raises(UnboundedProgramError, match="unbounded"):
        solve_univariate_exact(program)


@pytest.mark.parametrize("activation,skip", [("relu", True), ("abs", True), ("abs", False)])
def test_ties_at_extremes_and_exact_bound(activation, skip):
    """Three copies of the minimum move the bound to 3/n; at the bound it is solvable."""
    rng = np.random.default_rng(6)
    X = np.concatenate([[-4.0, -4.0, -4.0], rng.standard_normal(27), [0.3, 0.3]])
    z, _ = _standardised(X)
    bound = UnivariateProgram("sm", z, 1.0, activation, skip).well_posedness_bound()
    factor = {("relu", True): 3, ("abs", True): 6, ("abs", False): 3}[(activation, skip)]
    assert bound == pytest.approx(factor / z.size)
    with pytest.raises(UnboundedProgramError):
        solve_univariate_exact(UnivariateProgram("sm", z, bound * (1 - 1e-9), activation, skip))
    _agree(UnivariateProgram("sm", z, bound, activation, skip))
    _agree(UnivariateProgram("sm", z, 1.3 * bound, activation, skip))


def test_interior_ties_match_cvxpy():
    rng = np.random.default_rng(7)
    X = np.round(rng.standard_normal(60), 1)  # many interior ties
    z, _ = _standardised(X)
    for activation, skip in VARIANTS:
        _agree(_sm_program(z, 1.2, activation, skip))


def test_near_duplicates():
    """Gaps of 1e-12 (relative): no 1/gap blow-up, same optimum as the reference."""
    rng = np.random.default_rng(8)
    z, _ = _standardised(rng.standard_normal(40))
    z = np.sort(np.concatenate([z, z[::5] + 1e-12]))
    for activation, skip in [("relu", True), ("abs", False)]:
        _agree(_sm_program(z, 2.0, activation, skip), tol=1e-6)


def test_float32_derived_input_with_offset():
    rng = np.random.default_rng(9)
    X = (1e4 + rng.standard_normal(80)).astype(np.float32).astype(np.float64)
    z, _ = _standardised(X)
    _agree(_sm_program(z, 2.0, "relu", True))


@pytest.mark.parametrize("alpha", [1.0, 0.05])
def test_float32_points_are_solved_in_float64(alpha):
    """float32 points near 1e3: the program is held in float64, so the value is exact.

    Under NumPy 2 ``slope * x`` stays float32: the reported value was 3e-6 (relative)
    below the optimum with a gap of 3e-16, or the solve was refused ("rounding loss").
    """
    rng = np.random.default_rng(4)
    x32 = np.sort((1e3 + rng.normal(size=20)).astype(np.float32))
    program = UnivariateProgram("sm", x32, alpha)
    assert program.x.dtype == np.float64
    exact64 = solve_univariate_exact(UnivariateProgram("sm", x32.astype(np.float64), alpha))
    assert solve_univariate_exact(program).objective == exact64.objective


@pytest.mark.parametrize("activation,skip", VARIANTS)
def test_dsm_far_from_zero(activation, skip):
    """Noisy points near 1e8: the skip line's normal equations are solved about the mean.

    In ``x`` itself they are singular to rounding there (numpy's LinAlgError, or a refusal).
    """
    rng = np.random.default_rng(3)
    x = np.sort(1e8 + rng.normal(size=10))
    y = 3.0 * rng.normal(size=10)
    far = solve_univariate_exact(UnivariateProgram("dsm", x, 0.01, activation, skip, y))
    centred = solve_univariate_exact(
        UnivariateProgram("dsm", x - x.mean(), 0.01, activation, skip, y))
    assert far.objective == pytest.approx(centred.objective, rel=1e-8)


@pytest.mark.parametrize("activation,skip", VARIANTS)
def test_recovered_network_reproduces_optimum(activation, skip):
    rng = np.random.default_rng(10)
    X = 3.0 + 2.0 * rng.standard_normal(50)
    Z, st = standardize(X[:, None])
    z = np.sort(Z.ravel())
    program = _sm_program(z, 2.0, activation, skip)
    sol = solve_univariate_exact(program)
    net = recover_univariate(program, sol.coef, sol.slope, sol.intercept, st, kink_shift=1e-9)
    value = net.sm_objective(X[:, None], program.alpha) * st.scale**2
    assert value == pytest.approx(sol.objective, rel=1e-5)
    assert net.n_units == np.count_nonzero(sol.coef)


def test_recovered_network_dsm():
    rng = np.random.default_rng(11)
    X = rng.standard_normal(30)
    Z, st = standardize(X[:, None])
    z = np.sort(Z.ravel())
    program = _dsm_program(z, 1e-2, "relu", True, rng)
    sol = solve_univariate_exact(program)
    net = recover_univariate(program, sol.coef, sol.slope, sol.intercept, st)
    noisy = program.x * st.scale + st.mean[0]
    value = net.dsm_objective(noisy[:, None], program.targets[:, None] / st.scale, program.alpha)
    assert value * st.scale**2 == pytest.approx(sol.objective, rel=1e-6)


def test_large_problem_is_linear_memory_and_fast():
    rng = np.random.default_rng(12)
    n = 200_000
    z, _ = _standardised(rng.standard_normal(n))
    sol = solve_univariate_exact(UnivariateProgram("sm", z, gaussian_regime_alpha(z) * 1.01))
    assert sol.objective == pytest.approx(-0.5, abs=1e-8)


def _with_near_duplicates(n, seed, every=50, offset=1e-12):
    rng = np.random.default_rng(seed)
    z, _ = _standardised(rng.standard_normal(n))
    return np.sort(np.concatenate([z, z[::every] + offset]))


@pytest.mark.parametrize("factor", [2.0, 20.0])
def test_large_near_duplicates_certify(factor):
    """Regression: n ~ 1e5 points with near-duplicates (relative gap 1e-12) at alpha = 2/n
    and 20/n. The old fixed start (slack 1e6) needed ~120 iterations at n = 1e6, and one
    draw broke down with NaN residuals; now the point must be certified and finite."""
    z = _with_near_duplicates(100_000, 13)
    program = UnivariateProgram("sm", z, factor / z.size)
    sol = solve_univariate_exact(program)
    assert sol.status == "optimal" and sol.duality_gap <= 1e-7
    assert np.all(np.isfinite(sol.coef)) and np.isfinite(sol.objective)
    if sol.info["working_set"] is None:
        assert sol.n_iter <= 60
    else:  # n_iter sums the segment QPs' iterations over the rounds
        assert sol.info["working_set_rounds"] <= 12
    assert sol.objective == pytest.approx(
        program.objective_value(sol.coef, sol.slope, sol.intercept), rel=1e-12
    )
    if factor == 2.0:
        assert sol.objective < -1e5  # memorisation regime: large negative value


def test_gaussian_regime_starts_at_the_optimum():
    """At alpha >= alpha_G the kink-free start is already optimal: a handful of iterations."""
    rng = np.random.default_rng(14)
    z, _ = _standardised(rng.standard_normal(20_000))
    sol = solve_univariate_exact(UnivariateProgram("sm", z, gaussian_regime_alpha(z) * 1.01))
    assert sol.n_iter <= 8
    assert np.count_nonzero(sol.coef) == 0
    assert sol.objective == pytest.approx(-0.5, abs=1e-9)


def test_never_returns_an_uncertified_point():
    rng = np.random.default_rng(15)
    z, _ = _standardised(rng.standard_normal(500))
    with pytest.raises(SolverError, match="not certified"):
        solve_univariate_exact(UnivariateProgram("sm", z, 2.0 / z.size), max_iter=3)


@pytest.mark.parametrize("activation,skip", VARIANTS)
def test_near_duplicates_all_variants(activation, skip):
    """A quarter of the points doubled at a relative gap of 1e-12, every variant, 2 x the bound.

    (Closer to the bound, e.g. 1.05 x, the optimum with such gaps reaches ~1e16 and
    neither this solver nor the dense reference can resolve it in double precision.)"""
    z = _with_near_duplicates(60, 16, every=4)
    _agree(_sm_program(z, 2.0, activation, skip))


# --------------------------------------------------------------------------
# Working set (skip connection): kinks restricted to a growing set of knots
# --------------------------------------------------------------------------


def _full_ipm(program, monkeypatch):
    """The same program solved by the full interior point method (no working set)."""
    with monkeypatch.context() as mp:
        mp.setattr(_us, "_solve_skip_working_set", lambda *args, **kwargs: None)
        sol = solve_univariate_exact(program)
    assert sol.info["working_set"] is None
    return sol


def _ws_cases():
    rng = np.random.default_rng(20)
    normal, _ = _standardised(rng.standard_normal(300))
    ties, _ = _standardised(np.round(rng.standard_normal(300), 1))
    near = _with_near_duplicates(300, 21, every=3)
    offset, _ = _standardised(
        (1e4 + rng.standard_normal(300)).astype(np.float32).astype(np.float64)
    )
    return {"normal": normal, "ties": ties, "near_duplicates": near, "float32_offset": offset}


@pytest.mark.parametrize("case", ["normal", "ties", "near_duplicates", "float32_offset"])
@pytest.mark.parametrize("objective,activation", [("sm", "relu"), ("sm", "abs"),
                                                  ("dsm", "relu"), ("dsm", "abs")])
def test_working_set_matches_full_ipm_and_cvxpy(case, objective, activation, monkeypatch):
    z = _ws_cases()[case]
    if objective == "sm":
        bound = UnivariateProgram("sm", z, 1.0, activation, True).well_posedness_bound()
        scale = 2.0 if activation == "abs" else 1.0  # abs with skip = relu with skip at alpha/2
        program = UnivariateProgram("sm", z, max(1.2 * bound, 10.0 * scale / z.size), activation)
    else:
        program = _dsm_program(z[::3], 3e-2, activation, True, np.random.default_rng(22))
    fast, _ = _agree(program)
    assert fast.info["working_set"] is not None and fast.info["working_set"] > 0
    full = _full_ipm(program, monkeypatch)
    assert fast.objective == pytest.approx(full.objective, rel=1e-6, abs=1e-6)
    # every returned kink sits on a knot of the working set
    assert np.count_nonzero(fast.coef) <= fast.info["working_set"]


def test_working_set_certificate_holds_for_the_full_qp():
    """Recompute the full QP's relative KKT residual from its sparse matrices."""
    rng = np.random.default_rng(23)
    z, _ = _standardised(rng.standard_normal(5000))
    program = UnivariateProgram("sm", z, 20.0 / z.size)
    zz, m, ybar, _, _ = _us._group_points(program)
    n = program.n
    lam = program.alpha - m / (2.0 * n)
    prob = _us._SkipProblem(zz, m, ybar, n, 1.0, lam)
    ws = _us._solve_skip_working_set(prob, 1e-8, 200, False, 1.0)
    assert ws is not None and 0 < ws["knots"].size < zz.size // 8
    qp, info = _us._build_skip(prob)
    x = np.concatenate([ws["f"], ws["U"]])
    nu = ws["nu"][info["kink_points"]][info["kept"]]
    Mx = qp.M @ x
    r_x = qp.h * x + qp.c - qp.E.T @ ws["y"] - qp.M.T @ nu
    c_scale = np.max(np.abs(qp.c)) + np.max(qp.lam)
    primal = 0.5 * qp.h @ (x * x) + qp.c @ x + qp.lam @ np.abs(Mx)
    comp = (np.maximum(Mx, 0) @ np.maximum(qp.lam + nu, 0)
            + np.maximum(-Mx, 0) @ np.maximum(qp.lam - nu, 0))
    assert np.max(np.abs(qp.E @ x)) / (1 + np.max(np.abs(x))) <= 1e-8
    assert max(np.max(np.abs(r_x)), np.max(np.abs(nu) - qp.lam)) / c_scale <= 1e-8
    assert comp / (1 + abs(primal)) <= 1e-8
    assert primal == pytest.approx(ws["primal"], rel=1e-12)
    # and it is the full problem's optimum
    full_x, *_ = _us._interior_point(qp, 1e-8, 200, False)
    assert primal == pytest.approx(_us._qp_value(qp, full_x), rel=1e-7)


@pytest.mark.parametrize("ties", [False, True])
def test_chain_form_matches_the_sparse_form(ties):
    """The vector-form skip QP and its directly written band give the sparse form's Newton steps."""
    rng = np.random.default_rng(25)
    X = rng.standard_normal(80)
    if ties:
        X[:12] = X[12:24]
    z, _ = _standardised(X)
    program = UnivariateProgram("sm", z, 3.0 / z.size)
    zz, m, ybar, _, _ = _us._group_points(program)
    lam = np.maximum(program.alpha - m / (2.0 * program.n), 0.0)
    if ties:
        lam[7] = 0.0  # an unpenalised interior point has no kink row
    prob = _us._SkipProblem(zz, m, ybar, program.n, 1.0, lam)
    sparse, _ = _us._build_skip(prob)
    chain = _us._ChainQP(prob)
    assert chain.n_l1 == sparse.n_l1
    assert chain.n_l1 < zz.size - 2 if ties else chain.n_l1 == zz.size - 2
    for name in ("h", "c", "lam", "e"):
        np.testing.assert_array_equal(getattr(chain, name), getattr(sparse, name))
    x = rng.standard_normal(chain.n_var)
    y = rng.standard_normal(chain.n_eq)
    nu = rng.standard_normal(chain.n_l1)
    np.testing.assert_allclose(chain.E @ x, sparse.E @ x, rtol=0, atol=1e-12)
    np.testing.assert_allclose(chain.M @ x, sparse.M @ x, rtol=0, atol=1e-12)
    np.testing.assert_allclose(chain.adjoint(y, nu), sparse.E.T @ y + sparse.M.T @ nu,
                               rtol=0, atol=1e-12)
    general, structured = _us._BandedKKT(sparse), _us._ChainKKT(chain)
    size = abs(sparse.E).T @ np.abs(y) + abs(sparse.M).T @ np.abs(nu)
    np.testing.assert_allclose(structured.adjoint_size(y, nu), size, rtol=1e-14)
    np.testing.assert_allclose(general.adjoint_size(y, nu), size, rtol=1e-14)
    # interior-point weights span many orders of magnitude
    w = np.exp(3.0 * rng.standard_normal(chain.n_l1))
    general.factorize(w)
    structured.factorize(w)
    for ref, got in zip(general.solve(x, y, nu), structured.solve(x, y, nu)):
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9 * np.max(np.abs(ref)))
    # and the interior point method reaches the same optimum on both
    full_sparse, *_ = _us._interior_point(sparse, 1e-9, 200, False)
    full_chain, *_ = _us._interior_point(chain, 1e-9, 200, False)
    assert _us._qp_value(chain, full_chain) == pytest.approx(
        _us._qp_value(sparse, full_sparse), rel=1e-8)


def test_split_line_carries_the_line_with_the_kinks_signs():
    rng = np.random.default_rng(26)
    kinks = rng.standard_normal(400) * np.exp(2.0 * rng.standard_normal(400))
    kinks[::7] = 0.0
    a = np.sort(rng.random(400)) * 4.0
    # a line some sign-consistent weights carry
    theta = rng.random(400)
    w_true = theta * kinks
    slope, value = -w_true.sum(), w_true @ a
    w = _us._split_line(kinks, a, slope, value)
    assert w is not None
    assert np.all(w * kinks >= 0) and np.all(np.abs(w) <= np.abs(kinks))
    assert w.sum() == pytest.approx(-slope, rel=1e-9, abs=1e-9)
    assert w @ a == pytest.approx(value, rel=1e-9, abs=1e-9)
    # the least total weight: never more than the weights it was built from
    assert np.abs(w).sum() <= np.abs(w_true).sum() * (1 + 1e-9)
    # positive kinks only cannot carry a line of positive slope (sum w = -slope < 0)
    assert _us._split_line(np.abs(kinks), a, 1.0, 0.0) is None
    assert _us._split_line(np.zeros(10), a[:10], 1.0, 0.0) is None


@pytest.mark.parametrize("objective", ["sm", "dsm"])
def test_relu_without_skip_near_the_bound_is_the_skip_program(objective):
    """Near the bound the skip optimum's line is carried by reversed atoms: the same optimum."""
    rng = np.random.default_rng(27)
    z, _ = _standardised(rng.standard_normal(300))
    z[40] = z[41]  # a tie that leaves the bound at 1/n
    z = np.sort(z)
    if objective == "sm":
        bound = UnivariateProgram("sm", z, 1.0, "relu", False).well_posedness_bound()
        programs = [UnivariateProgram("sm", z, 2.0 * bound, "relu", skip) for skip in (False, True)]
    else:
        programs = [_dsm_program(z[::3], 1e-3, "relu", skip, np.random.default_rng(28))
                    for skip in (False, True)]
    noskip, skip = (solve_univariate_exact(p) for p in programs)
    assert noskip.info["via_skip_program"]
    assert noskip.objective == pytest.approx(skip.objective, rel=1e-8)
    assert noskip.duality_gap <= 1e-7
    # the network has no line, and its value is the program's at its atoms
    assert noskip.slope == 0.0 and noskip.intercept == 0.0
    assert programs[0].objective_value(noskip.coef, 0.0, 0.0) == pytest.approx(noskip.objective)
    reference = solve_univariate_cvxpy(programs[0])
    assert noskip.objective <= reference.objective + 1e-6 * (1 + abs(reference.objective))


def test_relu_without_skip_in_the_gaussian_regime_uses_its_own_qp():
    """No kinks cannot carry the Gaussian line: the forward/reversed QP, above the skip optimum."""
    rng = np.random.default_rng(29)
    z, _ = _standardised(rng.standard_normal(200))
    alpha = gaussian_regime_alpha(z)
    noskip = solve_univariate_exact(UnivariateProgram("sm", z, alpha, "relu", False))
    skip = solve_univariate_exact(UnivariateProgram("sm", z, alpha, "relu", True))
    assert not noskip.info["via_skip_program"]
    assert noskip.objective > skip.objective + 1e-3
    reference = solve_univariate_cvxpy(UnivariateProgram("sm", z, alpha, "relu", False))
    assert noskip.objective == pytest.approx(reference.objective, rel=1e-6)


def test_relu_without_skip_certifies_at_large_n_near_the_bound():
    """The forward/reversed QP stalled uncertified here (n = 3e5, alpha = 2/n)."""
    rng = np.random.default_rng(30)
    z, _ = _standardised(rng.standard_normal(300_000))
    sol = solve_univariate_exact(UnivariateProgram("sm", z, 2.0 / z.size, "relu", False))
    assert sol.info["via_skip_program"] and sol.duality_gap <= 1e-7
    skip = solve_univariate_exact(UnivariateProgram("sm", z, 2.0 / z.size, "relu", True))
    assert sol.objective == pytest.approx(skip.objective, rel=1e-8)


def test_dense_solution_falls_back_to_the_full_ipm():
    """Near the bound almost every point is a kink: the working set gives up early."""
    rng = np.random.default_rng(24)
    z, _ = _standardised(rng.standard_normal(3000))
    sol = solve_univariate_exact(UnivariateProgram("sm", z, 2.0 / z.size))
    assert sol.info["working_set"] is None
    assert sol.duality_gap <= 1e-7


def test_bimodal_exactly_at_gaussian_alpha():
    """Regression: bimodal n = 1e6 at exactly alpha_G, a degenerate point (kink multipliers
    on their bound) where the full IPM stalled at a dual residual ~1e-5. The kink-free line
    is certified directly: no kink, the Gaussian score."""
    rng = np.random.default_rng(25)
    n = 1_000_000
    X = np.concatenate([rng.normal(-2, 0.5, n // 2), rng.normal(2, 0.5, n - n // 2)])
    z, _ = _standardised(X)
    sol = solve_univariate_exact(UnivariateProgram("sm", z, gaussian_regime_alpha(z)))
    assert sol.info["working_set"] == 0 and sol.duality_gap <= 1e-8
    assert np.count_nonzero(sol.coef) == 0
    assert sol.objective == pytest.approx(-0.5, abs=1e-9)
    assert sol.slope == pytest.approx(-1.0, abs=1e-9)


def test_residual_beyond_rounding():
    """The dual residual ignores what rounding the terms it sums can explain, nothing more."""
    eps = np.finfo(np.float64).eps
    r_x = np.array([1e-6, 3e-7, -2e-6])
    hx = np.array([1e10, 0.0, 0.0])
    c = np.array([0.0, 0.0, 1.0])
    size = np.array([1e10, 0.0, 0.0])
    # entry 0 is within 8 eps (|hx| + |c| + size) = 3.6e-5; entry 1 is all excess; entry 2
    # exceeds 8 eps by 2e-6 - 8 eps
    excess = _us._stationarity_excess(r_x, hx, c, size)
    np.testing.assert_allclose(excess, [0.0, 3e-7, 2e-6 - 8 * eps], rtol=1e-12, atol=0)


@pytest.mark.parametrize("objective", ["sm", "dsm"])
def test_abs_noskip_chain_is_the_program(objective):
    """Any abs network without skip, written as values and slopes, is feasible for the
    folded chain QP, and the QP's value there is the program's objective (ties merged)."""
    rng = np.random.default_rng(31)
    X = rng.standard_normal(40)
    X[:6] = X[6:12]  # ties, including possibly at the extremes
    z, _ = _standardised(X)
    if objective == "sm":
        program = _sm_program(z, 1.7, "abs", False)
    else:
        program = _dsm_program(z, 0.05, "abs", False, rng)
    zz, m, ybar, first, last = _us._group_points(program)
    n, N = program.n, zz.size
    lam = (program.alpha - m / n) if objective == "sm" else np.full(N, program.alpha)
    tau = 1.0 if objective == "sm" else 0.0
    qp, info = _us._build_abs_noskip(zz, m, ybar, n, tau, lam)
    u = rng.standard_normal(N) * (rng.random(N) < 0.5)  # one merged atom per distinct point
    coef = np.zeros(program.n_atoms)
    _us._place(coef, first, last, np.arange(N), u)
    f = program.evaluate(coef, 0.0, 0.0)[first]
    x = np.zeros(qp.n_var)
    x[:N] = f
    x[info["U"]] = np.diff(f) / np.diff(zz)
    x[info["U0"]] = -u.sum()
    assert np.max(np.abs(qp.E @ x)) <= 1e-12 * (1 + np.max(np.abs(x)))
    # the kinks the QP charges are 2 u
    np.testing.assert_allclose(qp.M @ x, 2 * u[info["kept"]], rtol=1e-9,
                               atol=1e-9 * np.max(np.abs(u)))
    value = _us._qp_value(qp, x)
    if objective == "dsm":
        value += 0.5 * np.mean(program.targets**2)
    assert value == pytest.approx(program.objective_value(coef, 0.0, 0.0), rel=1e-10)


def test_abs_noskip_gaussian_laplace_regime_at_scale():
    """n = 1e5: for alpha above alpha_GL the optimum has atoms on the two extremes only and
    the score is the Gaussian one scaled by 1 - alpha on the data, -beta (x - mean) with
    beta = (1 - alpha)/var: u_1 = -beta (x_n - mean)/(x_n - x_1), u_n = beta (mean - x_1)/
    (x_n - x_1), value -(1 - alpha)^2 / (2 var) (weight decay (alpha - 1/n) beta and trace
    -beta (n - 1)/n)."""
    rng = np.random.default_rng(3)
    z, _ = _standardised(rng.standard_normal(100_000))
    alpha = 0.5
    sol = solve_univariate_exact(UnivariateProgram("sm", z, alpha, "abs", False))
    mean, var, span = z.mean(), z.var(), z[-1] - z[0]
    beta = (1 - alpha) / var
    assert sol.objective == pytest.approx(-(1 - alpha) ** 2 / (2 * var), rel=1e-9)
    assert np.flatnonzero(sol.coef).tolist() == [0, z.size - 1]
    expected = [-beta * (z[-1] - mean) / span, beta * (mean - z[0]) / span]
    np.testing.assert_allclose(sol.coef[[0, -1]], expected, rtol=1e-4)


def test_abs_noskip_near_the_bound_at_scale():
    """n = 2e5 bimodal at twice the bound (the forward/reversed QP took 22 s at 3e5 and stalled
    at 1e6): certified, and never below the ReLU-with-skip optimum at alpha/2, of which it is
    a restriction with the same weight decay (|z| = 2 z_+ - z)."""
    rng = np.random.default_rng(4)
    X = np.concatenate([rng.normal(-2, 0.5, 100_000), rng.normal(2, 0.5, 100_000)])
    z, _ = _standardised(X)
    program = _sm_program(z, 2.0, "abs", False)
    sol = solve_univariate_exact(program)
    assert sol.duality_gap <= 1e-7
    assert sol.objective == pytest.approx(program.objective_value(sol.coef, 0.0, 0.0), rel=1e-12)
    relaxed = solve_univariate_exact(UnivariateProgram("sm", z, program.alpha / 2))
    assert sol.objective >= relaxed.objective - 1e-7 * abs(relaxed.objective)


def test_dense_regime_is_polished_to_the_exact_sparse_optimum():
    """alpha = 2/n at n = 2000 (the full interior point path): its active set with signs fixed
    gives an exactly sparse point that the full QP's certificate proves optimal, no worse than
    the interior point it came from."""
    rng = np.random.default_rng(12)
    z, _ = _standardised(rng.standard_normal(2000))
    program = UnivariateProgram("sm", z, 2.0 / z.size)
    sol = solve_univariate_exact(program)
    assert sol.info["working_set"] is None and sol.info["active_set_polished"]
    assert sol.duality_gap <= 1e-8
    assert 0 < np.count_nonzero(sol.coef) < 0.25 * z.size
    zz, m, ybar, _, _ = _us._group_points(program)
    prob = _us._SkipProblem(zz, m, ybar, program.n, 1.0, program.alpha - m / (2.0 * program.n))
    chain = _us._ChainQP(prob)
    x, *_ = _us._interior_point(chain, 1e-8, 200, False)
    interior_value = _us._qp_value(chain, x)
    assert sol.objective <= interior_value + 1e-9 * abs(interior_value)
    assert sol.objective == pytest.approx(interior_value, rel=1e-7)


@pytest.mark.parametrize("objective,alpha", [("sm", 2.0), ("sm", 1.2), ("dsm", 1e-4),
                                             ("dsm", 1e-3)])
def test_abs_without_skip_dense_regime_is_polished_to_the_sparse_optimum(objective, alpha):
    """Absolute value without skip connection where its atom working set gives up (near the
    bound; DSM at small alpha): the folded QP's interior point left one unit per point. Its
    active set, held exactly, gives the optimum of the dense reference with the reference's
    sparsity: ~half the points near the SM bound, ~60 % of the noisy points at DSM alpha =
    1e-4, ~20 % at 1e-3."""
    rng = np.random.default_rng(0)
    z, _ = _standardised(rng.standard_normal(60))
    if objective == "sm":
        program = _sm_program(z, alpha, "abs", False)
    else:
        program = _dsm_program(z, alpha, "abs", False, rng)
    fast, ref = _agree(program)
    assert fast.info["working_set"] is None and fast.info["active_set_polished"]
    support = np.count_nonzero(fast.coef)
    reference_support = np.count_nonzero(np.abs(ref.coef) > 1e-9 * np.max(np.abs(ref.coef)))
    assert support < 0.7 * program.x.size if objective == "dsm" else support < z.size
    assert abs(support - reference_support) <= 1


def test_polish_settles_with_near_degenerate_kinks():
    """n = 5e4 bimodal at alpha = 2/n: a few kinks come out against the sign of their
    multiplier, each nearly free. Dropping them all made the active-set rounds cycle (the
    interior point's dense answer was returned, one unit per point); kept while their share of
    the duality gap is below tol/10, the set settles and the certified optimum is sparse."""
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(-2, 0.5, 25_000), rng.normal(2, 0.5, 25_000)])
    z, _ = _standardised(X)
    program = UnivariateProgram("sm", z, 2.0 / z.size)
    sol = solve_univariate_exact(program)
    assert sol.info["working_set"] is None and sol.info["active_set_polished"]
    assert sol.duality_gap <= 1e-8
    assert 0 < np.count_nonzero(sol.coef) < 0.2 * z.size
    assert sol.objective == pytest.approx(
        program.objective_value(sol.coef, sol.slope, sol.intercept), rel=1e-10)


def test_dsm_gap_is_relative_to_the_program_value():
    """DSM at small noise: the QPs drop mean(y^2)/2 (~1e4 here) and measured their gap
    against it, certifying 3e-5 above the optimum; relative to the program's own value the
    answer agrees with a tightly solved Clarabel."""
    rng = np.random.default_rng(8000)
    X = rng.standard_normal(5)
    sigma = float(rng.choice([0.01, 0.1, 0.5]))
    eps = rng.standard_normal(5)
    Z, st = standardize((X + sigma * eps)[:, None])
    order = np.argsort(Z.ravel(), kind="stable")
    program = UnivariateProgram("dsm", Z.ravel()[order], 1e-4, "relu", False,
                                targets=(-eps / sigma * st.scale)[order])
    assert 0.5 * np.mean(program.targets**2) > 1e3
    sol = solve_univariate_exact(program)
    ref = solve_univariate_cvxpy(program, solver_options={
        "tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12})
    assert sol.objective == pytest.approx(ref.objective, rel=1e-9)


@pytest.mark.parametrize("activation", ["relu", "abs"])
def test_dsm_on_two_noisy_points_is_the_line_through_them(activation):
    """Two noisy points (n_noise_samples=1 on two points) with a skip connection: the line
    through them fits exactly with no unit, value 0. The program's accuracy unit is then
    rounding noise (7e-28), and both solvers refused it ('rounding loss'), for every alpha."""
    from skconvexscore import ConvexDenoisingScoreMatcher

    program = UnivariateProgram("dsm", np.array([-1.0, 1.0]), 0.01, activation, True,
                                targets=np.array([0.3, -2.7]))
    for solution in (solve_univariate_exact(program), solve_univariate_cvxpy(program)):
        assert (solution.slope, solution.intercept) == pytest.approx((-1.5, -1.2), rel=1e-14)
        assert not np.any(solution.coef) and abs(solution.objective) < 1e-30
    X = np.array([[0.0], [1.0]])
    model = ConvexDenoisingScoreMatcher(n_noise_samples=1, activation=activation,
                                        random_state=0).fit(X)
    # a DSM value of 0 is an exact fit of both targets, by the line alone
    assert model.n_neurons_ == 0 and abs(model.objective_) < 1e-28


@pytest.mark.parametrize("activation,skip", VARIANTS)
def test_dsm_with_small_targets_is_solved_to_their_scale(activation, skip):
    """Targets c y with weight decay c alpha: every coefficient scales by c and the value by
    c^2 (the fit is quadratic, the penalty linear, in both). Noise far above the data's
    spread makes such targets (c ~ spread / noise): with c = 1e-4 the values are ~1e-9, and a
    gap measured against 1 + |value| certified answers several percent above the optimum."""
    rng = np.random.default_rng(31)
    z, _ = _standardised(rng.standard_normal(12))
    program = _dsm_program(z, 1e-3, activation, skip, rng)
    c = 1e-4
    small = UnivariateProgram("dsm", program.x, c * program.alpha, activation, skip,
                              targets=c * program.targets)
    # the unit is the targets' part beyond their affine fit, which scales like c^2 too
    assert small.value_unit() == pytest.approx(
        c**2 * _dsm_natural_scale(program.x[:, None], program.targets), rel=1e-9, abs=0)
    assert small.value_unit() < c**2 * np.mean(program.targets**2)
    reference = solve_univariate_exact(program).objective
    assert solve_univariate_exact(small).objective == pytest.approx(c**2 * reference, rel=1e-7)
    assert solve_univariate_cvxpy(small).objective == pytest.approx(c**2 * reference, rel=1e-6)


def test_near_duplicates_between_the_two_bounds_fail_with_a_hint():
    """Pairs 1e-9 apart: bounded above the distinct-point bound, but as ties they would be
    unbounded up to a higher alpha, and in between the optimum grows like 1/gap^2 (~1e21 at
    n = 3, 1e-12). Not certified, so an error that says which alpha is safe, and that alpha
    then certifies."""
    rng = np.random.default_rng(23007)
    base = rng.standard_normal(19)
    X = np.concatenate([base[:9], rng.choice(base[:9], 10) * (1 + 1e-9)
                        + 1e-9 * rng.choice([-1, 1], 10)])
    z, _ = _standardised(X)
    program = _sm_program(z, 2.0, "relu", True)
    with pytest.raises(SolverError, match="Merge near-duplicate points") as info:
        solve_univariate_exact(program)
    safe = float(str(info.value).rsplit("alpha above ", 1)[1].rstrip("."))
    assert safe == pytest.approx(program.alpha, rel=1e-5)  # 2/n: an extreme pair as a tie
    sol = solve_univariate_exact(UnivariateProgram("sm", z, 1.2 * safe))
    assert sol.duality_gap <= 1e-8
    assert sol.objective == pytest.approx(solve_univariate_cvxpy(
        UnivariateProgram("sm", z, 1.2 * safe)).objective, rel=1e-6)


def _tiny_noise_dsm(skip):
    """DSM on two points with noise 1e-9 of their spread: targets ~1e9, clusters ~1e-9 wide."""
    eps = np.random.default_rng(3).standard_normal((2, 4))
    noisy = (np.array([[-1.0], [1.0]]) + 2e-9 * eps).ravel()
    order = np.argsort(noisy)
    return UnivariateProgram("dsm", noisy[order], 1e-3, "relu", skip,
                             targets=(-eps / 2e-9).ravel()[order])


def test_dsm_box_violations_are_measured_against_the_penalty_not_the_targets():
    """The skip program relaxes the one without skip, so its optimum cannot be above it. With
    targets ~1e9 the box violations |nu| - lam of the kink-free line (10 lam) were measured
    against the fit coefficients and read 1e-10: the line was certified 31x above the optimum."""
    skip = solve_univariate_exact(_tiny_noise_dsm(True))
    noskip = solve_univariate_exact(_tiny_noise_dsm(False))
    assert np.count_nonzero(skip.coef) > 0
    assert skip.objective <= noskip.objective * (1 + 1e-7)


def _exact_relu_skip_optimum(x, alpha):
    """The SM ReLU-skip optimum (math notes 3.1) in rational arithmetic, by enumeration.

    For every sign pattern of the interior kinks, the quadratic restricted to that pattern
    (``|u_j| = s_j u_j``) is minimised exactly; a minimiser whose signs agree with the pattern
    is a feasible point with the same value, and the optimum's own pattern is among them, so the
    least such value is the optimum. The extreme atoms stay zero for ``alpha > 1/n``.
    """
    import itertools
    from fractions import Fraction

    x = [Fraction(v) for v in np.sort(x)]
    n, weight = len(x), Fraction(alpha) - Fraction(1, 2 * len(x))
    best = None
    for signs in itertools.product((-1, 0, 1), repeat=n - 2):
        kinks = [j for j in range(1, n - 1) if signs[j - 1]]
        columns = [[max(xi - x[j], 0) for xi in x] for j in kinks] + [x, [Fraction(1)] * n]
        linear = [n - j - Fraction(1, 2) + n * weight * signs[j - 1] for j in kinks] + [n, 0]
        k = len(columns)
        system = [[sum(a * b for a, b in zip(columns[p], columns[q])) for q in range(k)]
                  + [-linear[p]] for p in range(k)]
        for i in range(k):  # Gauss-Jordan, exact
            pivot = next((r for r in range(i, k) if system[r][i] != 0), None)
            if pivot is None:
                break
            system[i], system[pivot] = system[pivot], system[i]
            for r in range(k):
                if r != i and system[r][i] != 0:
                    f = system[r][i] / system[i][i]
                    system[r] = [a - f * b for a, b in zip(system[r], system[i])]
        else:
            coef = [system[i][k] / system[i][i] for i in range(k)]
            if all(signs[j - 1] * c >= 0 for j, c in zip(kinks, coef)):
                fit = [sum(col[i] * c for col, c in zip(columns, coef)) for i in range(n)]
                value = (sum(f * f for f in fit) / 2
                         + sum(lin * c for lin, c in zip(linear, coef))) / n
                best = value if best is None else min(best, value)
    return best


@pytest.mark.parametrize("seed", range(4))
def test_small_programs_match_the_rational_optimum(seed):
    x = np.sort(np.random.default_rng(seed).standard_normal(6))
    alpha = 1.3 / 6
    exact = float(_exact_relu_skip_optimum(x, alpha))
    assert solve_univariate_exact(UnivariateProgram("sm", x, alpha)).objective == pytest.approx(
        exact, rel=1e-10)


def test_clustered_points_certify_at_the_scale_of_their_gaps():
    """Three points within 1.6e-7 near the bound: slopes ~1e17, far beyond the default
    start's N^2 scale, and too far apart for the near-duplicate hint (1e-9 of the range).
    The interior point method stalled there; it now restarts as wide as the gaps demand."""
    x = np.array([0.0, 2.3e-9, 1.6e-7, 2.2628, 2.2741])
    alpha = 1.01 / 5
    exact = float(_exact_relu_skip_optimum(x, alpha))  # -3.6e16
    sol = solve_univariate_exact(UnivariateProgram("sm", x, alpha))
    assert sol.duality_gap <= 1e-7
    # an attained value: never below the optimum, and within the certificate of it
    assert sol.objective >= exact * (1 + 1e-12)
    assert sol.objective <= exact * (1 - 1e-7)


def test_clusters_1e9_wide_are_refused_rather_than_certified_above_the_optimum():
    """SM, ReLU without skip connection, 7 points in two clusters 1e-9 wide, alpha = alpha_G.
    The optimum (80-digit, its KKT conditions verified) is -0.190289365475211 with a unit of
    weight 8.0e8. The forward/reversed interior point stopped at -0.174955 with a stationarity
    error of 1.5e-10 on that slope (curvature ~gap^2), certified by a gap that counted the
    complementarity only; x . r_x (0.075 here) is now part of it. An answer, if any, is the
    optimum; otherwise a SolverError naming the near-duplicates."""
    z = np.array([-0.8660254044243983, -0.8660254041142232, -0.866025403511765,
                  -0.866025403087368, 1.154700537857203, 1.1547005382468551,
                  1.1547005390336964])
    program = UnivariateProgram("sm", z, gaussian_regime_alpha(z), "relu", False)
    try:
        sol = solve_univariate_exact(program)
    except SolverError as exc:
        assert "closer than" in str(exc)
    else:
        assert sol.objective <= -0.190289365475211 + 1e-8
