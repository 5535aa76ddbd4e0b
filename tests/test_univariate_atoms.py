"""The working set over atoms for the 1-D programs without skip connection."""

import numpy as np
import pytest

from skconvexscore._cvxpy_solver import solve_univariate_cvxpy
from skconvexscore._programs import UnivariateProgram, gaussian_regime_alpha, standardize
from skconvexscore._univariate_atoms import (
    _AtomProblem,
    _dual_gap,
    _restricted_lasso,
    solve_noskip_working_set,
)
from skconvexscore._univariate_solver import solve_univariate_exact


def _standardised(X):
    Z, _ = standardize(np.asarray(X, dtype=np.float64)[:, None])
    return np.sort(Z.ravel())


def _dense_atoms(z, relu):
    """Atom values and midpoint-convention derivatives at the points, as dense matrices."""
    diff = z[:, None] - z[None, :]
    if relu:
        values = np.hstack([np.maximum(diff, 0.0), np.maximum(-diff, 0.0)])
        slopes = np.hstack([(diff > 0) + 0.5 * (diff == 0), -((diff < 0) + 0.5 * (diff == 0))])
    else:
        values, slopes = np.abs(diff), np.sign(diff)
    return values, slopes


@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("tau", [1.0, 0.0])
def test_values_gradient_and_gram_match_the_dense_atoms(relu, tau):
    """Running sums over the gaps equal the dense atom matrix: values, every atom's gradient
    (fit and midpoint trace), and the Gram matrix of a subset from the moments."""
    rng = np.random.default_rng(0)
    N = 12
    z = np.sort(rng.standard_normal(N))
    m = rng.integers(1, 4, N).astype(np.float64)
    n = m.sum()
    ybar = rng.standard_normal(N) * (1.0 - tau)
    prob = _AtomProblem(z, m, ybar, n, tau, np.full(N, 0.3), relu)
    A, dA = _dense_atoms(z, relu)
    w = rng.standard_normal(A.shape[1]) * (rng.random(A.shape[1]) < 0.5)
    s = A @ w
    np.testing.assert_allclose(prob.values(w), s, rtol=0, atol=1e-13)
    gradient = A.T @ (m * (s - ybar)) / n + tau * dA.T @ m / n
    np.testing.assert_allclose(prob.gradient(s), gradient, rtol=0, atol=1e-13)
    atoms = np.sort(rng.choice(A.shape[1], 8, replace=False))
    gram = A[:, atoms].T @ (m[:, None] * A[:, atoms]) / n
    np.testing.assert_allclose(prob.gram(atoms), gram, rtol=0, atol=1e-13)
    value = (m @ (0.5 * s * s - ybar * s)) / n + tau * (m @ (dA @ w)) / n + 0.3 * np.abs(w).sum()
    assert prob.objective(w, s) == pytest.approx(value, rel=1e-13)


def test_restricted_lasso_is_exact_on_its_support():
    """Clarabel's support, then one solve: stationarity to rounding on the support and the
    box on the rest."""
    rng = np.random.default_rng(1)
    B = rng.standard_normal((40, 15))
    G = B.T @ B / 40
    q = rng.standard_normal(15)
    lam = np.full(15, 0.5)
    w, _, _ = _restricted_lasso(G, q, lam)
    grad = G @ w + q
    on = w != 0
    assert 0 < on.sum() < 15
    np.testing.assert_allclose(grad[on], -lam[on] * np.sign(w[on]), rtol=0, atol=1e-12)
    assert np.all(np.abs(grad[~on]) <= lam[~on] + 1e-12)


def test_restricted_lasso_with_dependent_atoms_finds_an_independent_optimal_support():
    """Two atoms with the same column (and a third a combination of two others): the lasso
    optimum is not unique, and the solve on a support holding both is singular. The
    alternative whose supports are cut down along the null directions has independent
    columns, stationarity to rounding, the box elsewhere, and Clarabel's optimal value."""
    import cvxpy as cp

    rng = np.random.default_rng(7)
    B = rng.standard_normal((60, 12))
    B = np.hstack([B, B[:, [3]], B[:, [5]] + B[:, [8]]])
    G = B.T @ B / 60
    q = -2.0 * G @ rng.standard_normal(14)
    lam = np.full(14, 0.2)
    _, _, alternatives = _restricted_lasso(G, q, lam)
    w = next(alternatives())
    on = w != 0
    assert 0 < on.sum() < 14
    assert np.linalg.matrix_rank(B[:, on]) == on.sum()
    grad = G @ w + q
    np.testing.assert_allclose(grad[on], -lam[on] * np.sign(w[on]), rtol=0, atol=1e-12)
    assert np.all(np.abs(grad[~on]) <= lam[~on] + 1e-12)
    v = cp.Variable(14)
    reference = cp.Problem(cp.Minimize(0.5 * cp.quad_form(v, cp.psd_wrap(G)) + q @ v
                                       + lam @ cp.abs(v)))
    reference.solve(solver=cp.CLARABEL)
    value = 0.5 * w @ G @ w + q @ w + lam @ np.abs(w)
    assert value <= reference.value + 1e-9


