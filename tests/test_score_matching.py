"""ConvexScoreMatcher: scikit-learn conventions and the theory, with numbers."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import parametrize_with_checks

from skconvexscore import (
    ConvexScoreMatcher,
    ScoreNetwork,
    gaussian_regime_alpha,
    univariate_alpha_bound,
)
from skconvexscore._programs import SolverError, sample_patterns, standardize

from _builders import bimodal, minimise_with_adam, mixture_2d

SOLVERS_1D = ["auto", "cvxpy"]


@parametrize_with_checks([ConvexScoreMatcher(), ConvexScoreMatcher(activation="abs", skip_connection=False)])
def test_sklearn_compatible(estimator, check):
    check(estimator)


# --------------------------------------------------------------------------
# Theory in 1-D
# --------------------------------------------------------------------------


@pytest.mark.parametrize("solver", SOLVERS_1D)
def test_gaussian_regime_in_one_dimension(solver):
    X = bimodal(120, seed=1) * 3 + 7
    mean, var = X.mean(), X.var()
    alpha_g = gaussian_regime_alpha(X[:, 0])
    model = ConvexScoreMatcher(alpha=1.01 * alpha_g, solver=solver).fit(X)
    grid = np.linspace(X.min() - 2, X.max() + 2, 50)[:, None]
    np.testing.assert_allclose(model.predict(grid), -(grid - mean) / var, atol=1e-6 / np.sqrt(var))
    assert model.objective_ == pytest.approx(-1 / (2 * var), rel=1e-7)
    if solver != "cvxpy":  # an interior point leaves ~1e-8 residue on zero kinks
        assert model.n_neurons_ == 0
    below = ConvexScoreMatcher(alpha=0.95 * alpha_g, solver=solver).fit(X)
    assert below.objective_ < -1 / (2 * var) * (1 + 1e-6)
    assert below.n_neurons_ > 0


@pytest.mark.parametrize("solver", SOLVERS_1D)
def test_objective_is_nondecreasing_in_alpha_1d(solver):
    X = bimodal(100, seed=2)
    alphas = np.geomspace(1.05 / 100, 1.0, 8)
    values = [ConvexScoreMatcher(alpha=a, solver=solver).fit(X).objective_ for a in alphas]
    assert np.all(np.diff(values) >= -1e-8 * np.abs(values[:-1]))
    assert values[0] < values[-1]


VARIANTS_1D = [("relu", True), ("relu", False), ("abs", True), ("abs", False)]


@pytest.mark.parametrize("activation, skip", VARIANTS_1D)
@pytest.mark.parametrize("times_bound", [1.5, 40.0])
def test_recovered_network_reproduces_objective_1d(activation, skip, times_bound):
    X = bimodal(80, seed=3) + 100.0
    bound = (2.0 if (activation, skip) == ("abs", True) else 1.0) / 80
    alpha = times_bound * bound
    model = ConvexScoreMatcher(alpha=alpha, activation=activation, skip_connection=skip).fit(X)
    # kinks sit 1e-9 of a gap beside their points: the gap to the optimum is O(1e-9)
    assert model.networks_[0].sm_objective(X, alpha) == pytest.approx(model.objective_, rel=1e-8)
    # the same through the torch module, with autograd for the Jacobian trace
    module = model.to_torch()
    x = torch.tensor(X, requires_grad=True)
    s = module(x)
    (grad,) = torch.autograd.grad(s.sum(), x)
    decay = 0.5 * sum((p**2).sum() for n, p in module.named_parameters() if n in ("hidden.weight", "output.weight"))
    value = float(((0.5 * s**2 + grad).mean() + alpha * decay).detach())
    # autograd's relu'(0) = 0 differs from the limit convention only on
    # points that sit exactly on a kink, which the recovery avoids
    assert value == pytest.approx(model.objective_, rel=1e-8)


def test_translation_gives_the_same_fit():
    X = bimodal(90, seed=4)
    centred = ConvexScoreMatcher(alpha=0.05).fit(X - X.mean())
    far = ConvexScoreMatcher(alpha=0.05).fit(X - X.mean() + 100.0)
    assert far.objective_ == pytest.approx(centred.objective_, rel=1e-7)
    grid = np.linspace(-3, 3, 40)[:, None]
    np.testing.assert_allclose(far.predict(grid + 100.0), centred.predict(grid), atol=1e-6)


@pytest.mark.parametrize("activation, skip", VARIANTS_1D)
def test_a_large_offset_keeps_the_model_near_the_bound(activation, skip):
    # slopes reach ~1e6 near the bound: weights written around zero would place
    # the kinks beside their points only to ~1e-10, and the held-out criterion
    # moved by 1e-2 relative (abs without skip connection)
    n = 500
    X = np.random.default_rng(3).standard_normal((n, 1))
    alpha = (4.0 if (activation, skip) == ("abs", True) else 2.0) / n
    near = ConvexScoreMatcher(alpha=alpha, activation=activation, skip_connection=skip).fit(X)
    far = ConvexScoreMatcher(alpha=alpha, activation=activation, skip_connection=skip).fit(X + 1e6)
    # X + 1e6 rounds the points by ~1e-10: the optimum moves by ~1e-8 relative
    assert far.objective_ == pytest.approx(near.objective_, rel=1e-7)
    assert far.score(X + 1e6) == pytest.approx(near.score(X), rel=1e-6)
    scores = near.predict(X)
    np.testing.assert_allclose(far.predict(X + 1e6), scores, rtol=0, atol=1e-6 * np.abs(scores).max())
    # the fitted attributes are the same function in the user's coordinates, where
    # the biases carry the offset and keep ~1e-10 of it (7e-6 relative off the data here)
    plain = ScoreNetwork(far.hidden_weights_, far.hidden_biases_, far.output_weights_,
                         far.skip_weights_, far.output_bias_, far.activation)
    grid = np.linspace(-3.0, 3.0, 7)[:, None] + 1e6
    expected = far.predict(grid)
    np.testing.assert_allclose(plain.score(grid), expected, rtol=0,
                               atol=1e-4 * np.abs(expected).max())


def _adam_sm(X, alpha, width, steps, seed):
    """Adam on the non-convex network with per-output units; returns J_SM."""
    torch.manual_seed(seed)
    n, d = X.shape
    x = torch.tensor(X)
    W = torch.nn.Parameter(torch.randn(width, d, dtype=torch.float64))
    b = torch.nn.Parameter(torch.randn(width, dtype=torch.float64))
    r = torch.nn.Parameter(0.1 * torch.randn(width, dtype=torch.float64))
    V = torch.nn.Parameter(torch.zeros(d, d, dtype=torch.float64))
    c = torch.nn.Parameter(torch.zeros(d, dtype=torch.float64))
    owner = torch.arange(width) % d  # output fed by each unit
    A_mask = torch.nn.functional.one_hot(owner, d).to(torch.float64)

    def objective():
        pre = x @ W.T + b
        s = torch.relu(pre) @ (r[:, None] * A_mask) + x @ V.T + c
        trace = (pre > 0).to(torch.float64) @ (r * W[torch.arange(width), owner]) + torch.trace(V)
        return (0.5 * (s**2).sum(1) + trace).mean() + 0.5 * alpha * ((W**2).sum() + (r**2).sum())

    return minimise_with_adam(objective, [W, b, r, V, c], steps)


def test_adam_never_beats_the_convex_optimum():
    X = bimodal(60, seed=5)
    alpha = 0.08
    model = ConvexScoreMatcher(alpha=alpha).fit(X)
    best = min(_adam_sm(X, alpha, width=40, steps=1500, seed=s) for s in range(3))
    assert best >= model.objective_ - 1e-6 * abs(model.objective_)

    X2 = mixture_2d(60, seed=6)
    alpha2 = 0.15
    model2 = ConvexScoreMatcher(alpha=alpha2, n_patterns=200, random_state=0).fit(X2)
    best2 = min(_adam_sm(X2, alpha2, width=40, steps=1500, seed=s) for s in range(2))
    assert best2 >= model2.objective_ - 1e-6 * abs(model2.objective_)


# --------------------------------------------------------------------------
# Theory in d >= 2
# --------------------------------------------------------------------------


@pytest.mark.parametrize("d", [2, 3])
def test_gaussian_regime_in_several_dimensions(d):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(80, d)) @ rng.normal(size=(d, d)) + 5.0
    mean, cov = X.mean(axis=0), np.cov(X.T, bias=True)
    precision = np.linalg.inv(cov)
    model = ConvexScoreMatcher(alpha=5.0, n_patterns=30, random_state=0).fit(X)
    np.testing.assert_allclose(model.predict(X), -(X - mean) @ precision, rtol=1e-5, atol=1e-5 * np.abs(precision).max())
    assert model.objective_ == pytest.approx(-0.5 * np.trace(precision), rel=1e-6)
    assert model.n_neurons_ == 0  # the skip connection is the whole model


@pytest.mark.parametrize("seed", [0, 2])
def test_gaussian_regime_has_no_units_with_the_reference_solver(seed):
    # Clarabel leaves ~1e-10 residue on every block; it was cleared relative to the largest
    # block, itself residue here, and 10-17 units of nothing were recovered
    X = np.random.default_rng(seed).normal(size=(40, 2))
    model = ConvexScoreMatcher(alpha=3.0, n_patterns=20, solver="cvxpy", random_state=0).fit(X)
    assert model.n_neurons_ == 0
    assert model.objective_ == pytest.approx(
        -0.5 * np.trace(np.linalg.inv(np.cov(X.T, bias=True))), rel=1e-7)


def test_objective_monotone_in_alpha_and_patterns_2d():
    X = mixture_2d(70, seed=8)
    values = [ConvexScoreMatcher(alpha=a, n_patterns=40, random_state=1).fit(X).objective_
              for a in (0.1, 0.2, 0.4, 0.8)]
    assert np.all(np.diff(values) >= -1e-7 * np.abs(values[:-1]))
    # the same seed draws the first gates identically, so the pattern sets are nested
    by_patterns = [ConvexScoreMatcher(alpha=0.1, n_patterns=p, random_state=1).fit(X).objective_
                   for p in (10, 40, 160)]
    assert np.all(np.diff(by_patterns) <= 1e-7 * np.abs(by_patterns[:-1]))


@pytest.mark.parametrize("activation, skip", [("abs", False), ("relu", True)])
def test_duality_gap_bounds_the_fitted_network_above_the_optimum(activation, skip):
    """``duality_gap_`` is in the data's units and covers the network actually returned.

    Pairs 1e-9 apart (relative) just above the bound: the kinks placed beside their points
    put the network 9.4e15 above ``objective_`` (6.6e-5 of it, abs without skip connection)
    while ``duality_gap_`` read 4.8e-8, the solver's relative gap divided by ``scale**2``.
    """
    rng = np.random.RandomState(0)
    half = rng.standard_normal(500)
    X = np.concatenate([half, half * (1 + 1e-9 * rng.choice([-1, 1], 500))])[:, None]
    alpha = 1.000001 * univariate_alpha_bound(X, activation, skip)
    model = ConvexScoreMatcher(alpha=alpha, activation=activation, skip_connection=skip).fit(X)
    excess = model.networks_[0].sm_objective(X, alpha) - model.objective_
    assert excess <= model.duality_gap_ <= 1e-4 * abs(model.objective_)


def test_recovered_network_reproduces_objective_2d():
    X = mixture_2d(60, seed=9)
    for activation in ("relu", "abs"):
        model = ConvexScoreMatcher(alpha=0.1, activation=activation, n_patterns=50, random_state=0).fit(X)
        assert model.n_neurons_ > 0
        assert model.networks_[0].sm_objective(X, 0.1) == pytest.approx(model.objective_, rel=1e-5)


def _sm_program_value(Z, masks, alpha, activation):
    """math notes 4.1 without skip connection, summed over outputs, written out with cvxpy."""
    import cvxpy as cp

    n, d = Z.shape
    features = np.column_stack([Z, np.ones(n)])
    active = masks.astype(float)
    sign = 2 * active - 1
    gate = active if activation == "relu" else sign  # phi(x~ u) on each cone, and its slope
    total = 0.0
    for k in range(d):
        positive, negative = cp.Variable((masks.shape[1], d + 1)), cp.Variable((masks.shape[1], d + 1))
        fit = cp.sum(cp.multiply(gate, features @ (positive - negative).T), axis=1)
        trace = gate.sum(axis=0) @ (positive[:, k] - negative[:, k])
        penalty = cp.sum(cp.norm(positive[:, :d], 2, axis=1)) + cp.sum(cp.norm(negative[:, :d], 2, axis=1))
        problem = cp.Problem(cp.Minimize((0.5 * cp.sum_squares(fit) + trace) / n + alpha * penalty),
                             [cp.multiply(sign, features @ positive.T) >= 0,
                              cp.multiply(sign, features @ negative.T) >= 0])
        problem.solve(solver=cp.CLARABEL)
        total += problem.value
    return total


@pytest.mark.parametrize("activation", ["relu", "abs"])
@pytest.mark.parametrize("solver", ["cvxpy", "first_order"])
def test_without_skip_connection_the_all_active_pattern_is_kept(activation, solver):
    """math notes 4 keep every non-empty pattern. Without skip connection the all-active one is
    the only pattern whose units are affine on the data (a linear map for one unit's weight
    decay, and the output constant that unpenalised biases give): it was dropped, and
    objective_ sat at -1.1731 (relu) and -1.5279 (abs) above the optima -1.4230 and -1.5935
    over the same gates."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 2)) @ np.array([[1.0, 0.4], [0.0, 0.7]]) + 1.0
    model = ConvexScoreMatcher(alpha=0.3, activation=activation, skip_connection=False,
                               n_patterns=60, random_state=0, solver=solver).fit(X)
    Z, standardization = standardize(X)
    masks = sample_patterns(Z, 60, activation, check_random_state(0))[0]
    assert not masks.all(axis=0).any()
    masks = np.column_stack([masks, np.ones(len(Z), bool)])
    reference = _sm_program_value(Z, masks, 0.3, activation) / standardization.scale**2
    assert model.objective_ == pytest.approx(reference, rel=1e-5)
    assert model.networks_[0].sm_objective(X, 0.3) == pytest.approx(reference, rel=1e-5)


