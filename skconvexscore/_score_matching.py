"""Score matching with a two-layer network, solved as one convex program."""

import time

from sklearn.base import _fit_context
from sklearn.utils import check_random_state

from ._base import _BaseConvexScore
from ._programs import standardize

__all__ = ["ConvexScoreMatcher"]


class ConvexScoreMatcher(_BaseConvexScore):
    r"""Two-layer ReLU score network fitted by score matching, globally.

    Minimises Hyvarinen's score-matching objective with weight decay,

    .. math::

        J_{SM} = \frac1n \sum_{i=1}^n \Big(\tfrac12 \|s(x_i)\|^2
                 + \operatorname{tr}\nabla s(x_i)\Big)
                 + \frac{\alpha}{2} \sum_j \big(\|w_j\|^2 + \|a_j\|^2\big),

    over networks ``s(x) = sum_j phi(w_j . x + b_j) a_j + V x + c`` in which
    every hidden unit feeds one output coordinate. Zhang and Pilanci show this
    is a convex program: in 1-D it is solved exactly (a kink at every data
    point); for ``d >= 2`` it is the global optimum over ``n_patterns`` sampled
    activation patterns (one cone-constrained group lasso per output).

    Read more in the user guide (``docs/user_guide.md``).

    Parameters
    ----------
    alpha : float, default=1.0
        Weight decay. Score matching is unbounded below for small ``alpha``:
        in 1-D exactly when ``alpha < 1/n`` (``2/n`` for abs with skip
        connection; ties raise the bound), in d dimensions below a
        data-dependent bound of roughly ``d/n``. ``fit`` raises a ValueError
        there. Above ``alpha_G`` (1-D, closed form) the optimum is the Gaussian
        score ``-(x - mean) / var``.
    activation : {"relu", "abs"}, default="relu"
        Hidden activation ``phi``.
    skip_connection : bool, default=True
        Add the unpenalised linear term ``V x + c``.
    n_patterns : int, default=100
        Number of gates sampled to build activation patterns when
        ``n_features >= 2`` (duplicates and empty patterns are dropped). More
        patterns never raise the optimum. Ignored in 1-D (exact).
    solver : {"auto", "cvxpy", "univariate", "first_order"}, default="auto"
        ``"cvxpy"``: interior point (Clarabel), the reference. ``"univariate"``:
        the exact structured 1-D solver. ``"first_order"``: ADMM in
        PyTorch for ``d >= 2`` (CPU or GPU; cost per iteration independent of
        ``n_samples``). ``"auto"``: the univariate solver in 1-D; in d >= 2
        cvxpy while ``n_samples * n_patterns < 50,000`` and the first-order
        solver above, or whenever ``solver_options`` names a ``device`` or
        ``dtype``.
    solver_options : dict, default=None
        Passed to the backend (e.g. ``{"solver": "SCS"}`` for cvxpy,
        ``{"device": "cuda"}`` for first order).
    tol : float, default=1e-6
        Certified optimality tolerance of the structured solvers (relative
        KKT residual or duality gap). The univariate solver uses
        ``min(tol, 1e-8)``, which costs a few cheap iterations and lets it
        prove inactive kinks exactly zero. The cvxpy path uses Clarabel's own
        tolerances.
    max_iter : int, default=None
        Iteration limit of the structured solvers (None: their default).
    n_jobs : int, default=None
        Parallel jobs over the independent per-output programs (joblib).
    random_state : int, RandomState instance or None, default=None
        Seeds the gate sampling (``d >= 2``).
    verbose : int, default=0

    Attributes
    ----------
    objective_ : float
        Optimal value of the convex program, ``J_SM`` in the data's units.
    networks_ : list of ScoreNetwork
        The recovered network (one element), NumPy weights.
    hidden_weights_ : ndarray of shape (n_neurons_, n_features_in_)
    hidden_biases_ : ndarray of shape (n_neurons_,)
        In the data's coordinates. Far from the origin the kinks are no
        longer resolved to the gaps between points by these biases (a kink
        sits ``1e-9`` of its gap beside its point, which ``|location_|``
        rounds away): near the well-posedness bound, where slopes are steep,
        already at ``|location_|`` ~100 times the data's scale (1-D, n = 1000,
        ``alpha = 1.05`` x the bound: the weights' objective off by 2e-4
        relative), at 1.5 x the bound from ~1e4 times (n = 100).
        ``predict``, ``score``, ``to_torch`` and ``networks_`` (written around
        ``location_``) are exact there.
    output_weights_ : ndarray of shape (n_neurons_, n_features_in_)
        One non-zero entry per row: the output coordinate the unit feeds.
    skip_weights_ : ndarray of shape (n_features_in_, n_features_in_)
    output_bias_ : ndarray of shape (n_features_in_,)
    n_neurons_ : int
        Hidden units with a non-zero weight.
    n_patterns_ : int
        Distinct activation patterns in the program (``d >= 2``), or the
        number of kink candidates (1-D).
    solver_ : str
        The backend that ran.
    solver_status_ : str
    n_iter_ : int
    duality_gap_ : float
        Certified bound on how far the fitted network's objective is above the
        optimum, in the data's units like ``objective_``: the structured
        solvers' duality gap plus what recovering the network cost (nan for
        cvxpy).
    fit_time_ : float
        Seconds spent building and solving the program.
    location_ : ndarray of shape (n_features_in_,)
        Mean of the training data.
    scale_ : float
        Root-mean-square coordinate deviation of the training data.
    X_fit_ : ndarray of shape (n_samples, n_features_in_)
        Training data (Langevin initialisation).
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Defined only when ``X`` has string feature names.

    See Also
    --------
    ConvexDenoisingScoreMatcher : Denoising score matching (always bounded).

    References
    ----------
    .. [1] F. Zhang and M. Pilanci, "Analyzing Neural Network-Based Generative
       Diffusion Models through Convex Optimization", arXiv:2402.01965.
    .. [2] A. Hyvarinen, "Estimation of non-normalized statistical models by
       score matching", JMLR 6, 2005.

    Examples
    --------
    >>> import numpy as np
    >>> from skconvexscore import ConvexScoreMatcher
    >>> X = np.random.default_rng(0).normal(size=(200, 1))
    >>> model = ConvexScoreMatcher(alpha=1.0).fit(X)
    >>> bool(np.allclose(model.predict(X), -(X - X.mean()) / X.var()))
    True
    """

    def __init__(
        self,
        *,
        alpha=1.0,
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
        """Fit the score network by solving the score-matching program.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : None
            Ignored.

        Returns
        -------
        self : ConvexScoreMatcher
            The fitted estimator.

        Raises
        ------
        ValueError
            If ``alpha`` is below the well-posedness bound (the program is
            unbounded below) or the solver cannot certify a solution.
        """
        X = self._validate_training_data(X)
        start = time.perf_counter()
        Z, standardization = standardize(X)
        program = self._build_program("sm", Z, None, check_random_state(self.random_state))
        network, objective, info = self._solve_program(program, standardization)
        self.fit_time_ = time.perf_counter() - start

        self.networks_ = [network]
        self._store_network(network)
        self.objective_ = float(objective)
        self.n_patterns_ = int(getattr(program, "n_patterns", program.n))
        self.solver_ = info["solver"]
        self.solver_status_ = info["status"]
        self.n_iter_ = info["n_iter"]
        self.duality_gap_ = info["duality_gap"]
        self.location_ = standardization.mean
        self.scale_ = standardization.scale
        self.X_fit_ = X
        return self
