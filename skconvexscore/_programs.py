"""The convex programs, as data.

A *program* holds everything a solver needs (points, activation patterns,
linear terms, penalty weights) and nothing about how it is solved. All
programs live in *standardised* coordinates ``z = (x - mean) / scale`` with an
isotropic ``scale``: the problems are equivariant under translations and
isotropic scalings (biases and the skip connection are not penalised), and
standardising is what keeps interior-point and first-order solvers accurate
far from the origin. Objective values transform as ``J_x = J_z / scale**2``
(section 1 of the design notes, "mathematics").

Two families:

* :class:`UnivariateProgram` -- d = 1, one kink candidate at every point,
  solved exactly (math notes, sections 3.1 to 3.3).
* :class:`ArrangementProgram` -- d >= 2, sampled hyperplane arrangement,
  one cone-constrained group lasso per output coordinate (sections 4.1, 4.2).
"""

from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = [
    "ArrangementProgram",
    "SolverError",
    "Standardization",
    "UnboundedProgramError",
    "UnivariateProgram",
    "arrangement_alpha_hint",
    "gaussian_regime_alpha",
    "sample_patterns",
    "standardize",
    "univariate_alpha_bound",
]

OBJECTIVES = ("sm", "dsm")
ACTIVATIONS = ("relu", "abs")


class UnboundedProgramError(ValueError):
    """The score-matching program is unbounded below for this ``alpha``."""


class SolverError(ValueError):
    """A solver failed or could not certify its solution."""


# --------------------------------------------------------------------------
# Standardisation
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Standardization:
    """The affine map ``z = (x - mean) / scale`` with an isotropic scale."""

    mean: np.ndarray
    scale: float

    def transform(self, X):
        return (np.asarray(X, dtype=np.float64) - self.mean) / self.scale


def standardize(X):
    """Centre ``X`` and divide by its root-mean-square coordinate deviation.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    Returns
    -------
    Z : ndarray of shape (n_samples, n_features)
    standardization : Standardization

    Raises
    ------
    ValueError
        If every sample is the same point (the score is undefined).
    """
    X = np.asarray(X, dtype=np.float64)
    mean = X.mean(axis=0)
    centred = X - mean
    scale = float(np.sqrt(np.mean(centred**2)))
    # relative to the offset only: the programs are equivariant under scaling, so a
    # spread of 1e-13 around 0 is as good as one of 1; the absolute floor keeps
    # 1/scale^2 (skip weights, objectives) finite
    if not np.isfinite(scale) or scale < max(1e-12 * float(np.max(np.abs(mean))), 1e-100):
        raise ValueError(
            "All samples are (numerically) the same point: the data have zero "
            "variance and no score can be fitted."
        )
    return centred / scale, Standardization(mean=mean, scale=scale)


def _as_float64(program, *fields):
    """Hold a program's data in float64 (its fields are frozen).

    Under NumPy 2's promotion rules ``slope * x`` stays float32 for float32
    ``x``: the objective was then evaluated to float32 accuracy, below the
    true optimum by 3e-6 (relative) with a certified gap of 3e-16.
    """
    for name in fields:
        value = getattr(program, name)
        if value is not None:
            object.__setattr__(program, name, np.asarray(value, dtype=np.float64))


def _check_program_kind(program):
    if program.objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}")
    if program.activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}")
    if (program.objective == "dsm") != (program.targets is not None):
        raise ValueError("targets are required for 'dsm' and only for 'dsm'")


