"""ConvexDenoisingScoreMatcher: scikit-learn conventions and the theory, with numbers."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import parametrize_with_checks

from skconvexscore import ConvexDenoisingScoreMatcher
from skconvexscore._denoising import _draw_noise, _noisy_sample
from skconvexscore._programs import SolverError

from _builders import bimodal, minimise_with_adam, mixture_2d

SOLVERS_1D = ["auto", "cvxpy"]


def noisy_training_set(model, X, noise_level):
    """The noisy sample and targets of ``model``'s program at ``noise_level`` (int seed)."""
    eps, _ = _draw_noise(model.random_state, X.shape[0], X.shape[1], model.n_noise_samples)
    return _noisy_sample(np.asarray(X, dtype=np.float64), eps, noise_level)


@parametrize_with_checks(
    [
        ConvexDenoisingScoreMatcher(n_noise_samples=3, n_patterns=10),
        ConvexDenoisingScoreMatcher(activation="abs", skip_connection=False, noise_level=[1.0, 0.3],
                                    n_noise_samples=2, n_patterns=8),
    ]
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


# --------------------------------------------------------------------------
# Theory in 1-D
# --------------------------------------------------------------------------


@pytest.mark.parametrize("solver", SOLVERS_1D)
def test_small_alpha_memorises_the_mixture_score(solver):
    # well separated points: near x_i the targets -eps/sigma = -(x~ - x_i)/sigma^2 lie on
    # one line, which a tiny weight decay fits exactly
    sigma = 0.4
    X = np.array([[-7.0], [0.0], [5.0], [13.0]])
    model = ConvexDenoisingScoreMatcher(alpha=1e-7, noise_level=sigma, n_noise_samples=40,
                                        random_state=0, solver=solver).fit(X)
    noisy, _ = noisy_training_set(model, X, sigma)
    for x_i in X[:, 0]:
        cluster = noisy[np.abs(noisy[:, 0] - x_i) < 3 * sigma, 0]
        assert cluster.min() < x_i - sigma / 2 and cluster.max() > x_i + sigma / 2
        grid = np.linspace(x_i - sigma / 2, x_i + sigma / 2, 21)[:, None]
        mixture = -(grid - x_i) / sigma**2
        np.testing.assert_allclose(model.predict(grid), mixture, atol=1e-3 / sigma)


@pytest.mark.parametrize("solver", SOLVERS_1D)
def test_large_alpha_is_the_least_squares_line(solver):
    X = 3.0 * bimodal(60, seed=1) + 7.0
    sigma = 1.5
    model = ConvexDenoisingScoreMatcher(alpha=100.0, noise_level=sigma, n_noise_samples=5,
                                        random_state=3, solver=solver).fit(X)
    noisy, targets = noisy_training_set(model, X, sigma)
    design = np.column_stack([noisy, np.ones(len(noisy))])
    coef, *_ = np.linalg.lstsq(design, targets, rcond=None)
    grid = np.linspace(X.min() - 3, X.max() + 3, 40)[:, None]
    line = np.column_stack([grid, np.ones(len(grid))]) @ coef
    np.testing.assert_allclose(model.predict(grid), line, atol=1e-6 * np.abs(line).max())
    residual = targets - design @ coef
    assert model.objective_ == pytest.approx(0.5 * np.mean(residual**2), rel=1e-7)


@pytest.mark.parametrize("activation, skip", [("relu", True), ("relu", False), ("abs", True), ("abs", False)])
def test_recovered_network_reproduces_objective_1d(activation, skip):
    # far from the origin and not unit scale: checks J_x = J_z / scale^2 and the targets' scaling
    X = 3.0 * bimodal(50, seed=3) + 100.0
    alpha, sigma = 0.01, 0.8
    model = ConvexDenoisingScoreMatcher(alpha=alpha, noise_level=sigma, n_noise_samples=4, activation=activation,
                                        skip_connection=skip, random_state=0).fit(X)
    assert model.n_neurons_ > 0
    noisy, targets = noisy_training_set(model, X, sigma)
    assert model.networks_[0].dsm_objective(noisy, targets, alpha) == pytest.approx(model.objective_, rel=1e-6)
    reference = ConvexDenoisingScoreMatcher(alpha=alpha, noise_level=sigma, n_noise_samples=4, activation=activation,
                                            skip_connection=skip, random_state=0, solver="cvxpy").fit(X)
    assert reference.objective_ == pytest.approx(model.objective_, rel=1e-6)
    # the same through the torch module
    module = model.to_torch()
    with torch.no_grad():
        s = module(torch.tensor(noisy)).numpy()
    decay = 0.5 * (np.sum(model.hidden_weights_**2) + np.sum(model.output_weights_**2))
    value = 0.5 * np.mean(np.sum((s - targets) ** 2, axis=1)) + alpha * decay
    assert value == pytest.approx(model.objective_, rel=1e-6)


def test_rescaling_the_data_rescales_the_fit():
    # z = (x - m)/s coordinates: level sigma/s, targets -eps s/sigma, J_x = J_z / s^2
    X = bimodal(80, seed=4)
    a, b = 5.0, -30.0
    base = ConvexDenoisingScoreMatcher(alpha=0.02, noise_level=0.3, random_state=1).fit(X)
    moved = ConvexDenoisingScoreMatcher(alpha=0.02, noise_level=0.3 * a, random_state=1).fit(a * X + b)
    assert moved.objective_ == pytest.approx(base.objective_ / a**2, rel=1e-6)
    grid = np.linspace(-4, 4, 50)[:, None]
    np.testing.assert_allclose(moved.predict(a * grid + b), base.predict(grid) / a,
                               atol=1e-6 * np.abs(base.predict(grid)).max())


def _adam_dsm(noisy, targets, alpha, width, steps, seed, activation="relu"):
    """Adam on the non-convex per-output-unit network; returns J_DSM on the noisy sample."""
    torch.manual_seed(seed)
    n, d = noisy.shape
    x, y = torch.tensor(noisy), torch.tensor(targets)
    W = torch.nn.Parameter(torch.randn(width, d, dtype=torch.float64))
    b = torch.nn.Parameter(torch.randn(width, dtype=torch.float64))
    r = torch.nn.Parameter(0.1 * torch.randn(width, dtype=torch.float64))
    V = torch.nn.Parameter(torch.zeros(d, d, dtype=torch.float64))
    c = torch.nn.Parameter(torch.zeros(d, dtype=torch.float64))
    A_mask = torch.nn.functional.one_hot(torch.arange(width) % d, d).to(torch.float64)

    def objective():
        pre = x @ W.T + b
        hidden = pre.abs() if activation == "abs" else torch.relu(pre)
        s = hidden @ (r[:, None] * A_mask) + x @ V.T + c
        return 0.5 * ((s - y) ** 2).sum(1).mean() + 0.5 * alpha * ((W**2).sum() + (r**2).sum())

    return minimise_with_adam(objective, [W, b, r, V, c], steps)


def test_adam_never_beats_the_convex_optimum():
    X = bimodal(40, seed=5)
    alpha, sigma = 0.005, 0.3
    model = ConvexDenoisingScoreMatcher(alpha=alpha, noise_level=sigma, n_noise_samples=3, random_state=0).fit(X)
    noisy, targets = noisy_training_set(model, X, sigma)
    best = min(_adam_dsm(noisy, targets, alpha, width=40, steps=1500, seed=s) for s in range(3))
    assert best >= model.objective_ - 1e-6 * abs(model.objective_)

    # d = 2: the program is the optimum over the sampled patterns only, so sample nearly all
    # of them (24 noisy points: at most 552 affine dichotomies, 20000 gates find ~400 and
    # 100000 gates give the same optimum to 1e-10)
    X2 = mixture_2d(12, seed=6)
    alpha2, sigma2 = 0.02, 0.3
    model2 = ConvexDenoisingScoreMatcher(alpha=alpha2, noise_level=sigma2, n_noise_samples=2, n_patterns=20000,
                                         random_state=0).fit(X2)
    noisy2, targets2 = noisy_training_set(model2, X2, sigma2)
    best2 = min(_adam_dsm(noisy2, targets2, alpha2, width=40, steps=1500, seed=s) for s in range(2))
    assert best2 >= model2.objective_ - 1e-6 * abs(model2.objective_)


# --------------------------------------------------------------------------
# d >= 2
# --------------------------------------------------------------------------


@pytest.mark.parametrize("d", [2, 3])
def test_large_alpha_is_the_least_squares_affine_map(d):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(40, d)) @ rng.normal(size=(d, d)) + 5.0
    sigma = 0.7
    model = ConvexDenoisingScoreMatcher(alpha=100.0, noise_level=sigma, n_noise_samples=3, n_patterns=20,
                                        random_state=0).fit(X)
    noisy, targets = noisy_training_set(model, X, sigma)
    design = np.column_stack([noisy, np.ones(len(noisy))])
    coef, *_ = np.linalg.lstsq(design, targets, rcond=None)
    query = X + rng.normal(size=X.shape)
    expected = np.column_stack([query, np.ones(len(query))]) @ coef
    np.testing.assert_allclose(model.predict(query), expected, atol=1e-5 * np.abs(expected).max())
    residual = targets - design @ coef
    assert model.objective_ == pytest.approx(0.5 * np.mean(np.sum(residual**2, axis=1)), rel=1e-6)


