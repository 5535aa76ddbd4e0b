"""Exact 1-D model density: normalisation, score, exact sampling, failure modes."""

import numpy as np
import pytest
from scipy import integrate, stats

from skconvexscore import ConvexScoreMatcher, ScoreNetwork
from skconvexscore._density import PiecewiseQuadraticDensity, check_density_available

from _builders import univariate_network


def gaussian_network(mean, var):
    return univariate_network([], [], [], -1.0 / var, mean / var)


def bimodal_network():
    """Score with slopes -4, +4, -4 and kinks at -1 and 1.5.

    Asymmetric two-bump model: modes near -2 and +2.5 with different masses.
    """
    return univariate_network([1.0, 1.0], [1.0, -1.5], [8.0, -8.0], -4.0, -8.0)


def laplace_tailed_network():
    """abs units, no skip: s = -x on [-1, 1], constant +-1 outside (Gaussian-Laplace)."""
    return univariate_network([1.0, 1.0], [1.0, -1.0], [-0.5, 0.5], 0.0, 0.0, activation="abs")


def random_network(seed=0, n_units=150):
    rng = np.random.default_rng(seed)
    return univariate_network(
        rng.normal(size=n_units), 3 * rng.normal(size=n_units), rng.normal(size=n_units), -150.0, 0.0
    )


NETWORKS = {
    "gaussian": lambda: gaussian_network(1.0, 2.0),
    "bimodal": bimodal_network,
    "laplace": laplace_tailed_network,
    "random": random_network,
}


def _mass(density, lo=-np.inf, hi=np.inf):
    pdf = lambda x: np.exp(density.log_density(x))  # noqa: E731
    points = density.breakpoints
    finite_lo = max(lo, points[0] - 30.0)
    finite_hi = min(hi, points[-1] + 30.0)
    inner = points[(points > finite_lo) & (points < finite_hi)]
    total = integrate.quad(pdf, finite_lo, finite_hi, points=inner[:100] if inner.size else None,
                           limit=1000, epsabs=1e-12)[0]
    if lo == -np.inf:
        total += integrate.quad(pdf, -np.inf, finite_lo)[0]
    if hi == np.inf:
        total += integrate.quad(pdf, finite_hi, np.inf)[0]
    return total


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_density_integrates_to_one(name):
    density = PiecewiseQuadraticDensity(NETWORKS[name]())
    assert _mass(density) == pytest.approx(1.0, abs=1e-7)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_score_is_derivative_of_log_density(name):
    network = NETWORKS[name]()
    density = PiecewiseQuadraticDensity(network)
    x = np.random.default_rng(1).uniform(-4, 4, size=400)
    h = 1e-6
    numeric = (density.log_density(x + h) - density.log_density(x - h)) / (2 * h)
    exact = network.score(x[:, None])[:, 0]
    np.testing.assert_allclose(numeric, exact, atol=1e-5 * (1 + np.abs(exact).max()))
    np.testing.assert_allclose(density.score(x), exact, atol=1e-9 * (1 + np.abs(exact).max()))


def test_gaussian_log_density_matches_scipy():
    density = PiecewiseQuadraticDensity(gaussian_network(1.0, 2.0))
    x = np.linspace(-30, 30, 61)
    np.testing.assert_allclose(density.log_density(x), stats.norm(1.0, np.sqrt(2.0)).logpdf(x), atol=1e-10)
    np.testing.assert_allclose(density.cdf(x), stats.norm(1.0, np.sqrt(2.0)).cdf(x), atol=1e-12)


def test_laplace_tail_is_exponential():
    density = PiecewiseQuadraticDensity(laplace_tailed_network())
    # s = -1 for x > 1: log p decreases with slope exactly -1
    x = np.array([2.0, 5.0, 50.0])
    np.testing.assert_allclose(np.diff(density.log_density(x)), -np.diff(x), rtol=1e-12)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_cdf_matches_quadrature(name):
    density = PiecewiseQuadraticDensity(NETWORKS[name]())
    for q in (-1.3, 0.2, 2.7):
        assert density.cdf(q) == pytest.approx(_mass(density, hi=q), abs=1e-7)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_exact_samples_follow_density(name):
    density = PiecewiseQuadraticDensity(NETWORKS[name]())
    samples = density.sample(20000, random_state=0)
    assert np.all(np.isfinite(samples))
    assert stats.kstest(samples, density.cdf).pvalue > 1e-3


def test_exact_sampling_is_reproducible():
    density = PiecewiseQuadraticDensity(bimodal_network())
    np.testing.assert_array_equal(density.sample(50, random_state=3), density.sample(50, random_state=3))


def test_nearly_coincident_kinks():
    # kinks 1e-9 apart (recovered networks shift kinks by 1e-6 x the data gap)
    network = univariate_network([1.0, 1.0, 1.0], [0.0, -1e-9, -1.0], [2.0, -2.0, 0.5], -1.0, 0.0)
    density = PiecewiseQuadraticDensity(network)
    assert _mass(density) == pytest.approx(1.0, abs=1e-7)
    assert stats.kstest(density.sample(5000, random_state=0), density.cdf).pvalue > 1e-3


