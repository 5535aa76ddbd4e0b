"""Langevin sampling: exact stationary laws, mode proportions, reproducibility, divergence."""

import warnings

import numpy as np
import pytest
import torch
from scipy import stats

from skconvexscore import ConvexDenoisingScoreMatcher, ConvexScoreMatcher, ScoreNetwork
from skconvexscore._density import PiecewiseQuadraticDensity
from skconvexscore._langevin import (
    LangevinDivergenceError,
    NonNormalisableModelWarning,
    _drift,
    auto_step_size,
    initial_state,
    langevin_sample,
)

from _builders import univariate_network

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
# CPU always; CUDA (its default float32, and float64) where a GPU is present
DEVICES = ["cpu", pytest.param("cuda", marks=[cuda, pytest.mark.cuda]),
           pytest.param("cuda-float64", marks=[cuda, pytest.mark.cuda])]


def on(device):
    """sample()/langevin_sample keyword arguments for one entry of DEVICES."""
    return {"device": "cuda", "dtype": "float64"} if device == "cuda-float64" else {"device": device}


def gaussian_by_units(mean, var):
    """``-(x - m)/v`` written with two ReLU units, no skip: relu(x-m) - relu(m-x) = x - m."""
    return univariate_network([1.0, -1.0], [-mean, mean], [-1.0 / var, 1.0 / var], 0.0, 0.0)


def gaussian_by_skip(mean, cov):
    precision = np.linalg.inv(np.atleast_2d(cov))
    d = precision.shape[0]
    return ScoreNetwork(np.zeros((0, d)), np.zeros(0), np.zeros((0, d)), -precision,
                        precision @ np.broadcast_to(mean, (d,)))


def bimodal_network():
    """Slopes -2, +2, -2 with kinks at -0.5 and 1.2: modes at -1.5 and 1.9, valley at 0.5.

    The barriers are 2 and 0.98 nats, so chains cross them many times in a
    few thousand steps.
    """
    return univariate_network([1.0, 1.0], [0.5, -1.2], [4.0, -4.0], -2.0, -3.0)


def stationary_variance(var, step):
    """Exact stationary variance of the update on the score -(x - m)/var."""
    return var / (1.0 - step / (4.0 * var))


def annealed_variance(start_var, variances, steps, n_steps):
    """Exact variance after annealed Langevin on Gaussian scores -(x - m_i)/v_i.

    At each level the update is the AR(1) recursion with factor
    ``rho = 1 - eps/(2v)``: the variance moves from its start towards the
    stationary one by ``rho^(2 n_steps)``.
    """
    var = start_var
    for v, step in zip(variances, steps):
        rho2 = (1.0 - step / (2.0 * v)) ** 2
        target = stationary_variance(v, step)
        var = target + rho2**n_steps * (var - target)
    return var


def two_bump_data():
    """150 points from 0.4 N(-2, 0.5^2) + 0.6 N(1.5, 1): SM at small alpha has a rising tail."""
    rng = np.random.default_rng(1)
    return np.concatenate([rng.normal(-2, 0.5, 60), rng.normal(1.5, 1.0, 90)])[:, None]


# ----------------------------------------------------------------------------------------------
# exact laws
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("build", [gaussian_by_units, gaussian_by_skip])
def test_gaussian_stationary_law(build):
    mean, var, step, n = 1.5, 2.0, 0.8, 20000
    network = build(mean, var)
    start = np.full((n, 1), -3.0)
    samples = langevin_sample(network, n, n_steps=300, step_size=step, init=start, random_state=0)
    expected_var = stationary_variance(var, step)  # 2.222, 10% above var
    assert samples.mean() == pytest.approx(mean, abs=4 * np.sqrt(expected_var / n))
    assert samples.var() == pytest.approx(expected_var, abs=4 * expected_var * np.sqrt(2.0 / n))
    # the test can tell the discretisation bias apart from the true variance
    assert abs(samples.var() - var) > 4 * expected_var * np.sqrt(2.0 / n)