# --------------------------------------------------------------------------
# Univariate programs (d = 1)
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class UnivariateProgram:
    r"""An exact one-dimensional program (math notes, sections 3.1 to 3.3).

    The model is a sum of *atoms* with one kink at every point, plus an
    optional unpenalised line ``v x + c`` (``skip_connection``):

    * ``activation="relu"`` with skip: atoms ``(x - x_j)_+``, ``j = 1..n``;
    * ``activation="relu"`` without skip: atoms ``(x - x_j)_+`` followed by the
      reversed atoms ``(x_j - x)_+`` (coefficient vector of length ``2 n``);
    * ``activation="abs"``: atoms ``|x - x_j|``.

    Score matching (``objective="sm"``), with the midpoint convention::

        (1/n) [ 1/2 ||A u + v x + c||^2 + q . u + n v ] + sum_j lam_j |u_j|

    Denoising score matching (``objective="dsm"``) on noisy points with
    targets ``y``::

        1/(2n) ||A u + v x + c - y||^2 + alpha ||u||_1

    Attributes
    ----------
    objective : {"sm", "dsm"}
    x : ndarray of shape (n,)
        Standardised points, sorted increasingly (ties allowed).
    alpha : float
    activation : {"relu", "abs"}
    skip_connection : bool
    targets : ndarray of shape (n,) or None
        DSM targets ``-eps / sigma`` (standardised), aligned with ``x``.
    """

    objective: str
    x: np.ndarray
    alpha: float
    activation: str = "relu"
    skip_connection: bool = True
    targets: np.ndarray | None = None

    def __post_init__(self):
        _check_program_kind(self)
        _as_float64(self, "x", "targets")
        if np.any(np.diff(self.x) < 0):
            raise ValueError("x must be sorted increasingly")

    @property
    def n(self):
        return self.x.shape[0]

    @property
    def reversed_atoms(self):
        """Whether the atoms include both ReLU orientations."""
        return self.activation == "relu" and not self.skip_connection

    @property
    def n_atoms(self):
        return 2 * self.n if self.reversed_atoms else self.n

    @property
    def kinks(self):
        """Kink location of every atom, shape (n_atoms,)."""
        return np.concatenate([self.x, self.x]) if self.reversed_atoms else self.x

    @property
    def orientations(self):
        """+1 for ``(x - t)_+`` or ``|x - t|``, -1 for ``(t - x)_+``."""
        signs = np.ones(self.n)
        return np.concatenate([signs, -signs]) if self.reversed_atoms else signs

    def linear_term(self):
        """Coefficient ``q_j`` of each atom's Jacobian trace summed over points.

        Midpoint convention: ``phi'(0) = 1/2`` for ReLU, ``sign(0) = 0`` for
        abs; sorted 0-based index ``j``. Zero for DSM.
        """
        n = self.n
        j = np.arange(n, dtype=np.float64)
        if self.objective == "dsm":
            return np.zeros(self.n_atoms)
        if self.activation == "abs":
            return n - 2.0 * j - 1.0
        forward = n - j - 0.5
        if self.reversed_atoms:
            return np.concatenate([forward, -(j + 0.5)])
        return forward

    def penalty_weights(self):
        """The l1 weight ``lam_j`` of every atom (the reduced weight for SM)."""
        if self.objective == "dsm":
            lam = self.alpha
        elif self.activation == "relu":
            lam = self.alpha - 0.5 / self.n
        else:
            lam = self.alpha - 1.0 / self.n
        return np.full(self.n_atoms, lam)

    def design_matrix(self):
        """The dense ``n x n_atoms`` atom matrix (for small reference solves only)."""
        diff = self.x[:, None] - self.kinks[None, :]
        if self.activation == "abs":
            return np.abs(diff)
        return np.maximum(diff * self.orientations[None, :], 0.0)

    def evaluate(self, coef, slope=0.0, intercept=0.0):
        """Model values at the points, ``A u + v x + c``, in O(n_atoms log n)."""
        return _atom_sum(self.x, self.kinks, self.orientations, coef, self.activation) + (
            slope * self.x + intercept
        )

    def objective_value(self, coef, slope=0.0, intercept=0.0):
        """The program's objective at a point (standardised units)."""
        if not self.skip_connection:
            slope, intercept = 0.0, 0.0
        f = self.evaluate(coef, slope, intercept)
        # penalty and trace summed in extended precision: near-duplicate points
        # make optima with coefficients ~1e11 whose two terms cancel to O(1)
        coef = np.asarray(coef, dtype=np.longdouble)
        penalty = np.sum(self.penalty_weights() * np.abs(coef))
        n = self.n
        if self.objective == "dsm":
            return float(0.5 * np.mean((f - self.targets) ** 2) + penalty)
        trace = self.linear_term() @ coef + n * slope
        return float((0.5 * (f @ f) + trace) / n + penalty)

    def value_unit(self):
        """The unit ``u`` of relative accuracy: a value is resolved to ``tol (u + |value|)``.

        See :func:`_value_unit`; here the natural scale is ``1/var(x)`` for SM
        and, for DSM, the targets' mean square beyond their affine fit
        (:func:`_dsm_natural_scale`).
        """
        return self._unit

    @cached_property
    def _unit(self):
        # computed once: a DSM unit is an affine fit of every noisy point (30 ms at 1e6),
        # and a solve and its checks ask for it several times
        if self.objective == "dsm":
            return _value_unit(_dsm_natural_scale(self.x[:, None], self.targets))
        return _value_unit(1.0 / np.var(self.x))

    def affine_solution(self):
        """DSM with skip connection: the optimum when the targets are affine, else None.

        Two noisy points (``n_noise_samples=1`` on two points) always have
        affine targets: the line through them, with no kink, is the optimum.
        See :func:`affine_targets`.
        """
        if self.objective != "dsm" or not self.skip_connection:
            return None
        line = affine_targets(self.x[:, None], self.targets)
        if line is None:
            return None
        from ._solution import UnivariateSolution

        coef = np.zeros(self.n_atoms)
        slope, intercept = float(line[0]), float(line[1])
        return UnivariateSolution(
            coef=coef, slope=slope, intercept=intercept,
            objective=self.objective_value(coef, slope, intercept), status="optimal",
            duality_gap=0.0,
        )

    def well_posedness_bound(self):
        """Smallest ``alpha`` for which the program is bounded below (SM only)."""
        if self.objective == "dsm":
            return 0.0
        return univariate_alpha_bound(self.x, self.activation, self.skip_connection)