# --------------------------------------------------------------------------
# Model selection
# --------------------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 2, 3])
def test_pipeline_and_grid_search_with_ill_posed_alphas(d):
    rng = np.random.default_rng(10)
    X = rng.normal(size=(60, d)) ** 3 + rng.normal(size=(60, d))
    pipe = make_pipeline(StandardScaler(), ConvexScoreMatcher(n_patterns=20, random_state=0))
    # 0.001 is below 1/n on every fold: those fits fail and score NaN
    grid = {"convexscorematcher__alpha": [0.001, 0.3, 1.0]}
    search = GridSearchCV(pipe, grid, cv=3)
    with pytest.warns(Warning):
        search.fit(X)
    scores = search.cv_results_["mean_test_score"]
    assert np.isnan(scores[0]) and np.all(np.isfinite(scores[1:]))
    assert search.best_params_["convexscorematcher__alpha"] in (0.3, 1.0)
    assert search.predict(X).shape == X.shape


def test_grid_search_on_a_mixture_beats_the_gaussian_fit():
    X_train, X_test = mixture_2d(150, seed=11), mixture_2d(2000, seed=12)
    search = GridSearchCV(
        ConvexScoreMatcher(n_patterns=60, random_state=0),
        {"alpha": [0.005, 0.03, 0.06, 0.12, 0.25, 10.0]},
        cv=3,
    )
    with pytest.warns(Warning):  # alpha = 0.005 is ill posed
        search.fit(X_train)
    best = search.best_estimator_
    assert best.alpha > 2 / 100  # well posed on a fold of 100 points
    mean, precision = X_train.mean(0), np.linalg.inv(np.cov(X_train.T, bias=True))
    gaussian_score = -np.mean(0.5 * np.sum(((X_test - mean) @ precision) ** 2, 1) - np.trace(precision))
    assert best.score(X_test) > gaussian_score + 0.1