@pytest.mark.parametrize("device", DEVICES)
def test_gaussian_2d_stationary_covariance(device):
    mean = np.array([1.0, -2.0])
    cov = np.array([[2.0, 0.6], [0.6, 0.5]])
    step, n = 0.3, 20000
    samples = langevin_sample(gaussian_by_skip(mean, cov), n, n_steps=400, step_size=step,
                              init=np.zeros((n, 2)), random_state=1, **on(device))
    # C = Sigma (I - eps Sigma^{-1} / 4)^{-1}, eigen-direction by eigen-direction
    expected = cov @ np.linalg.inv(np.eye(2) - step * np.linalg.inv(cov) / 4.0)
    np.testing.assert_allclose(samples.mean(axis=0), mean, atol=4 * np.sqrt(np.diag(expected).max() / n))
    np.testing.assert_allclose(np.cov(samples.T), expected, atol=4 * np.sqrt(2.0 / n) * np.diag(expected).max())


def test_fitted_gaussian_regime_estimator():
    X = np.random.default_rng(0).normal(3.0, 2.0, size=(150, 1))
    model = ConvexScoreMatcher(alpha=1.0).fit(X)  # large alpha: the Gaussian score
    var, step, n = X.var(), 2.0, 20000
    samples = model.sample(n, n_steps=200, step_size=step, init="gaussian", random_state=0)
    assert samples.shape == (n, 1)
    expected_var = stationary_variance(var, step)
    assert samples.mean() == pytest.approx(X.mean(), abs=4 * np.sqrt(expected_var / n))
    assert samples.var() == pytest.approx(expected_var, abs=4 * expected_var * np.sqrt(2.0 / n))
    # default: step "auto", init "data"
    default = model.sample(4000, random_state=0)
    assert default.var() == pytest.approx(1.05 * var, rel=0.1)


def test_bimodal_mode_proportions():
    network = bimodal_network()
    density = PiecewiseQuadraticDensity(network)
    left = float(density.cdf(0.5))  # exact mass of the left mode (about 0.74)
    n = 4000
    # all chains start in the right mode: the proportions come from the dynamics
    samples = langevin_sample(network, n, n_steps=3000, step_size=0.02, init=np.full((n, 1), 1.9),
                              random_state=0)[:, 0]
    assert np.mean(samples < 0.5) == pytest.approx(left, abs=4 * np.sqrt(left * (1 - left) / n) + 0.01)
    # and the whole law, up to the small-step bias
    exact = density.sample(n, random_state=1)
    assert stats.ks_2samp(samples, exact).pvalue > 1e-3


@pytest.mark.parametrize("activation", ["relu", "abs"])
def test_univariate_drift_is_the_score_of_the_units(activation):
    # 1-D chains read the score off its linear pieces, not the hidden units
    rng = np.random.default_rng(3)
    m = 500
    network = univariate_network(rng.normal(size=m), 3 * rng.normal(size=m), rng.normal(size=m),
                                 -2.0, 0.5, activation)
    x = torch.as_tensor(4.0 * rng.normal(size=(1, 2000)))
    drift = torch.empty_like(x)
    state = torch.cat([x, torch.ones_like(x)])
    _drift(network, lambda a: torch.as_tensor(a, dtype=torch.float64))(state, drift)
    with torch.no_grad():
        by_units = network.to_torch()(x.T).T
    np.testing.assert_allclose(drift.numpy(), by_units.numpy(), rtol=0,
                               atol=1e-12 * float(by_units.abs().max()))


