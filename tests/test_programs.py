"""The programs as data: bounds, alpha_G, patterns, structured evaluation."""

import numpy as np
import pytest

from skconvexscore import ConvexDenoisingScoreMatcher, ConvexScoreMatcher
from skconvexscore._cvxpy_solver import solve_univariate_cvxpy
from skconvexscore._programs import (
    ArrangementProgram,
    SolverError,
    UnboundedProgramError,
    UnivariateProgram,
    gaussian_regime_alpha,
    sample_patterns,
    standardize,
    univariate_alpha_bound,
)
from skconvexscore._univariate_solver import solve_univariate_exact

VARIANTS = [("relu", True), ("relu", False), ("abs", True), ("abs", False)]


def test_standardize_is_isotropic_and_rejects_a_single_point():
    X = np.random.default_rng(0).normal(size=(50, 3)) * [1.0, 2.0, 3.0] + 100
    Z, st = standardize(X)
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(np.mean(Z**2), 1.0)
    np.testing.assert_allclose(st.transform(X), Z)
    with pytest.raises(ValueError, match="zero variance"):
        standardize(np.full((5, 2), 3.0))


@pytest.mark.parametrize("activation, skip", VARIANTS)
def test_structured_evaluation_matches_the_dense_atom_matrix(activation, skip):
    rng = np.random.default_rng(1)
    x = np.sort(np.round(rng.normal(size=40), 1))  # ties included
    program = UnivariateProgram("sm", x, 0.5, activation, skip)
    coef = rng.normal(size=program.n_atoms)
    np.testing.assert_allclose(program.evaluate(coef, 0.3, -0.2),
                               program.design_matrix() @ coef + 0.3 * x - 0.2, atol=1e-12)


def test_bound_without_ties_is_one_over_n():
    x = np.sort(np.random.default_rng(2).normal(size=25))
    assert univariate_alpha_bound(x, "relu", True) == pytest.approx(1 / 25)
    assert univariate_alpha_bound(x, "relu", False) == pytest.approx(1 / 25)
    assert univariate_alpha_bound(x, "abs", False) == pytest.approx(1 / 25)
    assert univariate_alpha_bound(x, "abs", True) == pytest.approx(2 / 25)


def _status(x, alpha, activation, skip):
    program = UnivariateProgram("sm", x, alpha, activation, skip)
    try:
        solve_univariate_cvxpy(program)
    except UnboundedProgramError:
        return "unbounded"
    return "bounded"


@pytest.mark.parametrize("activation, skip", VARIANTS)
def test_bound_is_exact_with_ties(activation, skip):
    # three copies of the maximum and four of an interior value
    rng = np.random.default_rng(3)
    x = np.sort(np.concatenate([rng.normal(size=13), [5.0] * 3, [0.1] * 4]))
    bound = univariate_alpha_bound(x, activation, skip)
    n = x.size
    expected = {("relu", True): 3 / n, ("relu", False): 3 / n,
                ("abs", True): 6 / n, ("abs", False): 4 / n}[(activation, skip)]
    assert bound == pytest.approx(expected)
    assert _status(x, 0.97 * bound, activation, skip) == "unbounded"
    assert _status(x, 1.03 * bound, activation, skip) == "bounded"


def test_gaussian_regime_alpha_is_where_the_optimum_leaves_the_gaussian():
    rng = np.random.default_rng(4)
    x = np.sort(np.concatenate([rng.normal(-2, 0.5, 40), rng.normal(2, 0.5, 40)]))
    z = (x - x.mean()) / x.std()
    alpha_g = gaussian_regime_alpha(z)
    assert gaussian_regime_alpha(3 * x + 7) == pytest.approx(alpha_g)  # scale and shift free
    above = solve_univariate_cvxpy(UnivariateProgram("sm", z, 1.001 * alpha_g))
    below = solve_univariate_cvxpy(UnivariateProgram("sm", z, 0.98 * alpha_g))
    assert above.objective == pytest.approx(-0.5, abs=1e-7)  # -1/(2 var), var = 1
    assert np.max(np.abs(above.coef)) < 1e-5
    assert below.objective < -0.5 - 1e-6


def test_gaussian_regime_alpha_handles_ties():
    x = np.sort(np.repeat(np.random.default_rng(5).normal(size=15), 2))
    z = (x - x.mean()) / x.std()
    alpha_g = gaussian_regime_alpha(z)
    assert solve_univariate_cvxpy(UnivariateProgram("sm", z, 1.001 * alpha_g)).objective == pytest.approx(-0.5, abs=1e-7)
    assert solve_univariate_cvxpy(UnivariateProgram("sm", z, 0.98 * alpha_g)).objective < -0.5 - 1e-6


def test_gaussian_regime_alpha_is_accurate_far_from_zero():
    # x + 1e9 is exactly representable here (multiples of 2**-20), so the
    # offset data are the same points and alpha_G must not move
    x = np.round(np.random.default_rng(6).normal(size=1000) * 2**20) / 2**20
    alpha_g = gaussian_regime_alpha(x)
    assert gaussian_regime_alpha(x + 1e9) == pytest.approx(alpha_g, rel=1e-9)
    with pytest.raises(ValueError, match="positive variance"):
        gaussian_regime_alpha(np.full(4, 2.0))