# --------------------------------------------------------------------------
# Errors, persistence, reproducibility
# --------------------------------------------------------------------------


def test_ill_posed_alpha_names_the_bound():
    X = bimodal(50)
    with pytest.raises(ValueError, match=r"unbounded below.*alpha >= 0\.02"):
        ConvexScoreMatcher(alpha=0.019).fit(X)
    ConvexScoreMatcher(alpha=0.021).fit(X)
    with pytest.raises(ValueError, match=r"alpha >= 0\.04"):
        ConvexScoreMatcher(alpha=0.03, activation="abs").fit(X)


def test_ill_posed_alpha_in_two_dimensions():
    # six points in 2-D: alpha = 0.3 unbounded, 0.34 bounded (math notes 4.1)
    X = np.array([[0.0, 0.0], [1.0, 0.2], [2.1, 1.0], [1.2, 2.2], [-0.3, 1.5], [0.8, 0.9]])
    with pytest.raises(ValueError, match="unbounded below.*roughly d/n"):
        ConvexScoreMatcher(alpha=0.3, n_patterns=2000, random_state=0).fit(X)
    model = ConvexScoreMatcher(alpha=0.34, n_patterns=2000, random_state=0).fit(X)
    assert np.isfinite(model.objective_)


def test_clarabel_failure_near_the_bound_is_reported_as_unboundedness():
    """Clarabel fails numerically on this unbounded program; "auto" then runs the
    first-order solver, which detects the unboundedness (the contract's error)."""
    X = np.random.default_rng(102).normal(size=(20, 2))
    with pytest.raises(ValueError, match="unbounded below"):
        ConvexScoreMatcher(alpha=0.06, n_patterns=40, random_state=0).fit(X)
    with pytest.raises(ValueError, match="unbounded below|solver='first_order' detects"):
        ConvexScoreMatcher(alpha=0.06, n_patterns=40, solver="cvxpy", random_state=0).fit(X)