@pytest.mark.parametrize("d, activation", [(2, "relu"), (2, "abs"), (3, "relu")])
def test_recovered_network_reproduces_objective(d, activation):
    rng = np.random.default_rng(8)
    X = 2.0 * rng.normal(size=(30, d)) ** 3 - 4.0
    alpha, sigma = 0.02, 0.5
    model = ConvexDenoisingScoreMatcher(alpha=alpha, noise_level=sigma, n_noise_samples=2, n_patterns=40,
                                        activation=activation, random_state=0).fit(X)
    assert model.n_neurons_ > 0 and model.n_patterns_ > 1
    noisy, targets = noisy_training_set(model, X, sigma)
    assert model.networks_[0].dsm_objective(noisy, targets, alpha) == pytest.approx(model.objective_, rel=1e-5)
    assert model.predict(X).shape == X.shape
    assert np.isfinite(model.score(X))
    assert model.output_weights_.shape == (model.n_neurons_, d)
    assert np.all(np.count_nonzero(model.output_weights_, axis=1) == 1)


@pytest.mark.parametrize("solver", ["auto", "cvxpy", "first_order"])
@pytest.mark.parametrize("n, d, copies", [(2, 2, 1), (2, 3, 2), (3, 3, 1)])
def test_at_most_d_plus_one_noisy_points_are_fitted_by_the_skip_connection(n, d, copies, solver):
    """With n K <= d + 1 noisy points the targets are affine in them: the skip connection
    fits them exactly, value 0 up to rounding (~1e-31). The recovered network's value,
    computed another way, differed from that by its own rounding, and the fit was refused
    ('blocks violate their cone constraints')."""
    X = np.random.default_rng(0).normal(size=(n, d))
    model = ConvexDenoisingScoreMatcher(alpha=0.05, noise_level=0.3, n_noise_samples=copies,
                                        n_patterns=30, random_state=0, solver=solver).fit(X)
    assert model.n_neurons_ == 0 and 0 <= model.objective_ < 1e-28