@pytest.mark.parametrize("activation", ["relu", "abs"])
@pytest.mark.parametrize("alpha", [1.0, 1.5])
def test_alpha_at_least_one_gives_the_zero_network(activation, alpha):
    """SM without skip connection is zero for alpha >= 1 (math notes 3.2): every atom's
    gradient at zero is within its box, so no atom is solved for. At alpha = 1 the extreme
    absolute values sit on their box and the exact solve left weights ~4e-9 behind."""
    z = _standardised(np.random.default_rng(0).standard_normal(200))
    sol = solve_univariate_exact(UnivariateProgram("sm", z, alpha, activation, False))
    assert not np.any(sol.coef)
    assert sol.objective == 0.0 and sol.duality_gap == 0.0


def test_dsm_with_near_duplicate_noisy_points_keeps_a_sparse_network():
    """DSM, absolute value without skip connection, 5000 points x 10 noisy copies (50,000
    points, some a few 1e-9 apart): the restricted lasso's support held clusters of such
    atoms (Gram condition 1.5e17), its solve missed by 4 %, the working set outgrew its cap
    and the banded QP returned one unit per noisy point. Now a few dozen atoms, certified,
    at or below the banded QP's certified value (49.79195923917)."""
    from skconvexscore import ConvexDenoisingScoreMatcher

    X = np.random.default_rng(0).standard_normal((5000, 1))
    model = ConvexDenoisingScoreMatcher(alpha=1e-3, activation="abs", skip_connection=False,
                                        random_state=0).fit(X)
    assert model.n_neurons_ < 100
    assert model.duality_gap_ <= 1e-8
    assert model.objective_ <= 49.79195923917 * (1 + 1e-9)
    assert model.objective_ == pytest.approx(49.79195923917, rel=1e-8)


@pytest.mark.parametrize("activation", ["relu", "abs"])
def test_gaussian_laplace_regime_at_scale(activation):
    """n = 1e5, alpha = 0.9: two atoms on the extremes carry the Gaussian score scaled by
    1 - alpha, value -(1 - alpha)^2/(2 var). ReLU without skip connection went to the
    forward/reversed QP here, which stalled uncertified after 25 s."""
    rng = np.random.default_rng(0)
    z = _standardised(rng.standard_normal(100_000))
    alpha = 0.9
    sol = solve_univariate_exact(UnivariateProgram("sm", z, alpha, activation, False))
    assert sol.info["working_set"] is not None and sol.duality_gap <= 1e-8
    var, mean, span = z.var(), z.mean(), z[-1] - z[0]
    assert sol.objective == pytest.approx(-(1 - alpha) ** 2 / (2 * var), rel=1e-9)
    beta = (1 - alpha) / var
    first_forward, last = 0, z.size - 1
    last_atom = 2 * z.size - 1 if activation == "relu" else last
    assert np.flatnonzero(sol.coef).tolist() == [first_forward, last_atom]
    expected = [-beta * (z[-1] - mean) / span, beta * (mean - z[0]) / span]
    np.testing.assert_allclose(sol.coef[[first_forward, last_atom]], expected, rtol=1e-6)


@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("objective", ["sm", "dsm"])
def test_dual_gap_bounds_the_distance_to_the_optimum(objective, relu):
    """Weak duality: at any ``w`` the dual gap is at least ``P(w) - optimum``; ~0 at it."""
    rng = np.random.default_rng(5)
    eps = rng.standard_normal(60)
    if objective == "dsm":
        noisy = rng.standard_normal(60) + 0.3 * eps
        order = np.argsort(noisy)
        z, ybar, tau, lam = noisy[order], (-eps / 0.3)[order], 0.0, np.full(60, 0.05)
    else:
        z, ybar, tau = _standardised(rng.standard_normal(60)), np.zeros(60), 1.0
        lam = np.full(60, 0.3 - (0.5 if relu else 1.0) / 60)
    m = np.ones(60)
    best = solve_noskip_working_set(z, m, ybar, 60, tau, lam, relu, 1e-12)
    prob = _AtomProblem(z, m, ybar, 60, tau, lam, relu)
    optimum = prob.objective(best["w"], prob.values(best["w"]))
    assert _dual_gap(prob, best["w"]) <= 1e-10
    others = [best["w"] + scale * rng.standard_normal(prob.n_atoms) for scale in (1e-6, 1e-3, 1.0)]
    for w in others + [np.zeros(prob.n_atoms)]:
        value = prob.objective(w, prob.values(w))
        assert value - optimum > 0
        # relative to unit + |value| (unit 1, no constant here)
        assert _dual_gap(prob, w) * (1 + abs(value)) >= value - optimum