def test_separable_2d_model_matches_exact_product_law():
    # s(x) = (s_1(x_1), s_2(x_2)): units see one coordinate, so the field is the
    # gradient of log p_1(x_1) + log p_2(x_2), and exact samples exist
    first = bimodal_network()
    second = univariate_network([1.0, -1.0], [-1.0, 1.0], [-1.0, 1.0], 0.0, 0.0)  # N(1, 1)
    W = np.zeros((4, 2))
    W[:2, 0], W[2:, 1] = first.hidden_weights[:, 0], second.hidden_weights[:, 0]
    A = np.zeros((4, 2))
    A[:2, 0], A[2:, 1] = first.output_weights[:, 0], second.output_weights[:, 0]
    network = ScoreNetwork(W, np.concatenate([first.hidden_biases, second.hidden_biases]), A,
                           np.diag([-2.0, 0.0]), np.array([-3.0, 0.0]))
    n = 3000
    samples = langevin_sample(network, n, n_steps=3000, step_size=0.02, init=np.zeros((n, 2)),
                              random_state=0)
    exact = np.column_stack([PiecewiseQuadraticDensity(first).sample(n, random_state=1),
                             PiecewiseQuadraticDensity(second).sample(n, random_state=2)])
    radius = lambda X: np.linalg.norm(X - [0.5, 1.0], axis=1)  # noqa: E731
    assert stats.ks_2samp(radius(samples), radius(exact)).pvalue > 1e-3
    assert stats.ks_2samp(samples[:, 1], exact[:, 1]).pvalue > 1e-3


@pytest.mark.parametrize("device", DEVICES)
def test_fitted_ring_radius_distribution(device):
    rng = np.random.default_rng(0)
    angle = rng.uniform(0, 2 * np.pi, 80)
    radius = 2.0 + 0.2 * rng.normal(size=80)
    X = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
    model = ConvexScoreMatcher(alpha=0.05, n_patterns=60, random_state=0).fit(X)
    samples = model.sample(2000, n_steps=300, random_state=0, **on(device))
    np.testing.assert_array_equal(samples, model.sample(2000, n_steps=300, random_state=0,
                                                        **on(device)))
    sample_radius = np.linalg.norm(samples - X.mean(axis=0), axis=1)
    data_radius = np.linalg.norm(X - X.mean(axis=0), axis=1)
    assert stats.ks_2samp(sample_radius, data_radius).pvalue > 1e-3
    assert np.mean(sample_radius < 1.0) < 0.02  # the hole stays empty


@pytest.mark.parametrize("device", DEVICES)
def test_annealed_langevin(device):
    # level i: the score of N(0, 1 + sigma_i^2) (Gaussian data smoothed at sigma_i)
    levels = np.array([2.0, 0.5, 0.1])
    networks = [gaussian_by_skip(0.0, 1.0 + s**2) for s in levels]
    step, n = 0.01, 5000
    samples = langevin_sample(networks, n, n_steps=2500, step_size=step, noise_levels=levels,
                              init=np.random.default_rng(0).normal(0, 3, (n, 1)), random_state=0,
                              **on(device))
    expected = stationary_variance(1.0 + levels[-1] ** 2, step)
    assert samples.var() == pytest.approx(expected, abs=4 * expected * np.sqrt(2.0 / n))
    with pytest.raises(ValueError, match="decreasing"):
        langevin_sample(networks, 2, n_steps=1, step_size=step, noise_levels=levels[::-1],
                        init=np.zeros((2, 1)))
    with pytest.raises(ValueError, match="noise_levels"):
        langevin_sample(networks, 2, n_steps=1, step_size=step, init=np.zeros((2, 1)))


# ----------------------------------------------------------------------------------------------
# step size, initialisation, devices
# ----------------------------------------------------------------------------------------------


def test_auto_step_size_rule():
    var = 0.5
    network = gaussian_by_units(0.0, var)
    step = auto_step_size(network, data_scale=1.0, accuracy=0.05)
    # L = 1/var = 2 > 1/scale^2: variance bias exactly 5 %
    assert stationary_variance(var, step) == pytest.approx(1.05 * var)
    # a flat score falls back on the data scale
    flat = univariate_network([], [], [], 0.0, 0.0)
    assert auto_step_size(flat, data_scale=3.0) == pytest.approx(4 * 0.05 / 1.05 * 9.0)
    # annealing: every level's step obeys the rule for its own network, whose law is wider than
    # the smallest level's by sigma_i^2 - sigma_L^2 (the scale in its floor)
    nets = [gaussian_by_skip(0.0, 1.0 + s**2) for s in (1.0, 0.1)]
    base = auto_step_size(nets, 1.0, noise_levels=[1.0, 0.1])
    single = [auto_step_size(net, np.sqrt(1.0 + s**2 - 0.1**2)) for net, s in zip(nets, (1.0, 0.1))]
    assert base * 100 <= single[0] * (1 + 1e-12) and base <= single[1] * (1 + 1e-12)