def affine_targets(Z, y):
    """The affine fit's coefficients ``(row, intercept)`` when ``y`` is affine in ``Z``, else None.

    Affine up to rounding: the residual's mean square at most ``1e-20
    mean(y^2)``. A DSM program with skip connection is then solved by its skip
    part alone, at the value 0 up to rounding, which is also its accuracy unit
    (:func:`_dsm_natural_scale`): no iterative solver can work to it.
    """
    coef, residual = affine_residual(Z, y)
    if float(np.mean(residual**2)) > 1e-20 * float(np.mean(y**2)):
        return None
    return coef


def affine_residual(Z, y):
    """Least-squares affine fit of ``y`` on ``[Z, 1]``: its coefficients and residual.

    One feature is fitted in closed form on centred points, in a few passes:
    LAPACK's least squares took 2.2 s on the 1e7 noisy points of a 1-D DSM
    program with a million points.
    """
    Z = np.asarray(Z, dtype=np.float64)
    if Z.shape[1] == 1:
        x_mean, y_mean = float(np.mean(Z)), float(np.mean(y))
        centred = Z[:, 0] - x_mean
        spread = float(centred @ centred)
        if spread > 0:
            residual = y - y_mean
            slope = float(centred @ residual) / spread
            residual -= slope * centred
            return np.array([slope, y_mean - slope * x_mean]), residual
    design = np.column_stack([Z, np.ones(Z.shape[0])])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return coef, y - design @ coef


def _dsm_natural_scale(Z, y):
    """``mean(r^2)``, ``r`` the residual of the least-squares affine fit of ``y`` on ``[Z, 1]``.

    The affine map is always within reach of the network (the skip connection,
    or two opposite units per direction) at no or little cost, so the optimum
    lies below ``mean(r^2) / 2``, not just below the zero network's
    ``mean(y^2) / 2``. With noise far above the data's spread the two differ by
    ``(sigma / s)^2``: at ``sigma = 3000 s`` the targets' affine part explains
    all but 1e-7 of ``mean(y^2)``, and a unit of ``mean(y^2)`` let solvers stop
    20 % above the optimum (above the affine fit itself).
    """
    y = np.asarray(y, dtype=np.float64)
    _, residual = affine_residual(Z, y)
    natural = float(np.mean(residual**2))
    return max(natural, _dsm_rounding_floor(y)) if natural > 0 else float(np.mean(y**2))


def _dsm_rounding_floor(y):
    """``mean(y^2) (64 eps)^2``: residuals cannot be resolved below ``eps |y|``, nor DSM
    values below this, whatever ``tol``."""
    return float(np.mean(np.asarray(y, dtype=np.float64) ** 2)) * (64 * np.finfo(np.float64).eps) ** 2