def test_more_patterns_never_raise_the_optimum_2d():
    X = mixture_2d(30, seed=9)
    values = [ConvexDenoisingScoreMatcher(alpha=0.02, noise_level=0.3, n_noise_samples=2, n_patterns=p,
                                          random_state=1).fit(X).objective_ for p in (5, 20, 80)]
    assert np.all(np.diff(values) <= 1e-7 * np.abs(values[:-1]))


# --------------------------------------------------------------------------
# Noise levels, randomness
# --------------------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 2])
def test_several_levels_equal_each_level_alone(d):
    X = bimodal(40, seed=10) if d == 1 else mixture_2d(25, seed=10)
    params = dict(alpha=0.01, n_noise_samples=3, n_patterns=15, random_state=7)
    levels = [0.3, 1.0, 0.1]
    joint = ConvexDenoisingScoreMatcher(noise_level=levels, **params).fit(X)
    np.testing.assert_array_equal(joint.noise_levels_, [1.0, 0.3, 0.1])
    assert isinstance(joint.objective_, np.ndarray) and joint.objective_.shape == (3,)
    assert len(joint.networks_) == 3
    for index, sigma in enumerate(joint.noise_levels_):
        alone = ConvexDenoisingScoreMatcher(noise_level=sigma, **params).fit(X)
        assert isinstance(alone.objective_, float)
        assert joint.objective_[index] == alone.objective_
        np.testing.assert_array_equal(joint.networks_[index].hidden_weights, alone.hidden_weights_)
        np.testing.assert_array_equal(joint.predict(X, noise_level=sigma), alone.predict(X))
    # default: the smallest level, whose weights are the fitted attributes
    np.testing.assert_array_equal(joint.hidden_weights_, joint.networks_[-1].hidden_weights)
    np.testing.assert_array_equal(joint.predict(X), joint.predict(X, noise_level=0.1))
    assert joint.score(X) == alone.score(X)