def test_annealed_auto_step_widens_the_floor_with_the_noise_level():
    # Gaussian data of scale 2 smoothed at sigma_i: level i's score is that of N(0, 4 + sigma_i^2).
    # Level i's floor 1/(4 + sigma_i^2 - sigma_L^2) is just above its curvature 1/(4 + sigma_i^2),
    # so the base step is min_i f (4 + sigma_i^2 - sigma_L^2) sigma_L^2 / sigma_i^2, reached at the
    # top level; the old floor 1/4 at every level capped the top level at f 4: a base 26x smaller.
    levels = np.array([10.0, 3.0, 1.0, 0.3])
    variances = 4.0 + levels**2
    networks = [gaussian_by_skip(0.0, v) for v in variances]
    f = 4 * 0.05 / 1.05
    base = auto_step_size(networks, 2.0, noise_levels=levels)
    assert base == pytest.approx(f * (variances[0] - 0.09) * 0.09 / 100.0, rel=1e-12)
    # a single level keeps the floor 1/scale^2, with or without its noise level
    flat = univariate_network([], [], [], 0.0, 0.0)
    assert auto_step_size(flat, 3.0, noise_levels=[0.5]) == pytest.approx(f * 9.0, rel=1e-12)

    # the chains, started from the top level's law, reach the smallest level's law N(0, 4.09)
    n, n_steps = 2000, 500
    samples = langevin_sample(networks, n, n_steps=n_steps, step_size="auto", noise_levels=levels,
                              init=np.random.default_rng(0).normal(0, np.sqrt(variances[0]), (n, 1)),
                              data_scale=2.0, random_state=0)
    expected = annealed_variance(variances[0], variances, base * levels**2 / levels[-1] ** 2, n_steps)
    assert expected == pytest.approx(variances[-1], rel=0.03)  # 4.20: 500 steps nearly relax
    # (the old base leaves 11.2: the last levels' steps were too small to relax)
    assert samples.var() == pytest.approx(expected, abs=4 * expected * np.sqrt(2.0 / n))


@pytest.mark.parametrize("device", DEVICES)
def test_annealed_auto_step_samples_the_smallest_level_of_a_fitted_model(device):
    # alpha = 100 leaves no hidden unit: every level's score is linear, so the smallest level's
    # law is the Gaussian N(m_L, v_L) with v_L = -1/slope, sampled exactly by method="exact"
    X = 50 + 2 * np.random.default_rng(0).standard_normal((200, 1))
    model = ConvexDenoisingScoreMatcher(alpha=100.0, noise_level=[10.0, 3.0, 1.0, 0.3],
                                        n_noise_samples=5, random_state=0).fit(X)
    assert all(net.n_units == 0 for net in model.networks_)
    variances = np.array([-1.0 / net.piecewise().slopes[0] for net in model.networks_])
    n = 2000
    samples = model.sample(n, n_steps=500, random_state=3, **on(device))[:, 0]
    exact = model.sample(n, method="exact", random_state=1)[:, 0]
    # started at the data jittered by sigma_1 (variance var(X) + 100): after 500 steps per level
    # the recursion leaves 4.06 against v_L = 3.98 (the old automatic step left 11.1)
    base = auto_step_size(model.networks_, model.scale_, noise_levels=model.noise_levels_)
    steps = base * model.noise_levels_**2 / model.noise_levels_[-1] ** 2
    expected = annealed_variance(X.var() + 100.0, variances, steps, 500)
    assert expected == pytest.approx(variances[-1], rel=0.05)
    assert samples.var() == pytest.approx(expected, abs=4 * expected * np.sqrt(2.0 / n))
    assert stats.ks_2samp(samples, exact).pvalue > 1e-3