def _value_unit(natural):
    r"""``min(1, natural)``: the scale below which a program's values count as zero.

    ``natural`` is twice the size of a reference value: the Gaussian optimum
    ``-1/(2 var)`` for SM, the affine map's ``mean(r^2)/2`` for DSM. Both
    are 1 in the estimators' standardised coordinates, except DSM with noise
    far above the data's spread: its targets ``-eps s/sigma`` are then small,
    and so is every value of the program (``2e-10`` at ``sigma = 140 s``). A
    unit of 1 would make ``tol`` an absolute bound far above those values
    (CVXPY/Clarabel then reported 60 times the optimum as optimal).
    """
    natural = float(natural)
    return min(1.0, natural) if natural > 0 and np.isfinite(natural) else 1.0


def _forward_sum(x, t, u):
    """``sum_{t_j < x_i} u_j (x_i - t_j)`` for sorted ``x`` and sorted kinks ``t``.

    Accumulated gap by gap: from ``x_{i-1}`` to ``x_i`` the sum grows by the
    slope right of ``x_{i-1}`` times the gap, plus ``u_j (x_i - t_j)`` for the
    kinks in between. A near-duplicate pair of large opposite atoms then adds
    ``u (t_2 - t_1)``, its true size, instead of the difference of two sums of
    size ``u |x|`` (which lost up to 1e-4 of the objective with ``u ~ 1e11``).
    """
    n = x.shape[0]
    # kink j lies in (x_{b-1}, x_b], b = number of points below it
    b = np.searchsorted(x, t, side="left")
    inside = b < n
    local = np.bincount(b[inside], weights=u[inside] * (x[b[inside]] - t[inside]),
                        minlength=n)
    # slope right of x_i: the kinks at or below it
    slope_right = np.cumsum(np.bincount(b, weights=u, minlength=n + 1)[:n],
                            dtype=np.longdouble).astype(np.float64)
    steps = np.empty(n)
    steps[0] = local[0]
    np.multiply(slope_right[:-1], np.diff(x), out=steps[1:])
    steps[1:] += local[1:]
    return np.cumsum(steps, dtype=np.longdouble).astype(np.float64)


def _backward_sum(x, t, u):
    """``sum_{t_j > x_i} u_j (t_j - x_i)``: :func:`_forward_sum` on the mirrored line."""
    return _forward_sum(-x[::-1], -t[::-1], u[::-1])[::-1]


def _atom_sum(x, kinks, orientations, coef, activation):
    """``sum_j coef_j phi(o_j (x_i - t_j))`` for every i, by running sums over the gaps.

    Both ``x`` and the forward and reversed kinks are evaluated in
    O((n + m) log (n + m)) (:func:`_forward_sum`): no dense matrix is formed.
    """
    order_x = np.argsort(x, kind="stable")
    xs = np.asarray(x, dtype=np.float64)[order_x]
    sorted_out = np.zeros(xs.shape[0])
    for sign in (1.0, -1.0):
        sel = orientations == sign
        if not np.any(sel):
            continue
        t, u = kinks[sel], coef[sel]
        order = np.argsort(t, kind="stable")
        t, u = t[order], u[order]
        if activation == "abs" or sign > 0:  # sum_{t_j < x} u_j (x - t_j)
            sorted_out += _forward_sum(xs, t, u)
        if activation == "abs" or sign < 0:  # sum_{t_j > x} u_j (t_j - x)
            sorted_out += _backward_sum(xs, t, u)
    out = np.empty_like(sorted_out)
    out[order_x] = sorted_out
    return out


def univariate_alpha_bound(x, activation="relu", skip_connection=True):
    """Exact well-posedness bound of the 1-D score-matching program.

    The program is bounded below iff ``alpha >= bound``. Without ties the bound
    is ``1/n`` (``2/n`` for abs with skip connection). A value shared by ``m``
    points moves it: a unit kinked just inside an extreme value gains the
    Jacobian trace of its ``m`` copies at no cost in the fit (``m/n``), and two
    opposite units straddling an interior value make a zero-width spike that
    gains ``m`` traces for two penalties (``m/(2n)``).

    Parameters
    ----------
    x : array-like of shape (n,)
    activation : {"relu", "abs"}
    skip_connection : bool

    Returns
    -------
    bound : float
    """
    x = np.sort(np.asarray(x, dtype=np.float64).ravel())
    n = x.shape[0]
    _, counts = np.unique(x, return_counts=True)
    if counts.size < 2:
        return np.inf
    m_ext = max(counts[0], counts[-1])
    m_int = counts[1:-1].max() if counts.size > 2 else 0
    if activation == "relu":
        bound = max(m_ext / n, m_int / (2 * n))
    elif skip_connection:  # abs with skip = relu with skip at alpha / 2
        bound = 2 * max(m_ext / n, m_int / (2 * n))
    else:
        bound = max(m_ext, m_int) / n
    return float(bound)