def _outlier_sample():
    """39 standard normal points and one at 50: near the bound the optimum's kinks reach ~1e8."""
    return np.r_[np.random.default_rng(0).normal(size=39), 50.0]


@pytest.mark.parametrize("activation, skip, factor", [("abs", False, 1.5), ("relu", True, 1.05)])
def test_cvxpy_reference_is_accurate_when_the_coefficients_are_huge(activation, skip, factor):
    """Largest optimal coefficient 2.5e8 (abs) and 7e6 (relu): with the coefficients in
    units of one, Clarabel called points 5 % (abs) and 1.3 % (relu) above the optimum
    optimal, and the reference returned them."""
    z = np.sort(standardize(_outlier_sample()[:, None])[0].ravel())
    program = UnivariateProgram("sm", z, factor / z.size, activation, skip)
    exact = solve_univariate_exact(program)
    assert np.max(np.abs(exact.coef)) > 1e6
    ref = solve_univariate_cvxpy(program)
    assert ref.status == "optimal"
    assert ref.objective == pytest.approx(exact.objective, rel=1e-7)
    assert ref.objective == pytest.approx(
        program.objective_value(ref.coef, ref.slope, ref.intercept), rel=1e-12)


def test_cvxpy_estimator_agrees_with_the_exact_solver_on_an_outlier():
    """The reported case: objective_ -4578.69 with solver="cvxpy" (status "optimal")
    against -4824.59, which the exact solver's network reproduces."""
    X = _outlier_sample()[:, None]
    params = dict(alpha=1.5 / 40, activation="abs", skip_connection=False)
    exact = ConvexScoreMatcher(**params).fit(X)
    ref = ConvexScoreMatcher(**params, solver="cvxpy").fit(X)
    assert exact.objective_ == pytest.approx(-4824.588775, rel=1e-8)
    assert ref.objective_ == pytest.approx(exact.objective_, rel=1e-7)


def test_cvxpy_reference_raises_rather_than_return_an_improvable_point():
    """Tolerances loosened to 1e-3: Clarabel says "optimal" 5e-6 to 1e-4 above the optimum
    in every unit tried, so the reference must fail and say what to use instead."""
    z = np.sort(standardize(np.random.default_rng(0).normal(size=(30, 1)))[0].ravel())
    program = UnivariateProgram("sm", z, 2.0 / z.size)
    loose = {"tol_gap_abs": 1e-3, "tol_gap_rel": 1e-3, "tol_feas": 1e-3, "tol_ktratio": 1e-2}
    with pytest.raises(SolverError, match="solver='univariate'"):
        solve_univariate_cvxpy(program, solver_options=loose)


@pytest.mark.parametrize("activation, skip", VARIANTS)
def test_reference_check_recovers_the_cost_of_a_moved_pair_of_kinks(activation, skip):
    """From the optimum with two neighbouring kinks moved by -/+ delta, the line search along
    that pair (skip connection refitted) reaches the optimum again: the decrease it proves
    is the whole loss, and at the optimum itself it finds none."""
    from skconvexscore._cvxpy_solver import _line_search_decrease

    z = np.sort(standardize(np.random.default_rng(8).normal(size=(40, 1)))[0].ravel())
    bound = univariate_alpha_bound(z, activation, skip)
    program = UnivariateProgram("sm", z, 1.5 * bound, activation, skip)
    A = program.design_matrix()
    sol = solve_univariate_exact(program)
    best = program.objective_value(sol.coef, sol.slope, sol.intercept)
    assert _line_search_decrease(program, A, sol.coef, best) <= 1e-9 * abs(best)
    j = int(np.argmax(np.abs(sol.coef[: z.size - 1])))
    moved = sol.coef.copy()
    delta = 0.5 * abs(sol.coef[j]) + 1.0
    moved[j] -= delta
    moved[j + 1] += delta
    value = program.objective_value(moved, sol.slope, sol.intercept)
    loss = value - best
    assert loss > 1e-3 * abs(best)
    assert _line_search_decrease(program, A, moved, value) == pytest.approx(loss, rel=1e-6)


@pytest.mark.parametrize("activation", ["relu", "abs"])
def test_patterns_are_distinct_nonempty_and_gates_are_interior(activation):
    Z, _ = standardize(np.random.default_rng(6).normal(size=(60, 2)))
    masks, gates = sample_patterns(Z, 300, activation, np.random.RandomState(0))
    assert masks.shape == (60, gates.shape[0])
    keys = {m.tobytes() for m in masks.T}
    assert len(keys) == masks.shape[1]
    assert masks.any(axis=0).all()
    features = np.hstack([Z, np.ones((60, 1))])
    assert np.all(np.where(masks, 1.0, -1.0) * (features @ gates.T) > 0)
    if activation == "abs":  # a pattern and its complement are the same abs units
        complements = {(~m).tobytes() for m in masks.T}
        assert not keys & complements