def test_initial_state():
    X = np.arange(10.0).reshape(5, 2)
    start = initial_state("data", 7, X=X, jitter=0.0, random_state=0)
    assert start.shape == (7, 2) and all(row in X.tolist() for row in start.tolist())
    gauss = initial_state("gaussian", 20000, location=np.array([1.0, 2.0]), scale=3.0, random_state=0)
    np.testing.assert_allclose(gauss.mean(axis=0), [1.0, 2.0], atol=0.1)
    np.testing.assert_allclose(gauss.std(axis=0), [3.0, 3.0], rtol=0.03)
    with pytest.raises(ValueError, match="shape"):
        initial_state(np.zeros((3, 2)), 4, X=X)
    with pytest.raises(ValueError, match="init="):
        initial_state("uniform", 4, X=X)


def test_reproducible_on_cpu():
    network = bimodal_network()
    run = lambda seed: langevin_sample(network, 500, n_steps=50, step_size=0.05,  # noqa: E731
                                       init=np.zeros((500, 1)), random_state=seed)
    np.testing.assert_array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))
    X = np.random.default_rng(0).normal(size=(50, 1))
    model = ConvexScoreMatcher(alpha=1.0).fit(X)
    np.testing.assert_array_equal(model.sample(10, n_steps=20, random_state=1),
                                  model.sample(10, n_steps=20, random_state=1))


def test_float32_on_cpu():
    samples = langevin_sample(gaussian_by_units(0.0, 1.0), 100, n_steps=10, step_size=0.1,
                              init=np.zeros((100, 1)), dtype="float32", random_state=0)
    assert samples.dtype == np.float64 and np.all(np.isfinite(samples))


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=[cuda, pytest.mark.cuda])])
def test_chains_move_relative_to_the_origin(device):
    # N(1e7, 1) in float32: 1e7 has a resolution of 1.0 there, the chains do not
    network = ScoreNetwork(np.zeros((0, 1)), np.zeros(0), np.zeros((0, 1)), -np.eye(1), np.zeros(1),
                           origin=[1e7])
    n, step = 4000, 0.1
    samples = langevin_sample(network, n, n_steps=300, step_size=step, init=np.full((n, 1), 1e7),
                              dtype="float32", random_state=0, device=device)[:, 0] - 1e7
    var = stationary_variance(1.0, step)
    assert abs(samples.mean()) < 4 * np.sqrt(var / n)
    assert samples.var() == pytest.approx(var, rel=0.1)


def test_progress_bar_runs():
    pytest.importorskip("tqdm")
    langevin_sample(gaussian_by_units(0.0, 1.0), 10, n_steps=5, step_size=0.1,
                    init=np.zeros((10, 1)), progress=True, random_state=0)


@pytest.mark.parametrize("step_size", [np.inf, -1.0, 0.0, np.nan, "big", None, True, np.True_])
def test_invalid_step_sizes_are_named_before_anything_runs(step_size):
    # init="data" jitters by sqrt(step_size): that used to run first and misreport inf,
    # warn on -1 and fail on "big" with float()'s own message
    model = ConvexScoreMatcher(alpha=1.0).fit(np.random.default_rng(0).normal(size=(30, 1)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="step_size"):
            model.sample(3, n_steps=5, step_size=step_size, random_state=0)


@pytest.mark.parametrize("kwargs", [{"n_samples": True}, {"n_samples": np.True_}, {"n_steps": True}])
def test_bools_are_not_counts(kwargs):
    # True is an Integral: sample(True) used to reach NumPy's TypeError, n_steps=True ran one step
    model = ConvexScoreMatcher(alpha=1.0).fit(np.random.default_rng(0).normal(size=(30, 1)))
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        model.sample(**{"n_samples": 3, "n_steps": 5, "random_state": 0, **kwargs})


@cuda
@pytest.mark.cuda
def test_reproducible_on_gpu():
    network = bimodal_network()
    run = lambda: langevin_sample(network, 1000, n_steps=50, step_size=0.05,  # noqa: E731
                                  init=np.zeros((1000, 1)), device="cuda", random_state=5)
    np.testing.assert_array_equal(run(), run())


@cuda
@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [None, "float64"])
def test_cpu_and_gpu_agree_in_distribution(dtype):
    network = bimodal_network()
    n = 4000
    kwargs = dict(n_steps=2000, step_size=0.02, init=np.full((n, 1), 1.9))
    cpu = langevin_sample(network, n, device="cpu", random_state=0, **kwargs)[:, 0]
    gpu = langevin_sample(network, n, device="cuda", dtype=dtype, random_state=1, **kwargs)[:, 0]
    assert stats.ks_2samp(cpu, gpu).pvalue > 1e-3