def _heavy_tailed_program(objective, n, seed, activation):
    rng = np.random.RandomState(seed)
    X = rng.standard_t(1.5, n)
    if objective == "sm":
        z = _standardised(X)
        return UnivariateProgram("sm", z, gaussian_regime_alpha(z), activation, False)
    sigma = 0.3 * X.std()
    eps = rng.standard_normal((10, n))
    Z, st = standardize((X + sigma * eps).reshape(-1, 1))
    order = np.argsort(Z[:, 0])
    targets = (-eps / sigma).reshape(-1)[order] * st.scale
    return UnivariateProgram("dsm", Z[order, 0], 0.3, activation, False, targets)


@pytest.mark.parametrize("objective, n, seed, activation, banded", [
    ("dsm", 500, 1, "relu", 3.6515120327128647),
    ("dsm", 1000, 1, "relu", None),
    ("sm", 2000, 2, "relu", -0.31349395103497096),
    ("sm", 10000, 1, "relu", None),
    ("sm", 10000, 3, "abs", None),
])
def test_heavy_tailed_points_are_certified_by_the_dual_gap(objective, n, seed, activation, banded):
    """t(1.5) data (DSM: 10 noisy copies, alpha = 0.3; SM: alpha_G), no skip connection.

    The working set's support is degenerate (its restricted solve ends up to ~1e-11 off its
    box, beyond rounding); the banded QP then stalled (DSM on 1000 points after 2.3 s, 30 s
    at 1e4; SM on 1e4 points) or certified a value a little higher (``banded``, from 90b5fc9).
    The dual gap certifies the working set's answer.
    """
    program = _heavy_tailed_program(objective, n, seed, activation)
    sol = solve_univariate_exact(program)
    assert sol.info["working_set"] is not None and sol.duality_gap <= 1e-8
    assert sol.objective == pytest.approx(program.objective_value(sol.coef), rel=1e-12)
    if banded is not None:
        assert sol.objective <= banded + 1e-12 * abs(banded)
        assert sol.objective == pytest.approx(banded, rel=1e-9)


@pytest.mark.parametrize("activation", ["relu", "abs"])
@pytest.mark.parametrize("objective", ["sm", "dsm"])
def test_sparse_regimes_match_cvxpy(activation, objective):
    """Small problems where the working set certifies: the dense reference's optimum."""
    rng = np.random.default_rng(2)
    X = np.concatenate([rng.normal(-2, 0.5, 60), rng.normal(2, 0.5, 60)])
    z = _standardised(np.round(X, 1))  # ties
    if objective == "sm":
        programs = [UnivariateProgram("sm", z, a, activation, False)
                    for a in (gaussian_regime_alpha(z), 0.3)]
    else:
        eps = rng.standard_normal(z.size)
        noisy = z + 0.3 * eps
        order = np.argsort(noisy)
        programs = [UnivariateProgram("dsm", noisy[order], a, activation, False,
                                      targets=(-eps / 0.3)[order]) for a in (0.05, 0.3)]
    for program in programs:
        sol = solve_univariate_exact(program)
        assert sol.info["working_set"] is not None
        ref = solve_univariate_cvxpy(program)
        assert sol.objective == pytest.approx(ref.objective, rel=1e-6, abs=1e-9)
        assert sol.objective == pytest.approx(
            program.objective_value(sol.coef, 0.0, 0.0), rel=1e-12, abs=1e-12)


def test_dense_solutions_are_left_to_the_banded_qp():
    """Near the bound nearly every point violates after dozens of atoms: no answer (the
    caller then solves the QP over every point)."""
    rng = np.random.default_rng(3)
    z = _standardised(rng.standard_normal(4000))
    n = z.size
    lam = np.full(n, 2.0 / n - 1.0 / n)
    out = solve_noskip_working_set(z, np.ones(n), np.zeros(n), n, 1.0, lam, False, 1e-8)
    assert out is None
    sol = solve_univariate_exact(UnivariateProgram("sm", z, 2.0 / n, "abs", False))
    assert sol.info["working_set"] is None and sol.duality_gap <= 1e-8


@pytest.mark.parametrize("activation", ["relu", "abs"])
def test_near_duplicate_direction_is_not_certified_early(activation):
    """n = 3 with a pair 1.2e-12 apart, alpha = the bound the pair would give as a tie: the
    optimum puts ~6e11 on an atom at the pair (true values, from an 80-digit enumeration of
    sign patterns: -0.120369 relu, -0.129642 abs). Two extreme atoms gave -0.0556 with every
    gradient within 1e-13 of its box (as does Clarabel on the dense program); the working set
    now tolerates nothing beyond rounding and leaves this case to the banded QP."""
    rng = np.random.default_rng(24008)
    base = rng.standard_normal(3)
    X = np.concatenate([base[:2], rng.choice(base[:2], 1) * (1 + 1e-12)
                        + 1e-12 * rng.choice([-1, 1], 1)])
    z = _standardised(X)
    program = UnivariateProgram("sm", z, gaussian_regime_alpha(z), activation, False)
    sol = solve_univariate_exact(program)
    optimum = {"relu": -0.120369349807, "abs": -0.129642378684}[activation]
    # coefficients ~1e11: trace and weight decay cancel to O(1) (summed in extended precision)
    assert sol.objective == pytest.approx(optimum, rel=1e-6)