def test_levels_in_parallel_give_the_same_fit():
    X = bimodal(40, seed=11)
    params = dict(noise_level=[0.2, 0.5], n_noise_samples=3, random_state=0)
    serial = ConvexDenoisingScoreMatcher(**params).fit(X)
    parallel = ConvexDenoisingScoreMatcher(n_jobs=2, **params).fit(X)
    np.testing.assert_array_equal(serial.objective_, parallel.objective_)


def test_objective_decreases_with_the_noise_level():
    # the DSM loss ~ 1/(2 sigma^2) per coordinate: its constant depends on sigma
    X = bimodal(50, seed=12)
    model = ConvexDenoisingScoreMatcher(noise_level=[2.0, 0.5, 0.1], random_state=0).fit(X)
    assert np.all(np.diff(model.objective_) > 0)


def test_noise_draws_are_reproducible():
    X = mixture_2d(20, seed=13)
    params = dict(noise_level=0.4, n_noise_samples=2, n_patterns=10)
    a = ConvexDenoisingScoreMatcher(random_state=42, **params).fit(X)
    b = ConvexDenoisingScoreMatcher(random_state=42, **params).fit(X)
    c = ConvexDenoisingScoreMatcher(random_state=43, **params).fit(X)
    np.testing.assert_array_equal(a.hidden_weights_, b.hidden_weights_)
    assert a.objective_ == b.objective_
    assert c.objective_ != a.objective_
    d = ConvexDenoisingScoreMatcher(random_state=np.random.RandomState(42), **params).fit(X)
    assert d.objective_ == a.objective_
    # documented seeding: one gate seed, then eps of shape (K, n, d); more copies extend it
    eps3, seed3 = _draw_noise(5, 20, 2, 3)
    eps5, seed5 = _draw_noise(5, 20, 2, 5)
    assert seed3 == seed5 and eps3.shape == (3, 20, 2)
    np.testing.assert_array_equal(eps5[:3], eps3)