def gaussian_regime_alpha(x):
    r"""``alpha_G``: above it the 1-D ReLU-with-skip SM optimum is Gaussian.

    .. math::

        \alpha_G = \frac1n \max_j \max(|N_{\ge}(j) - S_j|, |N_{>}(j) - S_j|),
        \quad S_j = \frac{1}{\mathrm{var}} \sum_{x_i > x_j} (x_i - \bar x)(x_i - x_j)

    with the biased variance. Computed in O(n log n) by prefix sums.
    """
    x = np.sort(np.asarray(x, dtype=np.float64).ravel())
    n = x.shape[0]
    # centred first: x_i - x_j = z_i - z_j, and products of uncentred values
    # would cancel catastrophically for data far from zero
    z = x - x.mean()
    z -= z.mean()  # the mean's own rounding would shift every S_j by O(n) roundings of it
    var = float(np.mean(z**2))
    if not var > 0:
        raise ValueError("alpha_G needs data with positive variance; all the points are equal.")
    # suffix sums over i > j of z_i and z_i^2 (ties: strict inequality)
    zz_rev = np.cumsum((z * z)[::-1])[::-1]
    z_rev = np.cumsum(z[::-1])[::-1]
    n_gt = n - np.searchsorted(x, x, side="right")
    n_ge = n - np.searchsorted(x, x, side="left")
    first_gt = n - n_gt  # index of the first point strictly above x_j
    sum_zz = np.where(first_gt < n, zz_rev[np.minimum(first_gt, n - 1)], 0.0)
    sum_z = np.where(first_gt < n, z_rev[np.minimum(first_gt, n - 1)], 0.0)
    S = (sum_zz - z * sum_z) / var
    value = float(np.max(np.maximum(np.abs(n_ge - S), np.abs(n_gt - S))) / n)
    # exactly alpha_G >= the well-posedness bound (at the minimum S_j = n, so the term is m_min;
    # at the maximum S_j = 0 and N_ge = m_max; an interior tie gives at least m/2): where the two
    # coincide, rounding must not put alpha_G below it, or fit(alpha=alpha_G) raises "unbounded"
    return max(value, univariate_alpha_bound(x, "relu", True))


# --------------------------------------------------------------------------
# Arrangement programs (d >= 2)
# --------------------------------------------------------------------------


def sample_patterns(Z, n_patterns, activation, random_state, keep_full=False):
    """Sample gates and keep the distinct, non-empty activation patterns.

    Gates ``g ~ N(0, I_{d+1})`` act on ``[Z, 1]``. For each distinct pattern the
    gate with the largest margin ``min_i |[z_i, 1] . g| / ||g||`` is kept: it lies
    strictly inside the pattern's cone and is used to nudge recovered units off
    the cone boundary. For ``activation="abs"`` a pattern and its complement
    give the same units and are merged.

    The all-active pattern is dropped unless ``keep_full``. Its units are
    affine on the data with a free intercept: with skip connection they
    duplicate ``V x + c`` (a ray of optimal solutions that stalls
    interior-point solvers), so it is dropped. Without skip connection it is
    the only pattern whose units are affine (a linear map at the cost of one
    unit, and the free output constant that unpenalised biases give the
    network): it is a pattern of math notes 4 like any other and must be kept
    (``keep_full=True``), or the program's optimum lies above the network's.

    Parameters
    ----------
    Z : ndarray of shape (n, d)
    n_patterns : int
        Number of gates drawn.
    activation : {"relu", "abs"}
    random_state : numpy.random.Generator or RandomState
    keep_full : bool, default=False
        Keep the all-active pattern (for programs without skip connection).

    Returns
    -------
    masks : ndarray of bool, shape (n, P)
    gates : ndarray of shape (P, d + 1)
    """
    n, d = Z.shape
    Zt = np.hstack([Z, np.ones((n, 1))])
    gates = random_state.standard_normal((int(n_patterns), d + 1))
    gates /= np.linalg.norm(gates, axis=1, keepdims=True)
    pre = Zt @ gates.T
    masks = pre >= 0
    if activation == "abs":
        flip = ~masks[0]
        masks[:, flip] = ~masks[:, flip]
        gates[flip] *= -1
        pre[:, flip] *= -1
    keep = masks.any(axis=0) & (keep_full | ~masks.all(axis=0))
    masks, gates, pre = masks[:, keep], gates[keep], pre[:, keep]
    margin = np.abs(pre).min(axis=0)
    keys = np.packbits(masks, axis=0).T
    # order by descending margin so that np.unique's first index is the best gate
    order = np.argsort(-margin, kind="stable")
    _, first = np.unique(keys[order], axis=0, return_index=True)
    chosen = np.sort(order[first])
    return np.ascontiguousarray(masks[:, chosen]), gates[chosen]