# ----------------------------------------------------------------------------------------------
# divergence
# ----------------------------------------------------------------------------------------------


def test_divergence_names_a_step_size():
    network = gaussian_by_units(0.0, 1.0)  # stable only for step < 4
    with pytest.raises(LangevinDivergenceError, match=r"Try step_size=0\.\d+") as info:
        langevin_sample(network, 100, n_steps=500, step_size=50.0, init=np.zeros((100, 1)),
                        data_scale=1.0, random_state=0)
    assert "4/L = 4" in str(info.value)
    assert isinstance(info.value, RuntimeError)


def test_divergence_to_non_finite_is_reported():
    network = gaussian_by_units(0.0, 1e-3)
    # float32 overflows within one check block: the error says so, never NaNs
    with pytest.raises(LangevinDivergenceError, match="non-finite"):
        langevin_sample(network, 50, n_steps=100, step_size=10.0, init=np.ones((50, 1)),
                        dtype="float32", check_every=100, random_state=0)


def test_estimator_divergence():
    X = np.random.default_rng(0).normal(size=(50, 1))
    model = ConvexScoreMatcher(alpha=1.0).fit(X)
    with pytest.raises(LangevinDivergenceError, match="step_size='auto' gives"):
        model.sample(20, n_steps=100, step_size=100.0, random_state=0)


def test_non_normalisable_univariate_model_warns():
    # alpha = 2/n: the right tail's score slope is +1.11 beyond x = 2.40 (score -3.08 there), so the
    # score turns outwards past 2.40 + 3.08/1.11 = 5.17 and chains beyond it never come back
    model = ConvexScoreMatcher(alpha=2 / 150).fit(two_bump_data())
    with pytest.warns(NonNormalisableModelWarning, match=r"right tail \(x > 2\.39.*slope 1\.11 > 0"):
        model.sample(10, n_steps=5, random_state=0)
    assert issubclass(NonNormalisableModelWarning, RuntimeWarning)
    # a normalisable model (Gaussian tails) samples without a warning
    normalisable = ConvexScoreMatcher(alpha=0.1).fit(two_bump_data())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        normalisable.sample(10, n_steps=5, random_state=0)