def test_unfitted_level_is_a_clear_error():
    model = ConvexDenoisingScoreMatcher(noise_level=[0.5, 0.2], random_state=0).fit(bimodal(30))
    with pytest.raises(ValueError, match=r"noise_level=0\.3 was not fitted.*\[0\.5, 0\.2\]"):
        model.predict(bimodal(5), noise_level=0.3)
    with pytest.raises(ValueError, match="not fitted"):
        model.to_torch(noise_level=1.0)
    # float() took these as the level 0.5 or as level 1.0
    for wrong in ("0.5", True, np.array([0.5])):
        with pytest.raises(TypeError, match="noise_level must be a number"):
            model.predict(bimodal(5), noise_level=wrong)
    np.testing.assert_array_equal(model.predict(bimodal(5), noise_level=0.5 * (1 + 1e-9)),
                                  model.predict(bimodal(5), noise_level=0.5))
    module = model.to_torch(noise_level=0.5)
    with torch.no_grad():
        out = module(torch.tensor(bimodal(5))).numpy()
    np.testing.assert_allclose(out, model.predict(bimodal(5), noise_level=0.5), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("noise_level", [0.0, -1.0, "big"])
def test_invalid_noise_level_parameter(noise_level):
    with pytest.raises(InvalidParameterError):
        ConvexDenoisingScoreMatcher(noise_level=noise_level).fit(bimodal(20))


@pytest.mark.parametrize("noise_level", [[], [0.1, -0.2], [0.1, np.nan], [[0.1, 0.2]], [0.2, 0.1, 0.2]])
def test_invalid_noise_level_sequence(noise_level):
    # the error docs/api.md lists for invalid parameters, as for a scalar level
    with pytest.raises(InvalidParameterError, match="noise_level|noise level"):
        ConvexDenoisingScoreMatcher(noise_level=noise_level).fit(bimodal(20))


@pytest.mark.parametrize("params", [{"alpha": 0.0}, {"n_noise_samples": 0}, {"n_noise_samples": 1.5},
                                    {"activation": "tanh"}, {"solver": "sgd"}])
def test_invalid_parameters(params):
    with pytest.raises(InvalidParameterError):
        ConvexDenoisingScoreMatcher(**params).fit(bimodal(20))


def test_tiny_alpha_is_bounded():
    # no well-posedness bound: alpha far below 1/n still solves (score matching would raise)
    X = bimodal(30, seed=14)
    model = ConvexDenoisingScoreMatcher(alpha=1e-6, noise_level=0.2, n_noise_samples=2, random_state=0).fit(X)
    assert np.isfinite(model.objective_) and model.objective_ > 0
    model2 = ConvexDenoisingScoreMatcher(alpha=1e-4, noise_level=0.2, n_noise_samples=2, n_patterns=20,
                                         random_state=0).fit(mixture_2d(15))
    assert np.isfinite(model2.objective_)


# --------------------------------------------------------------------------
# Model selection, pipelines, persistence, sampling
# --------------------------------------------------------------------------


def test_pipeline_and_grid_search_over_alpha_and_noise_level():
    rng = np.random.default_rng(15)
    X = 4.0 * bimodal(150, seed=15) + 10.0 + 0.01 * rng.normal(size=(150, 1))
    pipe = make_pipeline(StandardScaler(), ConvexDenoisingScoreMatcher(random_state=0))
    grid = {"convexdenoisingscorematcher__alpha": [0.003, 0.03, 10.0],
            "convexdenoisingscorematcher__noise_level": [0.1, 0.3, 1.0]}
    search = GridSearchCV(pipe, grid, cv=3).fit(X)
    scores = search.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores))
    best = search.best_params_
    assert best["convexdenoisingscorematcher__alpha"] < 10.0  # bimodal: not the Gaussian fit
    assert best["convexdenoisingscorematcher__noise_level"] < 1.0
    assert search.predict(X).shape == X.shape
    # the held-out criterion of the selected model beats the Gaussian score on fresh data
    X_test = 4.0 * bimodal(4000, seed=16) + 10.0
    mean, var = X.mean(), X.var()
    gaussian = -np.mean(0.5 * ((X_test - mean) / var) ** 2 - 1.0 / var)
    assert search.score(X_test) > gaussian + 0.05 / var


