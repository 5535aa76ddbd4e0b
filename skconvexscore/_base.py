"""Machinery shared by the two estimators: validation, programs, prediction."""

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, validate_data

from ._network import recover_arrangement, recover_univariate
from ._programs import (
    ArrangementProgram,
    SolverError,
    UnboundedProgramError,
    UnivariateProgram,
    arrangement_alpha_hint,
    sample_patterns,
)
from ._solvers import SOLVERS, solve_arrangement, solve_univariate

__all__ = ["_BaseConvexScore"]


class _BaseConvexScore(BaseEstimator):
    """Base class: a two-layer score network fitted as convex programs.

    Subclasses build the programs (score matching or denoising) and call
    :meth:`_solve_program`; everything downstream of the recovered
    :class:`~skconvexscore._network.ScoreNetwork` lives here.
    """

    _parameter_constraints: dict = {
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "activation": [StrOptions({"relu", "abs"})],
        "skip_connection": ["boolean"],
        "n_patterns": [Interval(Integral, 1, None, closed="left")],
        "solver": [StrOptions(set(SOLVERS))],
        "solver_options": [dict, None],
        "tol": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left"), None],
        "n_jobs": [Integral, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    # ------------------------------------------------------------------
    # fitting helpers
    # ------------------------------------------------------------------

    def _validate_training_data(self, X):
        X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2)
        return np.asarray(X, dtype=np.float64)

    def _validate_query(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        return np.asarray(X, dtype=np.float64)

    def _solve_program(self, program, standardization):
        """Solve ``program`` and return ``(network, objective, solver_info)``.

        ``objective`` is in the user's coordinates (``J_z / scale**2``).
        Unbounded programs are reported as a ValueError naming the bound.
        """
        settings = {
            "tol": self.tol,
            "max_iter": self.max_iter,
            "solver_options": self.solver_options,
            "verbose": bool(self.verbose),
        }
        if isinstance(program, UnivariateProgram):
            bound = program.well_posedness_bound()
            if program.alpha < bound:
                raise ValueError(_univariate_unbounded_message(program, bound, self.activation,
                                                               self.skip_connection))
            solution, backend = solve_univariate(program, self.solver, **settings)
            network = recover_univariate(
                program, solution.coef, solution.slope, solution.intercept, standardization
            )
            value = _check_reproduces(program, network, solution.objective, standardization,
                                      backend)
            # the 1-D solver's gap is relative to value_unit + |value|
            gap = solution.duality_gap * (program.value_unit() + abs(solution.objective))
            info = {
                "solver": backend,
                "status": solution.status,
                "n_iter": int(solution.n_iter),
                "duality_gap": _network_gap(gap, value, solution.objective, standardization),
            }
            return network, solution.objective / standardization.scale**2, info

        if program.objective == "sm" and program.skip_connection:
            _check_full_rank(program.Z, standardization)
        try:
            solutions, backend = solve_arrangement(program, self.solver, n_jobs=self.n_jobs, **settings)
        except UnboundedProgramError as exc:
            hint = arrangement_alpha_hint(program.n, program.d)
            raise ValueError(
                f"Score matching with alpha={program.alpha:.4g} is unbounded below on these data "
                f"({exc}). A hidden unit whose hyperplane runs along a facet of the data's convex "
                f"hull activates d points at value ~0 and gains Jacobian trace at no cost in the "
                f"fit; the program is bounded only for alpha above a data-dependent bound of "
                f"roughly d/n = {hint:.4g}. Increase alpha, or use ConvexDenoisingScoreMatcher, "
                f"which is always bounded."
            ) from exc
        network = recover_arrangement(program, solutions, standardization)
        objective = sum(s.objective for s in solutions)
        value = _check_reproduces(program, network, objective, standardization, backend)
        statuses = {s.status for s in solutions}
        info = {
            "solver": backend,
            "status": statuses.pop() if len(statuses) == 1 else ",".join(sorted(statuses)),
            "n_iter": int(max(s.n_iter for s in solutions)),
            "duality_gap": _network_gap(sum(s.duality_gap for s in solutions), value, objective,
                                        standardization),
        }
        return network, objective / standardization.scale**2, info

    def _build_program(self, objective, Z, targets, rng):
        """The program for standardised points ``Z`` (DSM: noisy points, targets)."""
        if Z.shape[1] == 1:
            order = np.argsort(Z[:, 0], kind="stable")
            return UnivariateProgram(
                objective,
                Z[order, 0],
                float(self.alpha),
                self.activation,
                bool(self.skip_connection),
                None if targets is None else targets[order, 0],
            )
        masks, gates = sample_patterns(Z, self.n_patterns, self.activation, rng,
                                       keep_full=not self.skip_connection)
        return ArrangementProgram(
            objective, Z, masks, gates, float(self.alpha), self.activation,
            bool(self.skip_connection), targets,
        )

    def _store_network(self, network):
        """Expose the weights of ``network`` as fitted attributes, in the user's coordinates.

        ``networks_`` keep their weights around the data's mean, where they
        keep their digits; the attributes are ``A^T phi(W x + b) + V x + c``.
        """
        network = network.recentred(0.0)
        self.hidden_weights_ = network.hidden_weights
        self.hidden_biases_ = network.hidden_biases
        self.output_weights_ = network.output_weights
        self.skip_weights_ = network.skip_weights
        self.output_bias_ = network.output_bias
        self.n_neurons_ = int(network.n_units)

    # ------------------------------------------------------------------
    # prediction
    # ------------------------------------------------------------------

    def _network_for(self, noise_level=None):
        return self.networks_[0]

    def predict(self, X):
        """The score ``grad_x log p(x)`` of the fitted model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        score : ndarray of shape (n_samples, n_features)
        """
        X = self._validate_query(X)
        return self._network_for().score(X)

    def score(self, X, y=None):
        r"""Held-out Hyvarinen criterion (higher is better).

        .. math::

            -\frac1n \sum_i \Big(\tfrac12 \|s(x_i)\|^2 + \operatorname{tr} \nabla s(x_i)\Big)

        Up to a constant that does not depend on the model, this is minus the
        Fisher divergence between the model and the law of ``X``; it needs no
        density and is comparable across ``alpha``, noise levels and the two
        estimators, so GridSearchCV can select them directly.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : None
            Ignored.

        Returns
        -------
        score : float
        """
        X = self._validate_query(X)
        return -float(np.mean(self._network_for().hyvarinen_terms(X)))

    def to_torch(self, dtype=None, device=None):
        """The recovered two-layer network as a :class:`torch.nn.Module`.

        Parameters
        ----------
        dtype : torch.dtype, str or numpy dtype, default=None (float64)
            float32 or float64, on any device.
        device : str or torch.device, default=None (CPU)

        Returns
        -------
        module : torch.nn.Module
            Maps a tensor of shape (n, d) to the score, shape (n, d).
        """
        check_is_fitted(self)
        return self._network_for().to_torch(dtype=dtype, device=device)

    # --- sampling ---

    def sample(self, n_samples=1, *, n_steps=1000, step_size="auto", init="data", device="cpu",
               dtype=None, random_state=None, progress=False, method="langevin"):
        r"""Draw samples from the fitted model by Langevin dynamics (or exactly in 1-D).

        ``method="langevin"`` runs ``n_samples`` independent chains of the
        unadjusted Langevin update of the paper,

        .. math::

            x \leftarrow x + \frac{\epsilon}{2} s(x) + \sqrt{\epsilon}\, z,
            \qquad z \sim N(0, I),

        for ``n_steps`` steps and returns their final states. A model fitted at
        several noise levels (``noise_levels_``, largest first) runs annealed
        Langevin (Song & Ermon, 2019): ``n_steps`` steps at each level ``i``
        with its own network and step ``\epsilon \sigma_i^2 / \sigma_L^2``.
        On a Gaussian score ``-(x - m)/v`` the chains are stable iff
        ``\epsilon < 4v`` and their stationary law is
        ``N(m, v / (1 - \epsilon / (4v)))``: the unadjusted update inflates
        the variance by ``O(\epsilon)``.

        ``method="exact"`` (1-D only) draws exact samples from the model's
        normalised piecewise-Gaussian density (see :meth:`score_samples`);
        ``n_steps``, ``step_size``, ``init``, ``device``, ``dtype`` and
        ``progress`` are then unused.

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples (chains).
        n_steps : int, default=1000
            Langevin steps (per noise level).
        step_size : float or "auto", default="auto"
            ``epsilon`` (of the smallest noise level). ``"auto"`` gives
            ``4 a / ((1 + a) max(L, 1/scale_^2))`` with ``a = 0.05`` and ``L``
            the Lipschitz bound of the score (exact in 1-D): a 5 % variance
            bias on a Gaussian score, far inside the stability limit ``4/L``.
            Annealed: the largest base step for which every level obeys this
            rule for its own network, with the floor ``1/scale_^2`` widened
            to ``1/(scale_^2 + sigma_i^2 - sigma_L^2)`` at level ``i`` (its
            law is that much wider); see
            :func:`~skconvexscore._langevin.auto_step_size`.
        init : {"data", "gaussian"} or array-like of shape (n_samples, n_features), default="data"
            Starting points. ``"data"``: training points drawn with
            replacement plus Gaussian noise (standard deviation the largest
            fitted noise level for DSM, ``sqrt(step_size)`` for SM).
            ``"gaussian"``: ``N(location_, scale_^2 I)``.
        device : {"cpu", "cuda", "cuda:N", "auto"} or torch.device, default="cpu"
            Where the chains run; ``"auto"`` picks CUDA when available.
        dtype : torch.dtype or str, default=None
            float64 on the CPU and float32 on a GPU by default.
        random_state : int, RandomState instance or None, default=None
            Seeds the initialisation and the Langevin noise: the same seed
            gives the same samples on the same device.
        progress : bool, default=False
            Show a tqdm progress bar.
        method : {"langevin", "exact"}, default="langevin"

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
            Samples, float64.

        Raises
        ------
        LangevinDivergenceError
            (a RuntimeError) if chains become non-finite or escape far beyond
            the data; the message names the step size to try.
        ValueError
            For ``method="exact"`` in d > 1 or on a model that is not
            normalisable, and for invalid arguments (bools included:
            ``sample(True)`` or ``step_size=True`` are errors, not 1).

        Warns
        -----
        NonNormalisableModelWarning
            (a RuntimeWarning) for ``method="langevin"`` on a univariate model
            with a tail along which the density does not decay (a score slope
            ``>= 0`` there, the case :meth:`score_samples` refuses): the model
            has no stationary law and chains that reach that tail drift away
            from the data.
        """
        from ._density import PiecewiseQuadraticDensity
        from ._langevin import (
            _is_integer,
            auto_step_size,
            check_step_size,
            initial_state,
            langevin_sample,
            warn_if_not_normalisable,
        )

        check_is_fitted(self)
        # checked here too: method="exact" does not reach langevin_sample's check
        if not _is_integer(n_samples) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}.")
        if method not in ("langevin", "exact"):
            raise ValueError(f"method={method!r}: use 'langevin' or 'exact' (1-D models only).")
        rng = check_random_state(random_state)
        if method == "exact":
            density = PiecewiseQuadraticDensity(self._network_for())
            return density.sample(n_samples, random_state=rng)[:, None]

        noise_levels = getattr(self, "noise_levels_", None)
        if noise_levels is not None:
            noise_levels = np.asarray(noise_levels, dtype=np.float64).reshape(-1)
            if noise_levels.size != len(self.networks_):
                noise_levels = None
        if noise_levels is None and len(self.networks_) != 1:
            raise ValueError("Annealed sampling needs noise_levels_ aligned with networks_.")
        networks = self.networks_ if noise_levels is not None else [self.networks_[0]]
        # "auto" is resolved again, identically, by langevin_sample: passing the word (not its
        # value) lets a divergence message say that the automatic step was used
        step_size = check_step_size(step_size)
        if isinstance(init, str) and init == "data":
            if noise_levels is not None:
                jitter = float(noise_levels[0])
            elif step_size == "auto":
                jitter = float(np.sqrt(auto_step_size(networks, self.scale_)))
            else:
                jitter = float(np.sqrt(step_size))
        else:
            jitter = 0.0
        start = initial_state(
            init, n_samples, X=self.X_fit_, location=self.location_, scale=self.scale_,
            jitter=jitter, random_state=rng,
        )
        # d = 1: a tail that does not decay has no stationary law (score_samples and
        # method="exact" refuse such a model; Langevin would return drifting chains silently)
        warn_if_not_normalisable(networks, noise_levels, stacklevel=3)
        return langevin_sample(
            networks, n_samples, n_steps=n_steps, step_size=step_size, init=start,
            noise_levels=noise_levels, device=device, dtype=dtype, random_state=rng,
            progress=progress, data_scale=self.scale_, data_center=self.location_,
            data_radius=float(np.max(np.linalg.norm(self.X_fit_ - self.location_, axis=1))),
        )

    @available_if(lambda est: getattr(est, "n_features_in_", 1) == 1)
    def score_samples(self, X):
        r"""Exact normalised log-density of the model at ``X`` (univariate models).

        In 1-D the fitted score is continuous and piecewise linear, so
        ``log p(x) = \int s - \log Z`` is piecewise quadratic and ``Z`` is a
        sum of closed-form Gaussian (erf), exponential and Dawson integrals,
        one per piece (as KernelDensity.score_samples, but exact). For a DSM
        model it is the density of the smallest fitted noise level.

        Parameters
        ----------
        X : array-like of shape (n_samples, 1)

        Returns
        -------
        log_density : ndarray of shape (n_samples,)

        Raises
        ------
        ValueError
            If the model is not normalisable (a tail along which the score
            does not point back to the data).

        Notes
        -----
        Only univariate models have this method (``hasattr`` is False once a
        model is fitted on ``n_features_in_ > 1``): in d > 1 the per-output
        score field is not a gradient field and has no log-density.
        """
        from ._density import PiecewiseQuadraticDensity, check_density_available

        check_is_fitted(self)
        network = self._network_for()
        check_density_available(network)
        X = self._validate_query(X)
        return PiecewiseQuadraticDensity(network).log_density(X[:, 0])



def _network_gap(gap, value, objective, standardization):
    """``duality_gap_``: how far the fitted network can be above the optimum, data's units.

    ``gap`` is the solver's certified bound on ``objective - optimum`` and
    ``value`` the recovered network's own objective (both standardised): no
    network scores below the optimum, so the network is within ``gap`` plus
    what recovering it cost, ``value - objective``. In 1-D that cost is the
    kinks placed beside their data points (:func:`recover_univariate`), which
    near-duplicate points make visible: ``6.6e-5`` of the value for pairs
    ``1e-9`` apart just above the bound. nan when the solver certifies no gap.
    """
    return float(gap + max(value - objective, 0.0)) / standardization.scale**2


def _check_reproduces(program, network, objective, standardization, backend, rtol=1e-4):
    """Raise unless the recovered network's objective is the convex value ``objective``.

    Returns the network's objective (standardised units).

    In 1-D the network's kinks sit beside the data points (the convex value is
    their limit, :func:`recover_univariate`); points a few roundings apart
    leave no room for that, and a kink rounded onto or across its point
    changes the Jacobian trace there by a whole unit slope. In d >= 2 a unit
    reproduces its block only where the block satisfies its cone constraints:
    a point left on the wrong side of the unit's hyperplane changes the fit
    and, for SM, the Jacobian trace. Loose solvers (SCS
    through ``solver_options``) returned blocks whose network scored 20 %
    above the value they reported as optimal. The recovered units are
    balanced (``||w_j|| = ||a_j||``), so the network's weight decay is the
    program's penalty.
    """
    scale = standardization.scale
    univariate = isinstance(program, UnivariateProgram)
    Z = program.x[:, None] if univariate else program.Z
    X = Z * scale + standardization.mean
    if program.objective == "sm":
        value = network.sm_objective(X, program.alpha)
    else:
        targets = program.targets.reshape(len(Z), -1)
        value = network.dsm_objective(X, targets / scale, program.alpha)
    value *= scale**2
    rounding = 0.0
    if univariate:
        unit = program.value_unit()
    else:
        unit = min(program.value_unit(k) for k in range(program.d))
        # DSM values cannot be resolved below the targets' rounding floor (affine targets:
        # N = n K <= d + 1 noisy points, a constant feature); the skip-only check allows it too
        rounding = sum(program.value_rounding(k) for k in range(program.d))
    if abs(value - objective) <= rtol * (unit + abs(objective)) + rounding:
        return value
    if univariate:
        gap = float(np.diff(np.unique(Z[:, 0])).min(initial=np.inf))
        raise SolverError(
            f"the recovered network does not reproduce the convex optimum: its objective is "
            f"{value:.8g} (standardised units), not {objective:.8g}. The optimum puts each "
            f"kink on one side of a data point, as close to it as the rounding of the "
            f"coordinates allows; points {gap:.3g} apart (standardised units) leave no room "
            f"for that. Merge near-duplicate points (round the data) or increase alpha."
        )
    raise SolverError(
        f"the {backend} solver's answer is not certified: the network it gives has objective "
        f"{value:.8g} (standardised units), not the convex value {objective:.8g}, because "
        f"its blocks violate their cone constraints. Use a more accurate solver (Clarabel, "
        f"the default) or tighter solver_options."
    )


def _check_full_rank(Z, standardization):
    """Score matching with a skip connection needs a non-singular covariance.

    Along a direction ``u`` with ``Z u = 0`` the skip weight ``V = -t e_k u^T``
    changes no score value on the data but lowers the Jacobian trace by
    ``t u_k``: the program is unbounded below whatever ``alpha``.

    A singular value of the centred points counts as zero when the rounding
    of the user's data could explain it (``eps |X|`` per entry, in the
    standardised units of ``Z``), not below a fixed fraction of the largest:
    full-rank data with axes 1e5 apart in scale are well posed.
    """
    n, d = Z.shape
    eps = np.finfo(np.float64).eps
    rounding = eps * (float(np.max(np.abs(Z)))
                      + float(np.max(np.abs(standardization.mean))) / standardization.scale)
    singular_values = np.linalg.svd(Z, compute_uv=False)
    floor = max(max(n, d) * eps * float(singular_values[0]), 10.0 * np.sqrt(n * d) * rounding)
    rank = int(np.sum(singular_values > floor))
    if rank < d:
        raise ValueError(
            f"The data lie in an affine subspace (covariance rank {rank} < {Z.shape[1]} "
            "features): with skip_connection=True score matching is unbounded below whatever "
            "alpha, because the linear skip term gains Jacobian trace along directions in which "
            "the data do not vary. Remove redundant features (e.g. with PCA) or use "
            "skip_connection=False."
        )


def _univariate_unbounded_message(program, bound, activation, skip_connection):
    n = program.n
    model = f"activation={activation!r}, skip_connection={skip_connection}"
    return (
        f"Score matching with alpha={program.alpha:.6g} is unbounded below on these {n} points "
        f"({model}): the program is well posed only for alpha >= {bound:.6g} "
        f"(1/n = {1.0 / n:.6g}; 2/n for abs with skip connection; tied values raise it to "
        f"m/n for m copies of an extreme value). A hidden unit kinked just inside an extreme "
        f"data point gains Jacobian trace there at no cost in the fit, so the objective can be "
        f"driven to -infinity. Use alpha >= {bound:.6g}, or ConvexDenoisingScoreMatcher, which "
        f"is always bounded."
    )