def test_a_field_that_nowhere_points_back_warns_in_two_dimensions():
    # without skip connection, alpha = 1.5 leaves no unit: the score is 0, the chains random-walk
    # (spread ~14 after the default steps, for data of spread 1); 1-D warned, 2-D was silent
    X = np.random.default_rng(0).normal(size=(60, 2))
    flat = ConvexScoreMatcher(alpha=1.5, skip_connection=False, n_patterns=10, random_state=0).fit(X)
    assert flat.n_neurons_ == 0
    with pytest.warns(NonNormalisableModelWarning, match="points back towards them along no"):
        flat.sample(10, n_steps=5, random_state=0)
    # fitted fields that pull the chains back (with and without units) do not warn
    for model in (ConvexScoreMatcher(alpha=0.05, n_patterns=30, random_state=0).fit(X),
                  ConvexScoreMatcher(alpha=0.3, skip_connection=False, n_patterns=30,
                                     random_state=0).fit(X)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            model.sample(10, n_steps=5, random_state=0)


def test_divergence_with_the_automatic_step_blames_the_model():
    # abs units without a skip connection: the left tail's slope is +0.0128 beyond x = -3.36 and
    # the score turns outwards past x = -42.8; chains started at -70 leave the divergence radius
    model = ConvexScoreMatcher(alpha=0.5, activation="abs", skip_connection=False).fit(two_bump_data())
    start = np.full((50, 1), -70.0)
    with pytest.warns(NonNormalisableModelWarning), pytest.raises(LangevinDivergenceError) as info:
        model.sample(50, n_steps=2000, init=start, random_state=0)
    message = str(info.value)
    assert "The automatic step already respects the stability limit" in message
    assert "not normalisable: on its left tail" in message
    assert "step_size='auto' gives" not in message  # the step that was used is the automatic one
    # an explicit step is named as such, and the model's tail is still reported
    also = r"step_size='auto' gives .* also not normalisable"
    with pytest.warns(NonNormalisableModelWarning), pytest.raises(LangevinDivergenceError, match=also):
        model.sample(50, n_steps=2000, step_size=0.5, init=start, random_state=0)


def test_chains_started_far_from_the_data_are_not_divergent():
    # Gaussian-regime fit: the automatic step contracts every chain towards the data, so chains
    # started 500 data radii away converge; they used to be reported as escaping after 10 steps
    X = np.random.default_rng(0).normal(500.0, 1.0, size=(200, 1))
    model = ConvexScoreMatcher(alpha=5.0).fit(X)
    n = 4000
    samples = model.sample(n, n_steps=1000, init=np.zeros((n, 1)), random_state=0)
    step = auto_step_size(model.networks_, model.scale_)
    expected = stationary_variance(X.var(), step)
    assert samples.mean() == pytest.approx(X.mean(), abs=4 * np.sqrt(expected / n))
    assert samples.var() == pytest.approx(expected, abs=4 * expected * np.sqrt(2.0 / n))
    # an unstable step from the same start is still caught
    with pytest.raises(LangevinDivergenceError, match="Try step_size"):
        model.sample(n, n_steps=200, step_size=5 * X.var(), init=np.zeros((n, 1)), random_state=0)


def test_explicit_step_above_the_stability_limit_warns_in_two_dimensions():
    """Gaussian regime in 2-D, s(x) = -Sigma^{-1}(x - m): the update is stable iff eps < 4 v for
    every variance v of Sigma (math notes 5). At 1.05 x 4 v_min the chains grow 1.1x per step
    and the samples' narrow variance came back 46 for the data's 0.04, with no warning."""
    rng = np.random.default_rng(0)
    X = rng.multivariate_normal([0, 0], [[1, 0], [0, 0.04]], size=200)
    model = ConvexScoreMatcher(alpha=50.0).fit(X)
    limit = 4.0 * np.linalg.eigvalsh(np.cov(X.T, bias=True)).min()
    with pytest.warns(RuntimeWarning, match=f"stability limit {limit:.4g} .* by 1.1 per step"):
        model.sample(100, n_steps=5, step_size=1.05 * limit, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.sample(100, n_steps=5, step_size=0.95 * limit, random_state=0)


def test_explicit_step_above_the_stability_limit_warns():
    # alpha = 2/n: a normalisable fit whose steepest piece has slope ~ -2000, so eps = 0.2 is
    # 100x its stability limit; the samples' variance was 2.0 for the model's 0.665, silently
    X = np.random.default_rng(1).normal(0, 1, 200)[:, None]
    model = ConvexScoreMatcher(alpha=2 / 200).fit(X)
    limit = 4.0 / -PiecewiseQuadraticDensity(model.networks_[0]).slopes.min()
    with pytest.warns(RuntimeWarning, match="stability limit"):
        model.sample(50, n_steps=20, step_size=50 * limit, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.sample(50, n_steps=20, step_size=0.5 * limit, random_state=0)
        model.sample(50, n_steps=20, random_state=0)
