"""Denoising score matching with a two-layer network, one convex program per noise level."""

import time
from numbers import Integral, Real

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, InvalidParameterError
from sklearn.utils.validation import check_is_fitted

from ._base import _BaseConvexScore
from ._programs import standardize

__all__ = ["ConvexDenoisingScoreMatcher"]

# Two noise levels closer than this (relatively) are the same level.
_LEVEL_RTOL = 1e-6


def _draw_noise(random_state, n_samples, n_features, n_noise_samples):
    """The random numbers of a fit: the standard normal noise and the gate seed.

    Drawn once per fit, before and independently of the noise levels: first
    one integer seeding the gate sampling (``d >= 2``), then ``eps`` of shape
    ``(n_noise_samples, n_samples, n_features)``. Every level uses the same
    ``eps`` (common random numbers, ``x~ = x + sigma eps``) and the same gate
    seed, so a level's program does not depend on which other levels are
    fitted. Copy ``k`` of ``eps`` does not depend on ``n_noise_samples``
    either: a larger ``K`` adds copies to the same noisy sample.

    Parameters
    ----------
    random_state : int, RandomState instance or None
    n_samples, n_features, n_noise_samples : int

    Returns
    -------
    eps : ndarray of shape (n_noise_samples, n_samples, n_features)
    pattern_seed : int
    """
    rng = check_random_state(random_state)
    pattern_seed = int(rng.randint(np.iinfo(np.int32).max))
    eps = rng.standard_normal((int(n_noise_samples), n_samples, n_features))
    return eps, pattern_seed


def _noisy_sample(X, eps, noise_level):
    """Noisy points ``x + sigma eps`` and targets ``-eps / sigma``, copy-major.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    eps : ndarray of shape (n_noise_samples, n_samples, n_features)
    noise_level : float

    Returns
    -------
    X_noisy, targets : ndarrays of shape (n_noise_samples * n_samples, n_features)
        Row ``k * n_samples + i`` is copy ``k`` of point ``i``.
    """
    d = X.shape[1]
    X_noisy = (X[None, :, :] + noise_level * eps).reshape(-1, d)
    targets = (-eps / noise_level).reshape(-1, d)
    return X_noisy, targets


def _check_noise_levels(noise_level):
    """The requested levels as a float array in decreasing (annealing) order.

    Raises scikit-learn's InvalidParameterError (a ValueError), as the other
    parameters' checks do.
    """
    levels = np.asarray(noise_level, dtype=np.float64)
    if levels.ndim > 1 or levels.size == 0:
        raise InvalidParameterError(
            "noise_level must be a positive float or a non-empty 1-D sequence of positive "
            f"floats, got {noise_level!r}."
        )
    levels = levels.reshape(-1)
    if not np.all(np.isfinite(levels)) or np.any(levels <= 0):
        raise InvalidParameterError(f"Every noise level must be finite and > 0, got {levels.tolist()}.")
    levels = np.sort(levels)[::-1].copy()
    if np.any(np.isclose(levels[1:], levels[:-1], rtol=_LEVEL_RTOL, atol=0.0)):
        raise InvalidParameterError(f"noise_level contains the same level twice: {levels.tolist()}.")
    return levels