def test_arrangement_program_objective_counts_active_points():
    Z, _ = standardize(np.random.default_rng(7).normal(size=(30, 2)))
    masks, gates = sample_patterns(Z, 20, "relu", np.random.RandomState(1))
    program = ArrangementProgram("sm", Z, masks, gates, 0.5)
    P = program.n_patterns
    positive = np.zeros((P, 3))
    positive[0] = gates[0]
    negative = np.zeros((P, 3))
    values = program.output_values(positive, negative, np.zeros(2), 0.0)
    np.testing.assert_allclose(values, np.maximum(program.features @ gates[0], 0))
    expected = (0.5 * values @ values + masks[:, 0].sum() * gates[0, 0]) / 30 + 0.5 * np.linalg.norm(gates[0, :2])
    assert program.objective_value(0, positive, negative, np.zeros(2), 0.0) == pytest.approx(expected)


def test_programs_hold_float32_data_in_float64():
    """A program's value at a point is the same for float32 data as for their float64 copy."""
    rng = np.random.default_rng(7)
    Z = (40.0 + rng.normal(size=(30, 2))).astype(np.float32)
    masks, gates = sample_patterns(Z.astype(np.float64), 20, "relu", np.random.RandomState(1))
    gates = gates.astype(np.float32)
    programs = [ArrangementProgram("sm", data, masks, gates.astype(data.dtype), 0.5)
                for data in (Z, Z.astype(np.float64))]
    assert programs[0].Z.dtype == programs[0].gates.dtype == np.float64
    P = masks.shape[1]
    positive, negative = rng.normal(size=(P, 3)), np.zeros((P, 3))
    values = [p.objective_value(0, positive, negative, np.array([0.3, -0.2]), 0.1) for p in programs]
    assert values[0] == values[1]
    x = np.sort(Z[:, 0])
    coef = rng.normal(size=30)
    values = [UnivariateProgram("sm", data, 0.5).objective_value(coef, 0.7, -0.2)
              for data in (x, x.astype(np.float64))]
    assert values[0] == values[1]


@pytest.mark.parametrize("activation", ["relu", "abs"])
def test_zero_optimum_without_skip_connection_has_no_units(activation):
    """Without skip connection the optimum at large alpha is the zero network: every block
    Clarabel returns is residue, and the largest of them was the clearing reference."""
    X = np.random.default_rng(0).normal(size=(40, 2))
    model = ConvexScoreMatcher(alpha=1.0, activation=activation, skip_connection=False,
                               n_patterns=20, solver="cvxpy", random_state=0).fit(X)
    assert model.n_neurons_ == 0 and model.objective_ == 0.0
    dsm = ConvexDenoisingScoreMatcher(alpha=3.0, activation=activation, skip_connection=False,
                                      noise_level=0.5, n_noise_samples=2, n_patterns=20,
                                      solver="cvxpy", random_state=0).fit(X)
    assert dsm.n_neurons_ == 0


@pytest.mark.parametrize("scale", [1e-13, 1e-40])
def test_standardize_accepts_a_tiny_spread_around_zero(scale):
    """The programs are equivariant under scaling: a spread of 1e-13 around 0 is resolved
    to 1e-15 and was rejected as 'the same point' by an absolute floor of 1e-12."""
    X = np.random.default_rng(1).gamma(2.0, size=(40, 2))
    Z, st = standardize(X * scale)
    reference, _ = standardize(X)
    np.testing.assert_allclose(Z, reference, rtol=0, atol=1e-12)
    assert st.scale == pytest.approx(np.sqrt(np.mean((X - X.mean(axis=0)) ** 2)) * scale)
    with pytest.raises(ValueError, match="zero variance"):
        standardize(1e9 + 1e-6 * X)  # below rounding of the offset: not resolved


def test_skip_only_values_are_the_gaussian_and_the_affine_least_squares_value():
    rng = np.random.default_rng(2)
    Z, _ = standardize(rng.normal(size=(60, 3)) @ np.diag([1.0, 1e-3, 1e-6]))
    masks, gates = sample_patterns(Z, 5, "relu", np.random.RandomState(0))
    precision = np.linalg.inv(np.cov(Z.T, bias=True))
    sm = ArrangementProgram("sm", Z, masks, gates, 0.1, "relu", True)
    for k in range(3):
        # J_SM of s(z) = -precision (z - mean): mean(|s_k|^2)/2 - precision_kk
        assert sm.skip_only_values()[k] == pytest.approx(-0.5 * precision[k, k], rel=1e-8)
    targets = rng.normal(size=(60, 3))
    dsm = ArrangementProgram("dsm", Z, masks, gates, 0.1, "relu", True, targets)
    design = np.column_stack([Z, np.ones(60)])
    fit = design @ np.linalg.lstsq(design, targets, rcond=None)[0]
    np.testing.assert_allclose(dsm.skip_only_values(),
                               0.5 * np.mean((targets - fit) ** 2, axis=0), rtol=1e-10)
    assert ArrangementProgram("sm", Z, masks, gates, 0.1, "relu", False).skip_only_values() is None