def test_first_order_failure_on_anisotropic_data_says_why():
    """The program is not invariant to per-feature scaling, so spreads 1 and 1e-2 stay in
    it and slow ADMM down; an uncertified first-order fit names that and the remedies,
    and a failure on well-spread data does not blame the spreads."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    params = dict(alpha=0.05, solver="first_order", max_iter=50, n_patterns=20, random_state=0)
    with pytest.raises(SolverError) as isotropic:
        ConvexScoreMatcher(**params).fit(X)
    assert "spreads" not in str(isotropic.value)
    with pytest.raises(SolverError, match=r"spreads differ by a factor of 9\d.*solver='cvxpy'"):
        ConvexScoreMatcher(**params).fit(X * [1.0, 1e-2])


def test_rank_deficient_data_with_skip_connection_is_rejected():
    X = mixture_2d(40)
    X = np.column_stack([X, X[:, 0] - 2 * X[:, 1]])  # a redundant feature
    with pytest.raises(ValueError, match="affine subspace.*rank 2 < 3"):
        ConvexScoreMatcher(n_patterns=10, random_state=0).fit(X)


def test_rank_deficient_data_far_from_zero_are_rejected():
    X = mixture_2d(40)
    X = np.column_stack([X, X[:, 0] - 2 * X[:, 1]]) + 1e6  # rounding blurs the subspace
    with pytest.raises(ValueError, match="affine subspace.*rank 2 < 3"):
        ConvexScoreMatcher(n_patterns=10, random_state=0).fit(X)


def test_full_rank_data_with_very_different_axis_scales_are_fitted():
    """Spreads 1e-5 and 10 (covariance eigenvalues 1e12 apart): full rank, so the Gaussian
    regime holds, -Sigma^{-1}(x - mean) with value -tr(Sigma^{-1})/2. A fixed relative
    threshold on the covariance's eigenvalues called these data an affine subspace."""
    X = np.random.default_rng(1).normal(size=(50, 2)) * [1e-5, 10.0]
    model = ConvexScoreMatcher(alpha=1e8, n_patterns=30, random_state=0).fit(X)
    precision = np.linalg.inv(np.cov(X.T, bias=True))
    assert model.objective_ == pytest.approx(-0.5 * np.trace(precision), rel=1e-8)
    expected = -(X - X.mean(axis=0)) @ precision
    assert np.allclose(model.predict(X), expected, rtol=0, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_is_rejected(bad):
    X = bimodal(20)
    X[3, 0] = bad
    with pytest.raises(ValueError, match="NaN|infinity"):
        ConvexScoreMatcher().fit(X)


def test_shape_errors():
    with pytest.raises(ValueError):
        ConvexScoreMatcher().fit(np.empty((0, 2)))
    with pytest.raises(ValueError, match="1 sample"):
        ConvexScoreMatcher().fit(np.ones((1, 2)))
    model = ConvexScoreMatcher(n_patterns=10, random_state=0).fit(mixture_2d(30))
    with pytest.raises(ValueError, match="features"):
        model.predict(np.ones((3, 3)))


@pytest.mark.parametrize("params", [{"alpha": 0.0}, {"alpha": -1.0}, {"activation": "tanh"},
                                    {"n_patterns": 0}, {"solver": "sgd"}, {"tol": 0.0}])
def test_invalid_parameters(params):
    with pytest.raises(InvalidParameterError):
        ConvexScoreMatcher(**params).fit(bimodal(20))


def test_constant_data_is_rejected():
    with pytest.raises(ValueError, match="zero variance"):
        ConvexScoreMatcher().fit(np.full((10, 1), 2.0))


def test_pickle_round_trip_and_numpy_only_state():
    model = ConvexScoreMatcher(alpha=0.2, n_patterns=20, random_state=0).fit(mixture_2d(40))
    clone = pickle.loads(pickle.dumps(model))
    X = mixture_2d(10, seed=1)
    np.testing.assert_array_equal(clone.predict(X), model.predict(X))
    for name, value in vars(model).items():
        assert not isinstance(value, torch.Tensor), name


def test_reproducible_with_random_state():
    X = mixture_2d(50, seed=13)
    a = ConvexScoreMatcher(alpha=0.2, n_patterns=30, random_state=42).fit(X)
    b = ConvexScoreMatcher(alpha=0.2, n_patterns=30, random_state=42).fit(X)
    np.testing.assert_array_equal(a.hidden_weights_, b.hidden_weights_)
    assert a.objective_ == b.objective_


def test_float32_input_gives_the_float64_fit():
    X = bimodal(70, seed=14)
    a = ConvexScoreMatcher(alpha=0.1).fit(X.astype(np.float32))
    b = ConvexScoreMatcher(alpha=0.1).fit(X.astype(np.float32).astype(np.float64))
    assert a.objective_ == pytest.approx(b.objective_, rel=1e-10)
    assert a.predict(X.astype(np.float32)).dtype == np.float64


def test_a_network_that_does_not_reproduce_its_convex_value_is_refused():
    """A block off its cone (a point on the wrong side of the unit's hyperplane) changes what
    the recovered network computes; SCS through solver_options returned such blocks as
    'optimal', and the fitted network then scored 20 % above objective_."""
    from dataclasses import replace

    from skconvexscore._base import _check_reproduces
    from skconvexscore._cvxpy_solver import solve_arrangement_output_cvxpy
    from skconvexscore._network import recover_arrangement
    from skconvexscore._programs import (ArrangementProgram, SolverError, Standardization,
                                         sample_patterns, standardize)

    Z, _ = standardize(mixture_2d(40))
    masks, gates = sample_patterns(Z, 30, "relu", np.random.RandomState(0))
    program = ArrangementProgram("sm", Z, masks, gates, 0.3)
    identity = Standardization(mean=np.zeros(2), scale=1.0)
    solutions = [solve_arrangement_output_cvxpy(program, k) for k in range(2)]
    objective = sum(s.objective for s in solutions)
    _check_reproduces(program, recover_arrangement(program, solutions, identity), objective,
                      identity, "cvxpy")
    # move the largest block's hyperplane so that it cuts through its pattern
    first = solutions[0]
    blocks = np.vstack([first.positive, first.negative])
    block = int(np.argmax(np.linalg.norm(blocks, axis=1)))
    active = masks[:, block % masks.shape[1]]
    pre = program.features @ blocks[block]
    blocks[block, -1] -= np.median(pre[active])  # half its active points now below zero
    positive, negative = np.split(blocks, 2)
    broken = [replace(first, positive=positive, negative=negative,
                      objective=program.objective_value(0, positive, negative,
                                                        first.skip_row, first.intercept)),
              solutions[1]]
    assert program.cone_violation(positive, negative) > 0.01
    with pytest.raises(SolverError, match="violate their cone constraints"):
        _check_reproduces(program, recover_arrangement(program, broken, identity),
                          sum(s.objective for s in broken), identity, "cvxpy")


def test_fit_at_the_gaussian_regime_alpha_where_it_equals_the_bound():
    """With three tied minima alpha_G equals the bound m_ext/n = 3/7; it used to round one ulp
    below it, and fit(alpha=alpha_G) raised "unbounded below"."""
    x = np.array([0, 0, 0, 1, 2, 3, 4.0])[:, None]
    alpha = gaussian_regime_alpha(x)
    assert alpha >= 3 / 7
    model = ConvexScoreMatcher(alpha=alpha).fit(x)
    assert model.objective_ == pytest.approx(-0.5 / x.var(), rel=1e-10)
    np.testing.assert_allclose(model.predict(x), -(x - x.mean()) / x.var(), atol=1e-10)