def test_pipeline_in_two_dimensions():
    X = mixture_2d(60, seed=17) * [1.0, 10.0]
    pipe = make_pipeline(StandardScaler(), ConvexDenoisingScoreMatcher(noise_level=0.3, n_noise_samples=2,
                                                                       n_patterns=20, random_state=0))
    pipe.fit(X)
    assert pipe.predict(X).shape == X.shape
    assert np.isfinite(pipe.score(X))


def test_pickle_round_trip_and_numpy_only_state():
    model = ConvexDenoisingScoreMatcher(noise_level=(0.5, 0.2), n_noise_samples=2, n_patterns=10,
                                        random_state=0).fit(mixture_2d(20))
    clone = pickle.loads(pickle.dumps(model))
    X = mixture_2d(10, seed=1)
    np.testing.assert_array_equal(clone.predict(X, noise_level=0.5), model.predict(X, noise_level=0.5))
    for name, value in vars(model).items():
        assert not isinstance(value, torch.Tensor), name


def test_annealed_sampling_runs_over_the_fitted_levels():
    X = bimodal(60, seed=18)
    model = ConvexDenoisingScoreMatcher(noise_level=[1.0, 0.3, 0.1], random_state=0).fit(X)
    samples = model.sample(200, n_steps=50, random_state=0)
    assert samples.shape == (200, 1) and np.all(np.isfinite(samples))
    # most chains end near one of the modes at -2 and 2
    assert np.mean(np.abs(np.abs(samples) - 2.0) < 1.0) > 0.8


def test_float32_input_gives_the_float64_fit():
    X = bimodal(40, seed=19)
    a = ConvexDenoisingScoreMatcher(random_state=0).fit(X.astype(np.float32))
    b = ConvexDenoisingScoreMatcher(random_state=0).fit(X.astype(np.float32).astype(np.float64))
    assert a.objective_ == b.objective_
    assert a.predict(X.astype(np.float32)).dtype == np.float64


@pytest.mark.parametrize("activation", ["relu", "abs"])
def test_skip_connection_never_raises_the_optimum_at_tiny_noise(activation):
    """The model without skip connection is a restriction of the one with it. At noise 1e-9
    of the spread the skip fit returned the least-squares line (objective 31x the no-skip one)."""
    kw = dict(alpha=1e-3, noise_level=1e-9, n_noise_samples=4, activation=activation,
              random_state=3)
    X = np.array([[0.0], [1.0]])
    skip = ConvexDenoisingScoreMatcher(**kw).fit(X)
    noskip = ConvexDenoisingScoreMatcher(skip_connection=False, **kw).fit(X)
    assert skip.objective_ <= noskip.objective_ * (1 + 1e-6)


def _affine_fit_value(X, random_state, n_noise_samples, sigma):
    """J_DSM of the least-squares affine map: a feasible point of every skip program."""
    eps, _ = _draw_noise(random_state, X.shape[0], X.shape[1], n_noise_samples)
    noisy, targets = _noisy_sample(X, eps, sigma)
    design = np.column_stack([noisy, np.ones(len(noisy))])
    coef, *_ = np.linalg.lstsq(design, targets, rcond=None)
    return 0.5 * np.mean(np.sum((targets - design @ coef) ** 2, axis=1))