class ConvexDenoisingScoreMatcher(_BaseConvexScore):
    r"""Two-layer ReLU score network fitted by denoising score matching, globally.

    For each noise level ``sigma``, draws ``K = n_noise_samples`` noisy copies
    ``x~_ik = x_i + sigma eps_ik`` (``eps ~ N(0, I)``) of every training point
    and minimises the denoising score-matching objective with weight decay,

    .. math::

        J_{DSM} = \frac{1}{nK} \sum_{i,k} \tfrac12
                  \Big\| s(\tilde x_{ik}) + \frac{\epsilon_{ik}}{\sigma} \Big\|^2
                  + \frac{\alpha}{2} \sum_j \big(\|w_j\|^2 + \|a_j\|^2\big),

    over networks ``s(x) = sum_j phi(w_j . x + b_j) a_j + V x + c`` in which
    every hidden unit feeds one output coordinate. Its minimiser estimates the
    score of the data smoothed by ``N(0, sigma^2 I)``. Zhang and Pilanci show
    this is a convex program (weight-decayed least squares on the noisy
    points): in 1-D it is solved exactly (a kink at every noisy point); for
    ``d >= 2`` it is the global optimum over ``n_patterns`` activation
    patterns sampled on the noisy points (one cone-constrained group lasso per
    output). Unlike score matching it is bounded below for every ``alpha``.

    A sequence of noise levels fits one independent program per level: a
    noise-conditional model for annealed Langevin sampling (``sample`` runs
    the levels from the largest to the smallest).

    Read more in ``docs/denoising.md``.

    Parameters
    ----------
    alpha : float, default=0.01
        Weight decay (mean normalisation, invariant under rescaling the
        data). Small ``alpha`` memorises the training set: the score of the
        mixture ``(1/n) sum_i N(x_i, sigma^2 I)``, slope ``-1/sigma^2`` near
        each point. Large ``alpha`` gives the least-squares linear fit of the
        targets (a Gaussian score). Tune it with ``score`` (e.g.
        GridSearchCV).
    noise_level : float or sequence of float, default=0.1
        The noise standard deviation ``sigma``, in the units of ``X``
        (standardise ``X`` first, e.g. with StandardScaler, so that 0.1 means
        a tenth of a standard deviation). A sequence fits one program per
        level (levels must be distinct).
    n_noise_samples : int, default=10
        Noisy copies ``K`` of every point; the programs have ``K n`` points.
    activation : {"relu", "abs"}, default="relu"
        Hidden activation ``phi``.
    skip_connection : bool, default=True
        Add the unpenalised linear term ``V x + c``.
    n_patterns : int, default=100
        Number of gates sampled to build activation patterns on the noisy
        points when ``n_features >= 2``. Ignored in 1-D (exact).
    solver : {"auto", "cvxpy", "univariate", "first_order"}, default="auto"
        ``"cvxpy"``: interior point (Clarabel), the reference.
        ``"univariate"``: the exact structured 1-D solver. ``"first_order"``: ADMM in
        PyTorch for ``d >= 2`` (CPU or GPU; cost per iteration independent of
        ``n_samples``). ``"auto"``: the univariate solver in 1-D; in d >= 2
        cvxpy while ``n_samples * n_patterns < 50,000`` and the first-order
        solver above, or whenever ``solver_options`` names a ``device`` or
        ``dtype``.
    solver_options : dict, default=None
        Passed to the backend.
    tol : float, default=1e-6
        Certified optimality tolerance of the structured solvers (relative
        KKT residual or duality gap). The univariate solver uses
        ``min(tol, 1e-8)``, which costs a few cheap iterations and lets it
        prove inactive kinks exactly zero. The cvxpy path uses Clarabel's own
        tolerances.
    max_iter : int, default=None
        Iteration limit of the structured solvers (None: their default).
    n_jobs : int, default=None
        Parallel jobs (joblib) over the independent programs: the noise
        levels, and the output coordinates within each level.
    random_state : int, RandomState instance or None, default=None
        Seeds the noise and the gate sampling. One draw per fit, shared by
        all levels (see Notes): with an int, fitting several levels gives at
        each level exactly the fit of that level alone.
    verbose : int, default=0

    Attributes
    ----------
    noise_levels_ : ndarray of shape (n_levels,)
        The fitted levels in decreasing order (the annealing order).
    networks_ : list of ScoreNetwork
        The recovered network of every level, aligned with ``noise_levels_``
        (the last one is the smallest level).
    objective_ : float or ndarray of shape (n_levels,)
        Optimal value ``J_DSM`` of the convex program in the data's units: a
        float when one level is fitted, else one value per level aligned with
        ``noise_levels_``.
    hidden_weights_ : ndarray of shape (n_neurons_, n_features_in_)
        Weights of the network of the smallest level (likewise the next four).
    hidden_biases_ : ndarray of shape (n_neurons_,)
        In the data's coordinates, which far from the origin do not resolve
        the kinks (see :class:`ConvexScoreMatcher`); ``predict``, ``score``,
        ``to_torch`` and ``networks_`` (around ``location_``) do.
    output_weights_ : ndarray of shape (n_neurons_, n_features_in_)
        One non-zero entry per row: the output coordinate the unit feeds.
    skip_weights_ : ndarray of shape (n_features_in_, n_features_in_)
    output_bias_ : ndarray of shape (n_features_in_,)
    n_neurons_ : int
        Hidden units with a non-zero weight (smallest level).
    n_patterns_ : int
        Distinct activation patterns (``d >= 2``) or kink candidates
        (1-D, ``K n``) of the smallest level's program.
    solver_ : str
        The backend that ran.
    solver_status_ : str
    n_iter_ : int
        Largest iteration count over the levels.
    duality_gap_ : float or ndarray of shape (n_levels,)
        Certified bound on how far the fitted network's objective is above the
        optimum, in the data's units and shaped like ``objective_``: the
        structured solvers' duality gap plus what recovering the network cost
        (nan for cvxpy).
    fit_time_ : float
        Seconds spent drawing the noise, building and solving the programs.
    location_ : ndarray of shape (n_features_in_,)
        Mean of the (clean) training data.
    scale_ : float
        Root-mean-square coordinate deviation of the clean training data.
        All levels are solved in the same standardised coordinates.
    X_fit_ : ndarray of shape (n_samples, n_features_in_)
        Clean training data (Langevin initialisation).
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Defined only when ``X`` has string feature names.

    See Also
    --------
    ConvexScoreMatcher : Score matching on the clean data (no noise level,
        but well posed only for ``alpha`` above a bound of about ``d/n``).

    Notes
    -----
    Randomness. ``fit`` draws, from ``random_state`` and in this order, one
    integer seeding the gate sampling and the standard normal array
    ``eps`` of shape ``(n_noise_samples, n_samples, n_features)``. Level
    ``sigma`` uses the noisy points ``x_i + sigma eps_ki`` and the gates drawn
    from that seed: the programs of the levels share their random numbers
    (common random numbers), so each level's fit is what fitting that level
    alone gives, and fits at neighbouring levels (or in a grid search over
    ``noise_level``) differ only through ``sigma``.

    Coordinates. The programs are solved in the standardised coordinates of
    the clean data, ``z = (x - location_) / scale_``, where the level is
    ``sigma / scale_`` and the targets are ``-eps scale_ / sigma``; the
    objective in the data's units is the standardised one divided by
    ``scale_**2``.

    References
    ----------
    .. [1] F. Zhang and M. Pilanci, "Analyzing Neural Network-Based Generative
       Diffusion Models through Convex Optimization", arXiv:2402.01965.
    .. [2] P. Vincent, "A connection between score matching and denoising
       autoencoders", Neural Computation 23(7), 2011.
    .. [3] Y. Song and S. Ermon, "Generative modeling by estimating gradients
       of the data distribution", NeurIPS 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from skconvexscore import ConvexDenoisingScoreMatcher
    >>> X = np.random.default_rng(0).normal(size=(200, 1))
    >>> model = ConvexDenoisingScoreMatcher(noise_level=[1.0, 0.3], random_state=0).fit(X)
    >>> model.noise_levels_
    array([1. , 0.3])
    >>> model.predict(X[:3], noise_level=1.0).shape
    (3, 1)
    """

    _parameter_constraints: dict = {
        **_BaseConvexScore._parameter_constraints,
        "noise_level": [Interval(Real, 0, None, closed="neither"), "array-like"],
        "n_noise_samples": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        *,
        alpha=0.01,
        noise_level=0.1,
        n_noise_samples=10,
        activation="relu",
        skip_connection=True,
        n_patterns=100,
        solver="auto",
        solver_options=None,
        tol=1e-6,
        max_iter=None,
        n_jobs=None,
        random_state=None,
        verbose=0,
    ):
        self.alpha = alpha
        self.noise_level = noise_level
        self.n_noise_samples = n_noise_samples
        self.activation = activation
        self.skip_connection = skip_connection
        self.n_patterns = n_patterns
        self.solver = solver
        self.solver_options = solver_options
        self.tol = tol
        self.max_iter = max_iter
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit one score network per noise level by solving the DSM programs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : None
            Ignored.

        Returns
        -------
        self : ConvexDenoisingScoreMatcher
            The fitted estimator.

        Raises
        ------
        ValueError
            If ``noise_level`` is not a positive float or a sequence of
            distinct positive floats, or the solver cannot certify a
            solution.
        """
        X = self._validate_training_data(X)
        levels = _check_noise_levels(self.noise_level)
        start = time.perf_counter()
        Z, standardization = standardize(X)
        n, d = Z.shape
        eps, pattern_seed = _draw_noise(self.random_state, n, d, self.n_noise_samples)

        if len(levels) == 1:
            results = [self._fit_level(Z, eps, float(levels[0]), standardization, pattern_seed)]
        else:
            results = Parallel(n_jobs=self.n_jobs)(
                delayed(self._fit_level)(Z, eps, float(sigma), standardization, pattern_seed)
                for sigma in levels
            )
        self.fit_time_ = time.perf_counter() - start

        networks = [r[0] for r in results]
        objectives = np.array([r[1] for r in results], dtype=np.float64)
        infos = [r[2] for r in results]
        gaps = np.array([info["duality_gap"] for info in infos], dtype=np.float64)
        single = len(levels) == 1

        self.noise_levels_ = levels
        self.networks_ = networks
        self._store_network(networks[-1])
        self.objective_ = float(objectives[0]) if single else objectives
        self.duality_gap_ = float(gaps[0]) if single else gaps
        self.n_patterns_ = int(results[-1][3])
        self.solver_ = _join({info["solver"] for info in infos})
        self.solver_status_ = _join({info["status"] for info in infos})
        self.n_iter_ = int(max(info["n_iter"] for info in infos))
        self.location_ = standardization.mean
        self.scale_ = standardization.scale
        self.X_fit_ = X
        return self

    def _fit_level(self, Z, eps, noise_level, standardization, pattern_seed):
        """Build and solve the program of one level (standardised coordinates).

        With ``z = (x - m) / s``: ``z~ = z + (sigma / s) eps`` and, since
        ``s_x(x) = s_z(z) / s``, the residual ``s_x(x~) + eps / sigma`` is
        ``(s_z(z~) + s eps / sigma) / s``: the targets in ``z`` are
        ``-eps s / sigma`` (level ``sigma / s``) and ``J_x = J_z / s**2``.
        """
        scale = standardization.scale
        noisy, targets = _noisy_sample(Z, eps, noise_level / scale)
        rng = np.random.RandomState(pattern_seed)
        program = self._build_program("dsm", noisy, targets, rng)
        if self.verbose:
            print(f"[ConvexDenoisingScoreMatcher] noise level {noise_level:.4g}: "
                  f"{noisy.shape[0]} noisy points")
        network, objective, info = self._solve_program(program, standardization)
        n_patterns = int(getattr(program, "n_patterns", program.n))
        return network, float(objective), info, n_patterns

    # ------------------------------------------------------------------
    # prediction at a noise level
    # ------------------------------------------------------------------

    def _level_index(self, noise_level):
        """Index in ``noise_levels_`` of a fitted level (relative tolerance 1e-6)."""
        levels = self.noise_levels_
        if isinstance(noise_level, (bool, np.bool_)) or not isinstance(noise_level, Real):
            # float() would take True as 1.0 and "0.3" as 0.3
            raise TypeError(
                f"noise_level must be a number, one of noise_levels_ {levels.tolist()}; got "
                f"{noise_level!r}."
            )
        value = float(noise_level)
        match = np.isclose(levels, value, rtol=_LEVEL_RTOL, atol=0.0) if np.isfinite(value) else []
        if not np.any(match):
            raise ValueError(
                f"noise_level={noise_level!r} was not fitted; the fitted levels are "
                f"{levels.tolist()} (noise_levels_). Refit with it in noise_level to use it."
            )
        return int(np.argmin(np.where(match, np.abs(levels - value), np.inf)))

    def _network_for(self, noise_level=None):
        """The network of ``noise_level`` (default: the smallest fitted level)."""
        if noise_level is None:
            return self.networks_[-1]
        return self.networks_[self._level_index(noise_level)]

    def predict(self, X, *, noise_level=None):
        """The score ``grad_x log p_sigma(x)`` of the fitted model at a noise level.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        noise_level : float, default=None
            One of ``noise_levels_``; None selects the smallest.

        Returns
        -------
        score : ndarray of shape (n_samples, n_features)

        Raises
        ------
        ValueError
            If ``noise_level`` was not fitted (the message lists the fitted
            levels).
        """
        X = self._validate_query(X)
        return self._network_for(noise_level).score(X)

    def to_torch(self, dtype=None, device=None, *, noise_level=None):
        """The recovered network of a noise level as a :class:`torch.nn.Module`.

        Parameters
        ----------
        dtype : torch.dtype, default=torch.float64
        device : str or torch.device, default=None (CPU)
        noise_level : float, default=None
            One of ``noise_levels_``; None selects the smallest.

        Returns
        -------
        module : torch.nn.Module
            Maps a tensor of shape (n, d) to the score, shape (n, d).
        """
        check_is_fitted(self)
        return self._network_for(noise_level).to_torch(dtype=dtype, device=device)


def _join(values):
    return values.pop() if len(values) == 1 else ",".join(sorted(values))