@dataclass(frozen=True)
class ArrangementProgram:
    r"""Cone-constrained group lasso on a hyperplane arrangement (d >= 2).

    One independent program per output coordinate ``k`` (math notes 4.1, 4.2)::

        SM:  (1/n) [ 1/2 ||F_k||^2 + sum_i c_i (v_i - w_i)_k + n V_kk ]
                 + alpha sum_i (||v_i[:d]|| + ||w_i[:d]||)
        DSM: 1/(2n) ||F_k - Y_k||^2 + alpha sum_i (||v_i[:d]|| + ||w_i[:d]||)

        F_k = sum_i S_i * (Zt (v_i - w_i)) + Z V_k + c_k,
        s.t. (2 D_i - 1) * (Zt v_i) >= 0 and (2 D_i - 1) * (Zt w_i) >= 0

    where ``Zt = [Z, 1]``, ``D_i`` is pattern ``i``, ``S_i = D_i`` for ReLU and
    ``2 D_i - 1`` for abs, and ``c_i = tr D_i`` (ReLU) or ``2 tr D_i - n`` (abs).
    Without skip connection ``V_k`` and ``c_k`` are absent.

    Attributes
    ----------
    objective : {"sm", "dsm"}
    Z : ndarray of shape (n, d)
        Standardised points (SM: the data; DSM: the noisy points).
    masks : ndarray of bool, shape (n, P)
    gates : ndarray of shape (P, d + 1)
        A strictly interior gate of every pattern.
    alpha : float
    activation : {"relu", "abs"}
    skip_connection : bool
    targets : ndarray of shape (n, d) or None
        DSM targets (standardised).
    """

    objective: str
    Z: np.ndarray
    masks: np.ndarray
    gates: np.ndarray
    alpha: float
    activation: str = "relu"
    skip_connection: bool = True
    targets: np.ndarray | None = None

    def __post_init__(self):
        _check_program_kind(self)
        _as_float64(self, "Z", "gates", "targets")

    @property
    def n(self):
        return self.Z.shape[0]

    @property
    def d(self):
        return self.Z.shape[1]

    @property
    def n_patterns(self):
        return self.masks.shape[1]

    @property
    def features(self):
        """``Zt = [Z, 1]``, shape (n, d + 1)."""
        return np.hstack([self.Z, np.ones((self.n, 1))])

    @property
    def signs(self):
        """``2 D - 1`` as floats, shape (n, P): the cone constraints' signs."""
        return np.where(self.masks, 1.0, -1.0)

    @property
    def output_masks(self):
        """``S``: ``D`` (ReLU) or ``2 D - 1`` (abs), shape (n, P)."""
        return self.masks.astype(np.float64) if self.activation == "relu" else self.signs

    def trace_counts(self):
        """``c_i``: summed activation derivative of pattern ``i`` (SM), shape (P,)."""
        if self.objective == "dsm":
            return np.zeros(self.n_patterns)
        active = self.masks.sum(axis=0).astype(np.float64)
        return active if self.activation == "relu" else 2.0 * active - self.n

    def output_values(self, positive, negative, skip_row=None, intercept=0.0):
        """``F_k`` for one output, given ``v`` and ``w`` of shape (P, d + 1)."""
        pre = self.features @ (positive - negative).T  # (n, P)
        f = np.sum(self.output_masks * pre, axis=1)
        if self.skip_connection and skip_row is not None:
            f = f + self.Z @ skip_row + intercept
        return f

    def objective_value(self, k, positive, negative, skip_row=None, intercept=0.0):
        """Objective of output ``k``'s program at a point (standardised units)."""
        f = self.output_values(positive, negative, skip_row, intercept)
        d = self.d
        penalty = self.alpha * float(
            np.linalg.norm(positive[:, :d], axis=1).sum()
            + np.linalg.norm(negative[:, :d], axis=1).sum()
        )
        if self.objective == "dsm":
            return 0.5 * float(np.mean((f - self.targets[:, k]) ** 2)) + penalty
        trace = float(self.trace_counts() @ (positive[:, k] - negative[:, k]))
        if self.skip_connection and skip_row is not None:
            trace += self.n * float(skip_row[k])
        return (0.5 * float(f @ f) + trace) / self.n + penalty

    def value_unit(self, k):
        """The unit of relative accuracy for output ``k`` (see :func:`_value_unit`).

        The natural scale is ``d / sum(var(Z))`` for SM and, for DSM, the mean
        square of ``y_k`` beyond its affine fit (:func:`_dsm_natural_scale`).
        """
        return self._units[k]

    @cached_property
    def _units(self):
        # computed once per program, as in UnivariateProgram.value_unit
        if self.objective == "dsm":
            return tuple(_value_unit(_dsm_natural_scale(self.Z, self.targets[:, k]))
                         for k in range(self.d))
        return (_value_unit(self.d / np.sum(np.var(self.Z, axis=0))),) * self.d

    def value_rounding(self, k):
        """How far output ``k``'s values computed two ways may differ by rounding alone.

        Zero for SM, whose values round relative to their size; for DSM the
        floor of :func:`_dsm_rounding_floor`, which is all of the value when the
        targets are affine up to rounding (a constant feature).
        """
        return _dsm_rounding_floor(self.targets[:, k]) if self.objective == "dsm" else 0.0

    def skip_only_values(self):
        r"""Each output's value at its best point without hidden units, or None without skip.

        The skip connection is not penalised, so this point is feasible for
        every ``alpha`` and no optimum lies above its value: for SM
        ``-[\Sigma^{-1}]_{kk} / 2`` (the Gaussian score, ``\Sigma`` the
        covariance of the points), for DSM half the mean square of the targets'
        affine least-squares residual. Computed from the singular values of the
        centred points rather than their Gram matrix, so that a direction whose
        spread is 1e-8 of the largest keeps its digits.

        Returns
        -------
        values : ndarray of shape (d,) or None
        """
        if not self.skip_connection:
            return None
        if self.objective == "dsm":
            _, residual = affine_residual(self.Z, self.targets)
            return 0.5 * np.mean(residual**2, axis=0)
        _, sing, vt = np.linalg.svd(self.Z - self.Z.mean(axis=0), full_matrices=False)
        return -0.5 * self.n * np.sum(vt**2 / sing[:, None] ** 2, axis=0)

    def affine_solution(self, k):
        """DSM with skip connection: output ``k``'s optimum when its targets are affine, else None.

        A constant feature makes its targets ``-eps / sigma`` exactly affine in
        the noisy points (``c + sigma eps``): the optimum is the skip row alone,
        with value 0 up to rounding. Its accuracy unit (the residual's mean
        square) is then rounding noise, which no solver can work to.
        """
        if self.objective != "dsm" or not self.skip_connection:
            return None
        coef = affine_targets(self.Z, self.targets[:, k])
        if coef is None:
            return None
        from ._solution import OutputSolution

        none = np.zeros((self.n_patterns, self.d + 1))
        row, intercept = coef[: self.d].copy(), float(coef[self.d])
        return OutputSolution(
            positive=none, negative=none.copy(), skip_row=row, intercept=intercept,
            objective=self.objective_value(k, none, none, row, intercept), status="optimal",
            duality_gap=0.0,
        )

    def cone_violation(self, positive, negative):
        """Largest violation of the cone constraints, relative to the weights."""
        signs = self.signs
        worst = 0.0
        for v in (positive, negative):
            pre = signs * (self.features @ v.T)
            scale = np.linalg.norm(v, axis=1) + 1e-300
            worst = max(worst, float(np.max(np.maximum(-pre, 0.0) / scale[None, :])))
        return worst


def arrangement_alpha_hint(n_samples, n_features):
    """Rough well-posedness bound ``d / n`` of the d-dimensional SM program.

    A unit whose hyperplane runs along a facet of the convex hull activates
    ``d`` points at value ~0; the exact bound depends on the data and patterns.
    """
    return n_features / n_samples