def test_reference_is_accurate_with_noise_far_above_the_spread_2d():
    """The affine part of the targets carries all but (s/sigma)^2 of mean(y^2): the Gram
    formulation's terms cancelled and Clarabel stopped 9 % ABOVE the affine fit (a feasible
    point); an absolute residue floor also cleared genuine blocks of size 1e-11."""
    rng = np.random.default_rng(14)
    X = rng.normal(size=(25, 2))
    X[:, 1] += X[:, 0] ** 2
    params = dict(n_noise_samples=3, n_patterns=20, random_state=0, solver="cvxpy")
    model = ConvexDenoisingScoreMatcher(alpha=1e-6, noise_level=3000.0, **params).fit(X)
    affine = _affine_fit_value(X, 0, 3, 3000.0)
    assert model.objective_ <= affine * (1 + 1e-9)
    # the optimum computed independently (affine part taken out, targets normalised): 2.026002723e-14
    assert model.objective_ == pytest.approx(2.026002723e-14, rel=1e-7, abs=0)
    # 300 s: was 1.4e-4 above the optimum
    model = ConvexDenoisingScoreMatcher(alpha=1e-6, noise_level=300.0, **params).fit(X)
    assert model.objective_ == pytest.approx(1.669317896e-10, rel=1e-7, abs=0)


def test_univariate_solvers_agree_with_noise_far_above_the_spread():
    rng = np.random.default_rng(15)
    X = rng.normal(size=(25, 1))
    X[:, 0] += np.sign(X[:, 0]) * 2
    values = [ConvexDenoisingScoreMatcher(alpha=1e-6, noise_level=3000.0, n_noise_samples=3,
                                          random_state=0, solver=s).fit(X).objective_
              for s in ("auto", "cvxpy")]
    # independent cvxpy solve of the atom program: 4.33536317e-14 (auto was 5e-4 above)
    for value in values:
        assert value == pytest.approx(4.33536317e-14, rel=1e-7, abs=0)


def test_a_solver_failure_on_a_denoising_program_is_not_called_unbounded_score_matching(monkeypatch):
    """Least squares is bounded below: Clarabel's 'unbounded' on a DSM program (seen at
    noise_level=1e-8 on data of spread 1) was reported as 'Score matching ... is unbounded
    below ... use ConvexDenoisingScoreMatcher, which is always bounded'."""
    import skconvexscore._cvxpy_solver as cvxpy_solver

    def unbounded(problem, solver_options, verbose):
        return "unbounded", 3, None

    monkeypatch.setattr(cvxpy_solver, "_run", unbounded)
    X = np.random.default_rng(4).normal(size=(20, 2))
    with pytest.raises(SolverError) as info:
        ConvexDenoisingScoreMatcher(noise_level=0.3, n_patterns=10, random_state=0,
                                    solver="cvxpy").fit(X)
    assert "Score matching" not in str(info.value)


@pytest.mark.parametrize("solver", ["cvxpy", "first_order"])
def test_a_constant_feature_is_fitted_by_the_skip_connection(solver):
    """With feature 1 constant, its targets -eps/sigma are exactly affine in the noisy points
    (x~ = c + sigma eps), so that output's optimum is the skip row -(x~ - c)/sigma^2 with value
    0. Its accuracy unit was rounding noise (3e-26): Clarabel reported 'unbounded' and the
    first-order gap never certified. The other output is the jittered data's fit."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 2))
    X[:, 1] = 5.0
    model = ConvexDenoisingScoreMatcher(noise_level=0.1, n_patterns=20, n_noise_samples=2,
                                        random_state=3, solver=solver).fit(X)
    probe = np.column_stack([rng.standard_normal(7), 5.0 + 0.1 * rng.standard_normal(7)])
    np.testing.assert_allclose(model.predict(probe)[:, 1], -(probe[:, 1] - 5.0) / 0.1**2,
                               rtol=1e-9, atol=1e-9)
    jitter = X.copy()
    jitter[:, 1] += 1e-9 * rng.standard_normal(40)
    reference = ConvexDenoisingScoreMatcher(noise_level=0.1, n_patterns=20, n_noise_samples=2,
                                            random_state=3, solver="cvxpy").fit(jitter)
    assert model.objective_ == pytest.approx(reference.objective_, rel=1e-4)