def test_slopes_are_kept_whatever_the_scale_of_the_weights():
    """A steep narrow piece (two units of weight 2e11, 1e-9 apart) makes the weights' scale 4e11.
    Slopes below 1e-9 of that were set to zero on every piece: the slope -301 on (-1, 1) and the
    tails -1 vanished (near the bound such fits are common: slopes of thousands were zeroed).
    Only tails that are zero up to rounding (1e-12 of the scale) may be rounded."""
    network = univariate_network([1.0] * 4, [1.0, -1.0, -5.0, -5.0 - 1e-9],
                                 [-300.0, 300.0, 2e11, -2e11], -1.0, 0.0)
    density = PiecewiseQuadraticDensity(network)
    x = np.array([-3.0, -0.5, 0.5, 3.0, 8.0])
    np.testing.assert_allclose(density.score(x), network.score(x[:, None])[:, 0], rtol=1e-12)
    # log-density differences are integrals of the score, across kinks too
    for lo, hi in [(-0.5, 0.5), (-3.0, 0.0), (0.0, 3.0), (5.5, 8.0)]:
        rise, _ = integrate.quad(lambda t: network.score(np.array([[t]]))[0, 0], lo, hi,
                                 points=[-1.0, 1.0], epsabs=1e-12, epsrel=1e-12)
        difference = density.log_density(np.array([hi])) - density.log_density(np.array([lo]))
        assert difference[0] == pytest.approx(rise, rel=1e-9, abs=1e-9)


def test_density_far_from_zero_is_the_shifted_density():
    # the same network written around 1e6: kinks at 1e6 - 1 and 1e6 + 1.5, where
    # positions would keep ~1e-10 of their digits
    near = bimodal_network()
    far = ScoreNetwork(near.hidden_weights, near.hidden_biases, near.output_weights,
                       near.skip_weights, near.output_bias, origin=[1e6])
    d_near, d_far = PiecewiseQuadraticDensity(near), PiecewiseQuadraticDensity(far)
    x = np.linspace(-5.0, 5.0, 41)
    np.testing.assert_allclose(d_far.breakpoints, d_near.breakpoints + 1e6)
    np.testing.assert_allclose(d_far.log_density(x + 1e6), d_near.log_density(x), atol=1e-12)
    np.testing.assert_allclose(d_far.cdf(x + 1e6), d_near.cdf(x), atol=1e-12)
    np.testing.assert_allclose(d_far.score(x + 1e6), d_near.score(x), atol=1e-12)
    np.testing.assert_allclose(d_far.sample(500, random_state=0) - 1e6,
                               d_near.sample(500, random_state=0), atol=1e-9)


@pytest.mark.parametrize(
    "network, side",
    [
        (univariate_network([1.0], [0.0], [2.0], -1.0, 0.0), "right"),  # slope +1 for x > 0
        (univariate_network([1.0], [0.0], [-1.0], 0.0, 0.0), "left"),  # s = 0 for x < 0: flat
        (univariate_network([], [], [], 0.0, 1.0), "right"),  # constant score, pushes right
    ],
)
def test_not_normalisable_is_detected(network, side):
    with pytest.raises(ValueError, match=f"not normalisable: on its {side} tail"):
        PiecewiseQuadraticDensity(network)


def test_a_zero_score_is_named_and_the_advice_is_to_lower_alpha():
    """No unit left (alpha >= 1 without skip connection): the message says the score is zero
    and to lower alpha, not that a tail "does not point back" and to raise it."""
    with pytest.raises(ValueError, match="identically zero.*lower alpha"):
        PiecewiseQuadraticDensity(univariate_network([], [], [], 0.0, 0.0))


def test_multivariate_has_no_density():
    network = ScoreNetwork(np.ones((1, 2)), np.zeros(1), np.ones((1, 2)), -np.eye(2), np.zeros(2))
    with pytest.raises(ValueError, match="only for univariate data"):
        check_density_available(network)
    with pytest.raises(ValueError, match="not the gradient"):
        PiecewiseQuadraticDensity(network)


# ----------------------------------------------------------------------------------------------
# estimator wiring
# ----------------------------------------------------------------------------------------------


def test_score_samples_gaussian_regime():
    X = np.random.default_rng(0).normal(2.0, 1.5, size=(150, 1))
    model = ConvexScoreMatcher(alpha=1.0).fit(X)  # large alpha: the Gaussian score
    query = np.linspace(-3, 7, 11)[:, None]
    expected = stats.norm(X.mean(), X.std()).logpdf(query[:, 0])
    np.testing.assert_allclose(model.score_samples(query), expected, atol=1e-8)


def test_score_samples_and_exact_sampling_non_gaussian_fit():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(-2, 0.5, 60), rng.normal(2, 0.5, 40)])[:, None]
    model = ConvexScoreMatcher(alpha=0.05).fit(X)  # bimodal fit, both tails decay
    density = PiecewiseQuadraticDensity(model.networks_[0])
    assert _mass(density) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(model.score_samples(X), density.log_density(X[:, 0]))
    samples = model.sample(4000, method="exact", random_state=0)
    assert samples.shape == (4000, 1)
    assert stats.kstest(samples[:, 0], density.cdf).pvalue > 1e-3


def test_score_samples_multivariate_raises():
    X = np.random.default_rng(0).normal(size=(40, 2))
    model = ConvexScoreMatcher(alpha=2.0, n_patterns=10, random_state=0).fit(X)
    assert not hasattr(model, "score_samples")  # no log-density in d > 1
    with pytest.raises(ValueError, match="only for univariate data"):
        model.sample(5, method="exact")


def test_score_samples_small_alpha_fit_not_normalisable():
    # at small alpha the SM fit's left tail slope (the skip weight) is positive:
    # score matching only sees the data, so the model need not be normalisable
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(-2, 0.5, 60), rng.normal(2, 0.5, 40)])[:, None]
    model = ConvexScoreMatcher(alpha=0.02).fit(X)
    with pytest.raises(ValueError, match="not normalisable"):
        model.score_samples(X)
