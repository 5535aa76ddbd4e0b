r"""Exact structured solver for the one-dimensional programs.

The 1-D programs of :class:`~skconvexscore._programs.UnivariateProgram` are
lasso problems over one atom per data point. Written in the *values*
``f_i = s(z_i)`` at the distinct points and the *slopes* ``U_k`` of the score
on the gaps ``(z_k, z_{k+1})``, every variant is a quadratic program whose
constraints only link neighbouring points (math notes, sections 3.1 to 3.3):

.. math::

    \min\ \frac1n \sum_i m_i \Big(\tfrac12 f_i^2 - \bar y_i f_i\Big)
          + \frac{\tau}{n} \sum_i m_i \frac{U_{i-1} + U_i}{2}
          + \sum_i \lambda_i |U_i - U_{i-1}|
    \quad\text{s.t.}\quad f_{k+1} - f_k = g_k U_k ,

with ``m_i`` the multiplicity of the distinct point ``z_i``, ``g_k`` the gaps,
``tau = 1`` for score matching (the midpoint-convention Jacobian trace) and
``0`` for DSM (``ybar_i`` the mean target of the tied points). Tied points are
merged exactly: a kink on a value shared by ``m`` points costs
``alpha - m / (2 n)`` per unit slope change (the best of the tied atoms'
linear terms), which is also where the well-posedness bound comes from.
Without skip connection and with the absolute value, the score is the same
chain with kinks on the extreme points too, opposite outer slopes, and one
end condition ``f_1 + f_N = U_N (z_N - z_1)`` that pins its line
(:func:`_build_abs_noskip`); the chain is folded so that this condition keeps
the Newton matrix banded. ReLU without skip connection is split into its
forward part ``F`` (forward atoms, zero left of the data) and reversed part
``R`` (zero right of the data), each with its own slope chain
(:func:`_build_relu_noskip`). With ReLU the skip program is a relaxation of
the one without skip connection (a reversed atom is a forward atom minus a
line); when the skip optimum's line can be carried by reversed weights of the
kinks' own signs, at no extra weight decay, it is the optimum without skip
connection too, and that program is solved as the skip one
(:func:`_solve_relu_through_skip`).
Near the bound, where the solution has many kinks, it is so in
every case we have run, and it avoids the forward/reversed QP there, whose
Newton systems lose their accuracy for ``n`` in the hundreds of thousands
(the method stalls uncertified).

No ``1/g_k`` ever appears: the difference constraints are kept, with their
multipliers, so near-duplicate points are harmless. The program is solved by a
Mehrotra predictor-corrector primal-dual interior point method; each Newton
system is reduced (values and l1 multipliers eliminated, both diagonal) to a
banded system in the slopes and the chain multipliers, factorised once per
iteration by banded LU with partial pivoting (LAPACK ``gbtrf``), i.e.
``O(n)`` time and memory per iteration and no ``n x n`` matrix. The full QP
with a skip connection -- the default model, and the one whose solutions are
dense near the bound -- is kept in vector form (:class:`_ChainQP`): its
matrices are applied by differences and its band is written directly with
strided slices (:class:`_ChainKKT`), so no sparse matrix is built on that
path; the other QPs go through the general sparse-to-band assembly
(:class:`_BandedKKT`).

Starting point and cost. The method starts at the kink-free (Gaussian /
least-squares) solution when its l1 multipliers prove it optimal (``alpha >=
alpha_G``: a few iterations), otherwise from a wide, well-centred split whose
width grows like ``N^2`` up to ``1e12`` (slopes near the bound scale like
inverse squared gaps), restarting without the shortcut, then from a narrow
start, if that fails or stalls. Per iteration: one
``gbtrf`` and two ``gbtrs`` on a band of half-width 2 (skip connection), 4
(absolute value without skip connection) or 6 (ReLU without),
a few operator products and O(1) vector passes, with BLAS pinned to one
thread.
Non-finite iterates raise :class:`SolverError`; nothing uncertified is
returned.

Working set (skip connection). Away from the bound the optimum has few kinks
(none at ``alpha >= alpha_G``, ~0.2 % of the points at ``alpha = 20/n``), so
with a skip connection the QP is first solved with kinks allowed only on a
working set of *knots*: the score is one line per segment between knots,
parametrised by its value at the segment's centroid and its slope, which
keeps the fit diagonal and the continuity constraints free of ``1/g_k``
(:func:`_build_segments`); with every point a knot this is the full QP. The
full problem's multipliers then follow from stationarity by running sums, in
``O(n)``, restarted at every knot from the segment QP's multipliers
(:func:`_full_certificate`); points whose kink multiplier leaves its box are
added (:func:`~skconvexscore._univariate_atoms.select_spread`, roughly
doubling the set) until the *full* QP is certified with the residual below. Inactive knots are then dropped once and
the result re-certified, so the kinks returned are the active ones. The
kink-free start is in closed form, so the Gaussian regime costs a few
``O(n)`` passes and no Newton step (this also certifies degenerate points
such as ``alpha = alpha_G`` exactly, where the multipliers sit on their
bound). When the set would exceed ``n/8`` (at ``alpha = 2/n`` about 13 % of
the points are kinks, and the rounds would keep growing the set) the full IPM
is used instead. Its answer is then polished (:func:`_polish_active_set`):
with the active set and signs read off its multipliers the l1 terms are
linear, one banded solve on the knots gives an exactly sparse point, and the
full QP's certificate keeps it only if it proves it optimal, after a few
active-set corrections (3-7 solves on the knots at ``n = 1e6``; the interior
point itself leaves every kink nonzero).

Working set (no skip connection). Away from the bound these programs have a
few atoms (two, on the extreme points, in the Gaussian-Laplace regime), and
ReLU's forward/reversed QP loses the accuracy of its Newton systems from
``n ~ 1e5`` on. So a working set of *atoms* is tried first
(:mod:`skconvexscore._univariate_atoms`): the restricted lasso is dense and
small, and every atom's gradient follows from the values by ``O(n)`` running
sums, so the full program's optimality conditions are checked in atom space.
It gives up beyond ``N/8`` (at most 400) atoms, or when dozens of atoms leave a
quarter of the atoms violating, and the banded QP over every point runs. Its
interior point is polished in the same way for the absolute value
(:func:`_polish_banded`: the active rows' l1 terms linear, the others held at
zero, on every variable) when the program has at most ``_POLISH_MAX_ROWS``
kinks.

Certificate. The method stops when the *relative KKT residual*

.. math::

    \max\Big(\frac{\|r_{\rm primal}\|_\infty}{1 + \|x\|_\infty},\
             \frac{\|r_{\rm dual}\|_\infty}{\|c\|_\infty + \max\lambda},\
             \frac{a^\top z_a + b^\top z_b + |x|^\top |r_{\rm dual}|}{1 + |P|}\Big)
    \le \mathrm{tol}

(primal and dual feasibility, and the duality gap relative to the objective:
the complementarity, which is the whole gap at a feasible primal-dual pair,
plus ``x . r_dual``, what the stationarity error adds to it; a residual of
``1.5e-10`` on a slope of ``5e8`` whose curvature is ``gap^2``, clusters
``1e-9`` wide, hid 1.3 % of the objective). Of
the stationarity residual only what exceeds the rounding error of evaluating
it is counted (:func:`_stationarity_excess`): near the bound its terms can exceed
``c`` by ten orders of magnitude. The
working set evaluates the same quantities for the full QP, with box
violations ``(|nu| - lambda)_+`` counted as dual residual, the slacks
``a, b`` the positive and negative parts of the kinks and the whole
stationarity residual in ``x . r_dual``. The
reported ``duality_gap`` is this gap plus the change of
objective caused by rounding inactive kinks to exact zeros, both relative to
``1 + |P|``.
"""

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack
from threadpoolctl import threadpool_limits

from ._programs import SolverError, UnboundedProgramError, univariate_alpha_bound
from ._solution import UnivariateSolution
from ._univariate_atoms import (
    extended_sum,
    prefix_sums,
    select_spread,
    solve_noskip_working_set,
)

__all__ = ["solve_univariate_exact"]

# --------------------------------------------------------------------------
# Building the banded QP
# --------------------------------------------------------------------------


class _QP:
    r"""``min 1/2 sum h x^2 + c.x + sum_l lam_l |(M x)_l|  s.t.  E x = e``.

    ``x_key`` and ``e_key`` place every variable and equality row along the
    data axis; sorting by them makes the reduced Newton matrix banded.
    ``value_offset`` is what the program's value adds to the QP's (DSM's
    ``mean(y^2)/2``): gaps are measured relative to ``value_unit`` plus the
    program's value (:meth:`UnivariateProgram.value_unit`).
    """

    def __init__(self, n_var, value_offset=0.0, value_unit=1.0):
        self.n_var = n_var
        self.value_offset = value_offset
        self.value_unit = value_unit
        self.h = np.zeros(n_var)
        self.c = np.zeros(n_var)
        self.x_key = np.zeros(n_var)
        self._e_rows, self._e_cols, self._e_vals, self._e_keys = [], [], [], []
        self._m_rows, self._m_cols, self._m_vals, self._lam = [], [], [], []
        self.n_eq = 0
        self.n_l1 = 0

    def add_equalities(self, cols_vals, keys):
        """Rows ``sum_t vals_t x[cols_t] = 0``; ``cols_vals`` a list of (cols, vals) arrays."""
        rows = self.n_eq + np.arange(keys.shape[0])
        for cols, vals in cols_vals:
            self._e_rows.append(rows)
            self._e_cols.append(np.asarray(cols))
            self._e_vals.append(np.broadcast_to(np.asarray(vals, dtype=np.float64), rows.shape))
        self._e_keys.append(np.asarray(keys, dtype=np.float64))
        self.n_eq += keys.shape[0]

    def add_l1(self, cols_vals, lam):
        """Terms ``lam_l |sum_t vals_t x[cols_t]|``; rows with ``lam == 0`` are unpenalised."""
        lam = np.asarray(lam, dtype=np.float64)
        keep = lam > 0
        idx = np.flatnonzero(keep)
        rows = self.n_l1 + np.arange(idx.shape[0])
        for cols, vals in cols_vals:
            vals = np.broadcast_to(np.asarray(vals, dtype=np.float64), lam.shape)
            self._m_rows.append(rows)
            self._m_cols.append(np.asarray(cols)[idx])
            self._m_vals.append(vals[idx])
        self._lam.append(lam[idx])
        self.n_l1 += idx.shape[0]
        # position of the kept rows in the caller's numbering
        return idx

    def finalize(self):
        def build(rows, cols, vals, n_rows):
            if not rows:
                return sp.csr_matrix((n_rows, self.n_var))
            vals, rows, cols = np.concatenate(vals), np.concatenate(rows), np.concatenate(cols)
            # placeholders for absent neighbours carry a zero and a dummy column
            keep = vals != 0.0
            return sp.csr_matrix(
                (vals[keep], (rows[keep], cols[keep])), shape=(n_rows, self.n_var)
            )

        self.E = build(self._e_rows, self._e_cols, self._e_vals, self.n_eq)
        self.e = np.zeros(self.n_eq)
        self.e_key = np.concatenate(self._e_keys) if self._e_keys else np.zeros(0)
        self.M = build(self._m_rows, self._m_cols, self._m_vals, self.n_l1)
        self.lam = np.concatenate(self._lam) if self._lam else np.zeros(0)
        return self


def _group_points(program):
    """Distinct points, multiplicities, mean targets and first/last sorted index."""
    x = program.x
    z, first, counts = np.unique(x, return_index=True, return_counts=True)
    last = first + counts - 1
    if program.objective == "dsm":
        ybar = np.add.reduceat(program.targets, first) / counts
    else:
        ybar = np.zeros(z.shape[0])
    return z, counts.astype(np.float64), ybar, first, last


def _trace_coefficients(m, n, tau):
    """Coefficient of each gap slope and of the two outer slopes in the trace term.

    ``tau/n sum_i m_i (U_{i-1} + U_i)/2``: gap ``k`` (between points k, k+1)
    gets ``tau (m_k + m_{k+1}) / (2n)``, the outer slopes ``tau m_1/(2n)`` and
    ``tau m_N/(2n)``.
    """
    gaps = tau * (m[:-1] + m[1:]) / (2.0 * n)
    return gaps, tau * m[0] / (2.0 * n), tau * m[-1] / (2.0 * n)


class _SkipProblem:
    """The skip-connection QP as vectors: fit, trace and kink coefficients.

    The one source of these coefficients for the full QP (:class:`_ChainQP`,
    and its sparse reference form :func:`_build_skip`), the segment QPs and
    the full problem's optimality check.
    """

    def __init__(self, z, m, ybar, n, tau, lam_kink, value_offset=0.0, value_unit=1.0):
        N = z.shape[0]
        self.N, self.n, self.z, self.m = N, n, z, m
        self.value_offset = value_offset
        self.value_unit = value_unit
        self.g = np.diff(z)
        self.h_f = m / n
        self.c_f = -m * ybar / n
        gap_c, left_c, right_c = _trace_coefficients(m, n, tau)
        self.c_U = gap_c.copy()
        self.c_U[0] += left_c
        self.c_U[-1] += right_c
        # l1 weight of the kink on each point (the extreme points have none)
        self.lam = np.zeros(N)
        self.lam[1:-1] = lam_kink[1:-1]
        self.c_scale = (max(float(np.max(np.abs(self.c_f))), float(np.max(np.abs(self.c_U))))
                        + float(np.max(self.lam)) + 1e-300)
        # scale of the kink multipliers nu, whose box is |nu| <= lam: c_scale
        # without the fit coefficients. A box violation is measured against it:
        # with DSM at small noise c_f (targets ~ 1/sigma) dwarfs lam, and
        # violations of 10 lam passed as 1e-10 "relative" (the kink-free line
        # was certified 30 times above the optimum).
        box = float(np.max(self.lam)) + float(np.max(np.abs(self.c_U)))
        self.box_scale = box if box > 0 else self.c_scale


def _build_skip(prob):
    """Skip connection, the full QP of a :class:`_SkipProblem` as a sparse :class:`_QP`.

    Variables ``f_1..f_N`` then ``U_1..U_{N-1}``. The solver uses the vector
    form :class:`_ChainQP`; this general form is the reference it is checked
    against (the same program through :class:`_BandedKKT`).

    The outer slopes equal the neighbouring gap slopes at the optimum (a kink
    on an extreme point only gains trace when ``alpha`` is below the bound),
    so they are not variables.
    """
    N = prob.N
    qp = _QP(N + (N - 1), prob.value_offset, prob.value_unit)
    f = np.arange(N)
    U = N + np.arange(N - 1)
    qp.h[f] = prob.h_f
    qp.c[f] = prob.c_f
    qp.c[U] = prob.c_U
    qp.x_key[f] = np.arange(N)
    qp.x_key[U] = np.arange(N - 1) + 0.5
    k = np.arange(N - 1)
    qp.add_equalities([(f[k + 1], 1.0), (f[k], -1.0), (U[k], -prob.g)], k + 0.5)
    i = np.arange(1, N - 1)  # interior kinks: delta_i = U_i - U_{i-1}
    kept = qp.add_l1([(U[i], 1.0), (U[i - 1], -1.0)], prob.lam[i])
    return qp.finalize(), {"f": f, "U": U, "kink_points": i, "kept": kept}


class _Operator:
    """A linear map applied with ``@`` (the chain QP's matrices, never stored)."""

    __slots__ = ("_apply",)

    def __init__(self, apply):
        self._apply = apply

    def __matmul__(self, v):
        return self._apply(v)


class _ChainQP:
    r"""The full skip QP of a :class:`_SkipProblem` in vector form.

    Variables ``x = (f_1..f_N, U_1..U_{N-1})``.

    The same program as :func:`_build_skip` (its sparse form), with the
    matrices applied by differences instead of stored: ``E x = diff(f) - g U``
    and ``M x = diff(U)`` on the interior points with a positive weight. The
    interior point method pairs it with :class:`_ChainKKT`, which assembles
    the reduced Newton matrix directly in band form.
    """

    def __init__(self, prob):
        N = prob.N
        self.N, self.g, self.h_f = N, prob.g, prob.h_f
        self.value_offset = prob.value_offset
        self.value_unit = prob.value_unit
        self.n_var, self.n_eq = 2 * N - 1, N - 1
        self.h = np.concatenate([prob.h_f, np.zeros(N - 1)])
        self.c = np.concatenate([prob.c_f, prob.c_U])
        self.e = np.zeros(N - 1)
        lam_interior = prob.lam[1:-1]
        # kink rows: interior point i (1..N-2) is row kept[l] + 1; zero weights have none
        self.kept = np.flatnonzero(lam_interior > 0)
        self._every_kink = self.kept.size == N - 2
        self.lam = lam_interior[self.kept]
        self.n_l1 = self.kept.size
        self.E = _Operator(self._E)
        self.M = _Operator(self._M)

    def _E(self, x):
        N = self.N
        out = np.subtract(x[1:N], x[: N - 1])
        out -= self.g * x[N:]
        return out

    def kinks(self, U):
        """``U_i - U_{i-1}`` on the kink rows."""
        kink = np.subtract(U[1:], U[:-1])
        return kink if self._every_kink else kink[self.kept]

    def _M(self, x):
        return self.kinks(x[self.N:])

    def on_points(self, v):
        """A vector on the kink rows, spread over the interior points (zeros elsewhere)."""
        if self._every_kink:
            return v
        full = np.zeros(self.N - 2)
        full[self.kept] = v
        return full

    def adjoint(self, y, nu):
        """``E^T y + M^T nu`` in one pass."""
        N = self.N
        out = np.empty(self.n_var)
        # D^T y on the values (y_{-1} = y_{N-1} = 0), -g y on the slopes
        out[0] = -y[0]
        np.subtract(y[:-1], y[1:], out=out[1 : N - 1])
        out[N - 1] = y[-1]
        np.multiply(self.g, y, out=out[N:])
        np.negative(out[N:], out=out[N:])
        self.add_kink_adjoint(nu, out[N:])
        return out

    def adjoint_size(self, y, nu):
        """``|E|^T |y| + |M|^T |nu|``: the size of the terms summed in :meth:`adjoint`."""
        N = self.N
        ay = np.abs(y)
        out = np.zeros(self.n_var)
        out[: N - 1] = ay
        out[1:N] += ay
        np.multiply(self.g, ay, out=out[N:])
        anu = self.on_points(np.abs(nu))
        out[N + 1 :] += anu
        out[N:-1] += anu
        return out

    def add_kink_adjoint(self, nu, out_U):
        """``out_U += M_U^T nu``.

        The kink ``U_i - U_{i-1}`` adds its ``nu`` to ``U_i`` and takes it from ``U_{i-1}``.
        """
        nu = self.on_points(nu)
        out_U[1:] += nu
        out_U[:-1] -= nu


def _build_segments(prob, knots):
    r"""The skip QP with kinks allowed only on ``knots`` (sorted interior points).

    Segment ``s`` runs from knot ``t_s`` up to, not including, ``t_{s+1}`` (the
    first from point 0, the last to point ``N - 1``). On it the score is a line,
    parametrised by its value ``a_s`` at the segment's weighted centroid
    ``c_s`` and its slope ``V_s``, so the fit is diagonal in ``(a_s, V_s)``;
    continuity at ``t_{s+1}`` reads
    ``a_s + V_s (z_t - c_s) - a_{s+1} - V_{s+1} (z_t - c_{s+1}) = 0`` (no
    ``1/gap``) and each knot costs ``lam_t |V_{s+1} - V_s|``. With every
    interior point a knot this is the full skip QP.
    """
    N, n, z, m = prob.N, prob.n, prob.z, prob.m
    starts = np.concatenate([[0], knots])
    S = starts.shape[0]
    seg = np.repeat(np.arange(S), np.diff(np.append(starts, N)))
    mass = np.add.reduceat(m, starts)
    # offsets from the centroid, accurate to the segment's width rather than
    # to |z|: the fit is diagonal only if sum m d = 0, and a slope V of up to
    # ~1e10 (near the bound) multiplies what is left of it
    d = z - z[starts][seg]
    for _ in range(2):
        d -= (np.add.reduceat(m * d, starts) / mass)[seg]
    # no value_offset: a segment QP is one step of the working set, whose answer
    # _full_certificate measures against the program's value; its own gap,
    # relative to the QP's value, is the stricter one for DSM at moderate noise
    # (measured against the program's, n = 1e6 took 6 rounds and 1354 knots, not 4 and 354)
    qp = _QP(2 * S, value_unit=prob.value_unit)
    a = np.arange(S)
    V = S + a
    qp.h[a] = mass / n
    qp.h[V] = np.add.reduceat(m * d * d, starts) / n
    qp.c[a] = np.add.reduceat(prob.c_f, starts)
    qp.c[V] = np.add.reduceat(prob.c_f * d, starts) + np.add.reduceat(
        np.append(prob.c_U, 0.0), starts)
    qp.x_key[a] = a
    qp.x_key[V] = a
    s = np.arange(S - 1)
    # z_t - c_s and z_t - c_{s+1}, written with the same offsets as the values
    qp.add_equalities(
        [(a[s], 1.0), (V[s], d[knots - 1] + prob.g[knots - 1]), (a[s + 1], -1.0),
         (V[s + 1], -d[knots])],
        s + 0.5,
    )
    kept = qp.add_l1([(V[s + 1], 1.0), (V[s], -1.0)], prob.lam[knots])
    return qp.finalize(), {"a": a, "V": V, "seg": seg, "d": d, "kept": kept}


def _expand_segments(x, info):
    """A segment QP's point (:func:`_build_segments`) as values ``f`` and gap slopes ``U``."""
    a, V = x[info["a"]], x[info["V"]]
    seg = info["seg"]
    return a[seg] + V[seg] * info["d"], V[seg[:-1]]


def _full_certificate(prob, knots, f, U, w, nu_knots):
    r"""Relative KKT residual of the full skip QP at a segment QP's solution.

    ``f, U`` are the full primal point, ``w`` the segment QP's continuity
    multipliers and ``nu_knots`` its l1 multipliers on ``knots`` (zero where a
    knot is unpenalised). The full multipliers follow from stationarity:
    ``y_k = y_{k-1} - (h_k f_k + c_k)`` for the chain equalities and
    ``nu_{j+1} = nu_j - (c_{U,j} + g_j y_j)`` for the kinks, each running sum
    restarted at every knot from the segment QP's multipliers there (the
    equality into knot ``t`` is minus continuity row, so ``y_{t-1} = -w``), so
    errors do not accumulate across segments. The residuals are then
    evaluated directly, with the definitions of the interior point method
    (module docstring): box violations ``(|nu_j| - lam_j)_+`` count as dual
    residual and the slacks are ``(Mx)_+, (Mx)_-``.

    Returns ``(res_primal, res_dual, res_gap, primal, y, nu, excess)``: the
    full multipliers (``nu`` on every point, zero on the extremes) and the
    box violation ``excess = (|nu_j| - lam_j)_+``. ``primal`` is summed in
    float64, enough for the gap's scale; :func:`_skip_value` is the value to
    report.
    """
    N, g, h_f, c_f, c_U, lam = prob.N, prob.g, prob.h_f, prob.c_f, prob.c_U, prob.lam
    starts = np.concatenate([[0], knots])
    seg_len = np.diff(np.append(starts, N))
    # y on gaps 0..N-2, restarted at each segment from y_{start - 1}
    t = h_f * f + c_f
    T = prefix_sums(t)
    T_before = np.concatenate([np.zeros(1, dtype=np.longdouble), T[knots - 1]])
    y_anchor = np.concatenate([[0.0], -w])
    y = (np.repeat(y_anchor + T_before, seg_len) - T)[:-1].astype(np.float64)
    y[knots - 1] = -w
    # kink multipliers on points 0..N-1, restarted at each knot
    v = c_U + g * y
    # Vs[j] = sum_{k<j} v_k
    Vs = np.concatenate([np.zeros(1, dtype=np.longdouble), prefix_sums(v)])
    nu_anchor = np.concatenate([[0.0], nu_knots]).astype(np.longdouble)
    nu = (np.repeat(nu_anchor + Vs[starts], seg_len) - Vs).astype(np.float64)
    nu[0] = 0.0
    nu[-1] = 0.0
    # residuals
    y_full = np.concatenate([[0.0], y, [0.0]])
    r_f = t - y_full[:-1] + y_full[1:]
    r_U = v - nu[:-1] + nu[1:]
    r_e = np.diff(f) - g * U
    kink = np.zeros(N)
    kink[1:-1] = np.diff(U)
    excess = np.maximum(np.abs(nu) - lam, 0.0)
    comp = float(np.maximum(kink, 0.0) @ np.maximum(lam + nu, 0.0)
                 + np.maximum(-kink, 0.0) @ np.maximum(lam - nu, 0.0))
    # in float64: here the value only scales the gap; the value a caller returns is
    # summed by _skip_value, in extended precision (68 ms at n = 1e6, per call)
    primal = float(sum(np.dot(a, b) for a, b in _skip_value_terms(prob, f, U, kink)))
    x_scale = 1.0 + max(float(np.max(np.abs(f))), float(np.max(np.abs(U))))
    res_primal = float(np.max(np.abs(r_e))) / x_scale
    res_dual = max(max(float(np.max(np.abs(r_f))), float(np.max(np.abs(r_U)))) / prob.c_scale,
                   float(np.max(excess)) / prob.box_scale)
    # what the stationarity residuals add to the duality gap, as in the interior point
    comp += float(np.abs(f) @ np.abs(r_f) + np.abs(U) @ np.abs(r_U))
    res_gap = comp / (prob.value_unit + abs(primal + prob.value_offset))
    return res_primal, res_dual, res_gap, primal, y, nu, excess


def _skip_value_terms(prob, f, U, kink):
    """The skip QP's value at ``(f, U)`` as pairs ``(a, b)`` to sum ``a . b`` over."""
    return (0.5 * prob.h_f * f, f), (prob.c_f, f), (prob.c_U, U), (prob.lam, np.abs(kink))


def _skip_value(prob, f, U):
    """The skip QP's value at ``(f, U)``, summed in extended precision (:func:`extended_sum`)."""
    kink = np.zeros(prob.N)
    kink[1:-1] = np.diff(U)
    return extended_sum(*_skip_value_terms(prob, f, U, kink))


def _inactive_knots(lam, nu, kink):
    """Knots whose kink an interior point method would zero, by its two slacks.

    On the central path ``|kink| (lam - |nu|) ~ mu`` on every knot, so the
    relative dual slack ``1 - |nu|/lam`` alone separates active from inactive
    knots only once ``mu`` is far below the kinks' scale; it is compared with
    the relative kink ``|kink| / max|kink|`` instead (and must exceed
    ``1e-6``). Only a proposal: the caller certifies what it does with it.
    """
    slack = 1.0 - np.abs(nu) / np.where(lam > 0, lam, 1.0)
    size = np.abs(kink) / max(float(np.max(np.abs(kink), initial=0.0)), 1e-300)
    return (lam > 0) & (slack > np.maximum(size, 1e-6))


def _solve_skip_working_set(prob, tol, max_iter, verbose, slope_unit, max_fraction=0.125,
                            max_rounds=40):
    """Solve the skip QP with kinks restricted to a growing working set of knots.

    Starts from no knot (the kink-free line, in closed form), and after each
    segment QP checks the full problem (:func:`_full_certificate`): certified
    means certified for the full QP. Otherwise violators are added
    (:func:`~skconvexscore._univariate_atoms.select_spread`, about twice the
    current set per round). Once certified, knots whose multiplier proves them inactive are dropped and the smaller
    set is solved and certified again, so that every kink returned is
    active. Returns ``None`` when the set would exceed ``max_fraction`` of
    the points (a dense solution: the full IPM is cheaper) or when the
    segment QPs cannot certify the full problem.
    """
    N, lam = prob.N, prob.lam
    fallback_width = _near_duplicate_width(prob.g, slope_unit)
    knots = np.zeros(0, dtype=np.int64)
    total_iter, inner_tol, best = 0, tol, None
    for rounds in range(1, max_rounds + 1):
        qp, info = _build_segments(prob, knots)
        if knots.size == 0:
            x = -qp.c / qp.h
            w = nu_r = np.zeros(0)
        else:
            try:
                x, w, nu_r, n_it, *_ = _interior_point(
                    qp, inner_tol, max_iter, False, slope_unit, c_scale=prob.c_scale,
                    fallback_width=fallback_width)
            except SolverError:
                return best
            total_iter += n_it
        f, U = _expand_segments(x, info)
        nu_knots = np.zeros(knots.size)
        nu_knots[info["kept"]] = nu_r
        res_p, res_d, res_g, primal, y, nu, excess = _full_certificate(prob, knots, f, U, w,
                                                                       nu_knots)
        if verbose:
            print(f"working set round {rounds}: {knots.size} knots, {total_iter} ipm iterations, "
                  f"P={primal: .10e}  primal={res_p:.2e}  dual={res_d:.2e}  gap={res_g:.2e}  "
                  f"max violation={float(np.max(excess)) / prob.box_scale:.2e}")
        if max(res_p, res_d, res_g) <= tol:
            result = {"f": f, "U": U, "y": y, "nu": nu, "primal": _skip_value(prob, f, U),
                      "gap": res_g, "res": max(res_p, res_d), "n_iter": total_iter,
                      "rounds": rounds, "knots": knots, "nu_knots": nu_knots}
            inactive = _inactive_knots(lam[knots], nu_knots, U[knots] - U[knots - 1])
            if best is not None or not inactive.any():
                return result
            best = result
            knots = knots[~inactive]
            continue
        if knots.size >= 256 and np.count_nonzero(excess) > 0.9 * N:
            # hundreds of well-spread knots barely helped: the solution is
            # dense (near the bound most points are kinks), the full IPM wins
            return best
        # violations below this pass the certificate's dual test on their own
        floor = 0.1 * tol * prob.box_scale
        new = select_spread(excess, knots, max(min(256, N // 32), 8, 2 * knots.size), floor)
        if new.size == 0:
            # no violator, but not certified: the segment QP was not accurate enough
            if inner_tol < tol:
                return best
            inner_tol = 0.01 * tol
            continue
        if knots.size + new.size > max(max_fraction * N, 64):
            return best
        knots = np.union1d(knots, new)
    return best


def _build_relu_noskip(z, m, ybar, n, tau, lam, value_offset=0.0, value_unit=1.0):
    r"""ReLU without skip connection: ``s = F + R``.

    ``F`` (forward atoms) vanishes left of the data, ``R`` (reversed atoms)
    right of it. Variables: values ``f, F_2..F_N, R_1..R_{N-1}`` and slopes
    ``P_1..P_{N-1}`` of ``F`` and ``Q_1..Q_{N-1}`` of ``R`` on the gaps. The
    forward atom on the last point and the reversed atom on the first have
    zero columns; they are zero at the optimum when the program is bounded, so
    ``P_N = P_{N-1}`` and ``Q_0 = Q_1``.
    """
    N = z.shape[0]
    g = np.diff(z)
    n_var = N + 4 * (N - 1)
    qp = _QP(n_var, value_offset, value_unit)
    f = np.arange(N)
    F = N + np.arange(N - 1)  # F_2..F_N   (F[j] is F_{j+2})
    R = F[-1] + 1 + np.arange(N - 1)  # R_1..R_{N-1}
    P = R[-1] + 1 + np.arange(N - 1)  # P_1..P_{N-1}
    Q = P[-1] + 1 + np.arange(N - 1)  # Q_1..Q_{N-1}
    qp.h[f] = m / n
    qp.c[f] = -m * ybar / n
    gap_c, left_c, right_c = _trace_coefficients(m, n, tau)
    qp.c[P] = gap_c
    qp.c[Q] = gap_c
    qp.c[P[-1]] += right_c
    qp.c[Q[0]] += left_c
    k = np.arange(N - 1)
    qp.x_key[f] = np.arange(N)
    qp.x_key[F] = np.arange(1, N)
    qp.x_key[R] = np.arange(N - 1)
    qp.x_key[P] = k + 0.5
    qp.x_key[Q] = k + 0.5
    # f_i = F_i + R_i (F_1 = 0, R_N = 0)
    i = np.arange(N)
    has_F, has_R = i >= 1, i <= N - 2
    cols_vals = [(f, 1.0)]
    Fi = np.where(has_F, F[np.maximum(i - 1, 0)], 0)
    Ri = np.where(has_R, R[np.minimum(i, N - 2)], 0)
    cols_vals.append((Fi, np.where(has_F, -1.0, 0.0)))
    cols_vals.append((Ri, np.where(has_R, -1.0, 0.0)))
    qp.add_equalities(cols_vals, i.astype(np.float64))
    # F_{k+1} - F_k - g_k P_k = 0, R_{k+1} - R_k - g_k Q_k = 0 (k = 1..N-1)
    Fk = np.where(k >= 1, F[np.maximum(k - 1, 0)], 0)
    qp.add_equalities(
        [(F[k], 1.0), (Fk, np.where(k >= 1, -1.0, 0.0)), (P[k], -g)], k + 0.5
    )
    Rk1 = np.where(k + 1 <= N - 2, R[np.minimum(k + 1, N - 2)], 0)
    qp.add_equalities(
        [(Rk1, np.where(k + 1 <= N - 2, 1.0, 0.0)), (R[k], -1.0), (Q[k], -g)], k + 0.5
    )
    # forward kinks u_i, i = 1..N-1 (u_N = 0): P_1, P_i - P_{i-1}
    ii = np.arange(N - 1)
    prev_ok = ii >= 1
    P_prev = np.where(prev_ok, P[np.maximum(ii - 1, 0)], 0)
    kept_f = qp.add_l1([(P[ii], 1.0), (P_prev, np.where(prev_ok, -1.0, 0.0))], lam[: N - 1])
    # reversed kinks w_i, i = 2..N (w_1 = 0): Q_i - Q_{i-1}, Q_N = 0
    jj = np.arange(1, N)  # 0-based point index
    nxt_ok = jj <= N - 2
    Q_next = np.where(nxt_ok, Q[np.minimum(jj, N - 2)], 0)
    kept_r = qp.add_l1([(Q_next, np.where(nxt_ok, 1.0, 0.0)), (Q[jj - 1], -1.0)], lam[1:])
    return qp.finalize(), {"f": f, "P": P, "Q": Q, "kept_fwd": kept_f, "kept_rev": kept_r}


def _build_abs_noskip(z, m, ybar, n, tau, lam, value_offset=0.0, value_unit=1.0):
    r"""Absolute value without skip connection, as a chain closed by one end condition.

    ``s(x) = sum_j u_j |x - z_j|`` is the continuous piecewise-linear score
    with kinks ``2 u_j`` on the points, opposite outer slopes ``U_N = -U_0 =
    sum_j u_j``, and value ``f_1 = sum_j u_j (z_j - z_1)`` at the first point.
    Summation by parts gives ``sum_j 2 u_j (z_j - z_1) = U_N (z_N - z_1) -
    (f_N - f_1)``, so the value condition is ``f_1 + f_N + (z_N - z_1) U_0 =
    0``; conversely every such function is a sum of absolute-value atoms.

    Variables: values ``f_1..f_N``, gap slopes ``U_1..U_{N-1}`` (the skip QP's
    chain, :func:`_build_skip`) and the outer slope ``U_0``. Kinks on every
    point, the extremes included (``U_1 - U_0`` and ``-U_0 - U_{N-1}``), cost
    ``lam / 2`` (``lam |u| = lam/2 |2u|``); the outer slopes' trace is
    ``(m_1 - m_N) U_0 / (2n)``. The end condition couples the two ends of the
    chain, so the chain is folded -- each point placed by its distance from
    the nearer end -- and the reduced Newton matrix stays banded (half-width
    4). No ``1/g`` appears, as in the skip QP.
    """
    N = z.shape[0]
    g = np.diff(z)
    qp = _QP(2 * N, value_offset, value_unit)
    f = np.arange(N)
    U = N + np.arange(N - 1)
    U0 = 2 * N - 1
    gap_c, left_c, right_c = _trace_coefficients(m, n, tau)
    qp.h[f] = m / n
    qp.c[f] = -m * ybar / n
    qp.c[U] = gap_c
    qp.c[U0] = left_c - right_c
    i = np.arange(N)
    fold = 2.0 * np.minimum(i, N - 1 - i) + (i > (N - 1) / 2)
    k = np.arange(N - 1)
    gap_key = 0.5 * (fold[k] + fold[k + 1])
    qp.x_key[f] = fold
    qp.x_key[U] = gap_key
    qp.x_key[U0] = -1.0
    qp.add_equalities([(f[k + 1], 1.0), (f[k], -1.0), (U[k], -g)], gap_key)
    qp.add_equalities([(f[:1], 1.0), (f[-1:], 1.0), (np.array([U0]), z[-1] - z[0])],
                      np.array([-0.5]))
    # kink on point i: (slope right of it) - (slope left of it), U_N = -U_0
    right = np.append(U, U0)
    right_sign = np.append(np.ones(N - 1), -1.0)
    left = np.insert(U, 0, U0)
    kept = qp.add_l1([(right, right_sign), (left, -1.0)], lam / 2.0)
    return qp.finalize(), {"U": U, "U0": U0, "kept": kept}


# --------------------------------------------------------------------------
# Interior point method on the banded QP
# --------------------------------------------------------------------------


class _BandedKKT:
    """Reduced Newton matrix ``[[H_q + M_q^T W M_q, E_q^T], [E_q, -T]]`` in banded form.

    ``p`` variables (positive curvature, no l1 term) and the l1 multipliers are
    eliminated (both blocks are diagonal); ``T = E_p H_p^{-1} E_p^T`` is fixed.
    Everything that does not depend on the weights ``W`` is assembled once:
    the constant part of the band, and a sparse map from ``W`` to the band
    entries it touches, so an iteration costs one sparse product, one LAPACK
    ``gbtrf`` and two ``gbtrs``.
    """

    def __init__(self, qp):
        self.qp = qp
        M = qp.M.tocsc()
        in_l1 = np.diff(M.indptr) > 0
        self.p = np.flatnonzero((qp.h > 0) & ~in_l1)
        self.q = np.flatnonzero(~((qp.h > 0) & ~in_l1))
        nq, ne = self.q.shape[0], qp.n_eq
        size = nq + ne
        keys = np.concatenate([qp.x_key[self.q], qp.e_key])
        kinds = np.concatenate([np.zeros(nq), np.ones(ne)])
        order = np.lexsort((kinds, keys))
        position = np.empty(size, dtype=np.int64)
        position[order] = np.arange(size)
        self.pos_q, self.pos_e = position[:nq], position[nq:]
        self.size = size
        # operators used in every iteration, as CSR (transposes materialised)
        self.E = qp.E.tocsr()
        self.ET = qp.E.T.tocsr()
        self.M = qp.M.tocsr()
        self.MT = qp.M.T.tocsr()
        self._abs_ET, self._abs_MT = abs(self.ET), abs(self.MT)
        Ep = qp.E[:, self.p].tocsr()
        self.Ep = Ep
        self.EpT = Ep.T.tocsr()
        self.hp_inv = 1.0 / qp.h[self.p]
        Eq = qp.E[:, self.q].tocoo()
        T = (Ep @ sp.diags(self.hp_inv) @ Ep.T).tocoo()
        # fixed entries: E_q and E_q^T, -T, H_q
        rows = [self.pos_e[Eq.row], self.pos_q[Eq.col], self.pos_e[T.row], self.pos_q]
        cols = [self.pos_q[Eq.col], self.pos_e[Eq.row], self.pos_e[T.col], self.pos_q]
        vals = [Eq.data, Eq.data, -T.data, qp.h[self.q]]
        # variable entries: M_q^T diag(w) M_q, one (l, i, j) triple per product term
        Mq = qp.M[:, self.q].tocsr()
        Mq.sort_indices()
        lr, li, lj, lv = [], [], [], []
        counts = np.diff(Mq.indptr)
        for a in range(counts.max(initial=0)):
            for b in range(counts.max(initial=0)):
                r = np.flatnonzero(counts > max(a, b))
                ia = Mq.indptr[r] + a
                ib = Mq.indptr[r] + b
                lr.append(r)
                li.append(self.pos_q[Mq.indices[ia]])
                lj.append(self.pos_q[Mq.indices[ib]])
                lv.append(Mq.data[ia] * Mq.data[ib])
        l_row = np.concatenate(lr) if lr else np.zeros(0, dtype=np.int64)
        l_i = np.concatenate(li) if li else np.zeros(0, dtype=np.int64)
        l_j = np.concatenate(lj) if lj else np.zeros(0, dtype=np.int64)
        l_v = np.concatenate(lv) if lv else np.zeros(0)
        fr, fc = np.concatenate(rows), np.concatenate(cols)
        all_r = np.concatenate([fr, l_i])
        all_c = np.concatenate([fc, l_j])
        diff = all_r - all_c
        self.kl = int(max(diff.max(initial=0), 0))
        self.ku = int(max(-diff.min(initial=0), 0))
        self.ldab = 2 * self.kl + self.ku + 1
        band = self.kl + self.ku
        # flat index into the Fortran-ordered (ldab, size) band array
        fixed_flat = (band + fr - fc) + self.ldab * fc
        self.band0 = np.bincount(fixed_flat, weights=np.concatenate(vals),
                                 minlength=self.ldab * size)
        var_flat = (band + l_i - l_j) + self.ldab * l_j
        self.var_pos, inverse = np.unique(var_flat, return_inverse=True)
        self.var_map = sp.csr_matrix((l_v, (inverse.ravel(), l_row)),
                                     shape=(self.var_pos.shape[0], qp.n_l1))
        self._ab = None

    def adjoint(self, y, nu):
        """``E^T y + M^T nu``."""
        return self.ET @ y + self.MT @ nu

    def adjoint_size(self, y, nu):
        """``|E|^T |y| + |M|^T |nu|``: the size of the terms summed in :meth:`adjoint`."""
        return self._abs_ET @ np.abs(y) + self._abs_MT @ np.abs(nu)

    def factorize(self, w):
        # one band buffer, factorised in place: a fresh ~100 MB array per
        # iteration (n = 1e6) costs its page faults every time
        if self._ab is None:
            self._ab = np.empty_like(self.band0)
        ab = self._ab
        np.copyto(ab, self.band0)
        ab[self.var_pos] += self.var_map @ w
        ab = ab.reshape((self.ldab, self.size), order="F")
        lu, piv, info = lapack.dgbtrf(ab, self.kl, self.ku, overwrite_ab=1)
        if info != 0:
            raise SolverError(f"the Newton system is singular (LAPACK gbtrf info={info}).")
        self._lu, self._piv, self._w = lu, piv, w

    def solve(self, rho_x, rho_e, rho_m):
        """Newton step ``(dx, dy_tilde, dnu_tilde)`` for right-hand sides ``rho``."""
        w = self._w
        rx = rho_x + self.MT @ (w * rho_m)
        rxp = rx[self.p] * self.hp_inv
        rhs = np.empty(self.size)
        rhs[self.pos_q] = rx[self.q]
        rhs[self.pos_e] = rho_e - self.Ep @ rxp
        sol, info = lapack.dgbtrs(self._lu, self.kl, self.ku, rhs, self._piv, overwrite_b=1)
        if info != 0:
            raise SolverError(f"banded solve failed (LAPACK gbtrs info={info}).")
        dx = np.empty(self.qp.n_var)
        dx[self.q] = sol[self.pos_q]
        dy = sol[self.pos_e]
        dx[self.p] = rxp - (self.EpT @ dy) * self.hp_inv
        dnu = w * (self.M @ dx - rho_m)
        return dx, dy, dnu


class _ChainKKT:
    r"""The reduced Newton matrix of a :class:`_ChainQP`, assembled in band form.

    The values ``f`` (diagonal curvature ``h``) and the l1 multipliers are
    eliminated as in :class:`_BandedKKT`; what is left couples each slope
    ``U_k`` with its chain multiplier ``y_k`` (``-g_k``), its neighbouring
    slopes through the kink weights (``M^T W M``, tridiagonal) and ``y_k`` with
    ``y_{k+1}`` through ``T = D H^{-1} D^T``. Interleaved as
    ``y_0, U_0, y_1, U_1, ...`` it is pentadiagonal, so the band is written
    with strided slices, ``O(N)`` with no sparse matrix, and an iteration
    costs one ``gbtrf`` and two ``gbtrs`` plus a few vector passes. The same
    directions as :class:`_BandedKKT` on the sparse form (tested).
    """

    kl = ku = 2

    def __init__(self, qp):
        self.qp = qp
        self.E, self.M = qp.E, qp.M
        self.adjoint, self.adjoint_size = qp.adjoint, qp.adjoint_size
        g, h_f = qp.g, qp.h_f
        K = g.shape[0]
        self.size = 2 * K
        self.ldab = 2 * self.kl + self.ku + 1
        # row kl + ku + i - j of column j holds entry (i, j); rows 0, 1 are gbtrf's fill
        band0 = np.zeros((self.ldab, self.size), order="F")
        band0[4, 0::2] = -(1.0 / h_f[:-1] + 1.0 / h_f[1:])  # -T_kk
        band0[3, 1::2] = -g  # (y_k, U_k)
        band0[5, 0::2] = -g  # (U_k, y_k)
        band0[2, 2::2] = 1.0 / h_f[1:-1]  # (y_k, y_{k+1}) = -T_{k,k+1}
        band0[6, 0:-2:2] = 1.0 / h_f[1:-1]
        self.band0 = band0
        self._ab = np.empty_like(band0)
        self._w_points = np.zeros(K + 1)
        self._rhs = np.empty(self.size)
        self._inv_h = 1.0 / h_f

    def factorize(self, w):
        ab = self._ab
        np.copyto(ab, self.band0)
        # kink weights on points 0..N-1 (none on the extreme points)
        wp = self._w_points
        wp[1:-1] = self.qp.on_points(w)
        np.add(wp[:-1], wp[1:], out=ab[4, 1::2])
        np.negative(wp[1:-1], out=ab[2, 3::2])
        ab[6, 1:-2:2] = ab[2, 3::2]
        lu, piv, info = lapack.dgbtrf(ab, self.kl, self.ku, overwrite_ab=1)
        if info != 0:
            raise SolverError(f"the Newton system is singular (LAPACK gbtrf info={info}).")
        self._lu, self._piv, self._w = lu, piv, w

    def solve(self, rho_x, rho_e, rho_m):
        """Newton step ``(dx, dy_tilde, dnu_tilde)`` for right-hand sides ``rho``."""
        qp, N = self.qp, self.qp.N
        rhs = self._rhs
        # slopes: rho_U + M_U^T (w rho_m); values eliminated: rho_f / h
        rx_U = rhs[1::2]
        rx_U[...] = rho_x[N:]
        qp.add_kink_adjoint(self._w * rho_m, rx_U)
        rxp = rho_x[:N] * self._inv_h
        np.subtract(rho_e, rxp[1:], out=rhs[0::2])
        rhs[0::2] += rxp[:-1]
        # in place: the views of the solution below are copied before the next solve
        sol, info = lapack.dgbtrs(self._lu, self.kl, self.ku, rhs, self._piv, overwrite_b=1)
        if info != 0:
            raise SolverError(f"banded solve failed (LAPACK gbtrs info={info}).")
        dy = sol[0::2]
        dx = np.empty(qp.n_var)
        dx[N:] = sol[1::2]
        # values: (rho_f - D^T dy) / h, with D^T dy formed in place
        df = dx[:N]
        df[0] = -dy[0]
        np.subtract(dy[:-1], dy[1:], out=df[1:-1])
        df[-1] = dy[-1]
        df *= self._inv_h
        np.subtract(rxp, df, out=df)
        dnu = qp.kinks(dx[N:])
        dnu -= rho_m
        dnu *= self._w
        return dx, dy.copy(), dnu


def _stationarity_excess(r_x, hx, c, adjoint_size):
    r"""``|r_x|`` beyond the rounding error of evaluating ``r_x = h x + c - E^T y - M^T nu``.

    Entry by entry. Near the bound the fit terms ``h x`` and the multipliers
    (``adjoint_size``: ``|E|^T |y| + |M|^T |nu|``) can exceed ``c`` and
    ``lam`` by ten orders of magnitude, and the computed residual then stalls
    at a few ulps of them however exact the point is (``n = 1e6``, absolute
    value without skip connection: ``1.9e-8`` relative to ``c``). What a few
    roundings per entry can explain, ``8 eps (|h x| + |c| + adjoint_size)``,
    is not counted.
    """
    floor = np.abs(hx)
    floor += np.abs(c)
    floor += adjoint_size
    floor *= 8.0 * np.finfo(np.float64).eps
    return np.maximum(np.abs(r_x) - floor, 0.0)


def _max_step(v, dv):
    """Largest ``t <= 1`` with ``v + t dv >= 0`` (``v > 0``)."""
    ratio = dv / v
    worst = float(ratio.min(initial=0.0))
    return 1.0 if worst >= -1.0 else -1.0 / worst


def _initial_point(qp, kkt, width, shortcut=True):
    r"""Scale-aware interior starting point.

    The l1 terms are first replaced by a stiff quadratic ``rho/2 ||Mx||^2``
    (``rho = 1e8 max(lam)``): its minimiser over the equality constraints is,
    to ``O(1/rho)``, the kink-free solution (the Gaussian score with the skip
    connection, the least-squares line for DSM), and ``nu = -rho M x`` are that
    solution's l1 multipliers. If every ``|nu_l| <= lam_l`` the kink-free
    solution is optimal (``alpha >= alpha_G``): the method starts there with
    slacks at the size of its residual kinks and certifies in a few steps.

    Otherwise some kinks are active and the optimum can be far away: near the
    well-posedness bound the slopes grow like the inverse squared gaps (up to
    ``1e10`` in standardised units for ``n = 1e5``). The method then starts
    from ``x = 0`` with a wide split ``a = b = width`` and the l1
    multipliers at the centre of their box: a well-centred point with a large
    complementarity gap, from which the predictor-corrector shrinks the gap by
    a roughly constant factor per iteration whatever the scale of the
    solution (a narrow start forces many short steps while the slopes grow).
    """
    lam, nl = qp.lam, qp.lam.shape[0]
    if shortcut:
        kkt.factorize(np.full(nl, 1e8 * float(lam.max(initial=0.0))))
        x, yt, nut = kkt.solve(-qp.c, qp.e, np.zeros(nl))
        y, nu = -yt, -nut
        if np.all(np.isfinite(x)) and np.all(np.abs(nu) <= lam * (1.0 + 1e-6)):
            s = kkt.M @ x
            nu = np.clip(nu, -0.99 * lam, 0.99 * lam)
            size = float(np.mean(np.abs(s)))
            slack = np.abs(s) + (size if size > 0 else 1e-22 * width)
            a = np.maximum(s, 0.0) + slack
            b = np.maximum(-s, 0.0) + slack
            return x, y, nu, a, b, lam + nu, lam - nu
    x = np.zeros(qp.n_var)
    y = np.zeros(qp.n_eq)
    nu = np.zeros(nl)
    a = np.full(nl, width)
    b = a.copy()
    return x, y, nu, a, b, lam + nu, lam - nu


def _near_duplicate_width(gaps, slope_unit):
    r"""Start width for data whose smallest gap ``g`` is far below the typical one.

    Below the bound that merging near-duplicates would give (see
    :func:`_near_duplicate_hint`), the optimal slopes grow like ``1/g^2``,
    far beyond the ``N^2`` scale of the default start: from there the method
    crawls and stalls (5 points, three within ``2e-9`` of each other at
    ``alpha = 1.01/n``: slopes ``~1e17``). Capped at ``1e30`` slope units.
    """
    g = float(np.min(gaps))
    return min(1.0 / g**2, 1e30 * slope_unit) if g > 0 else 1e30 * slope_unit


def _interior_point(qp, tol, max_iter, verbose, slope_unit=1.0, c_scale=None,
                    kink_free_start=True, width=None, fallback_width=None):
    """Mehrotra predictor-corrector on the QP; returns the primal-dual point.

    ``kink_free_start=False`` skips the test of the kink-free solution (one
    factorisation) when the caller already knows it is not optimal.

    The wide start (see :func:`_initial_point`) is scaled with the number of
    points: slopes near the bound grow like ``n^2`` (inverse squared gaps),
    ``width = slope_unit * clip(N^2, 1e6, 1e12)`` (at ``n = 1e6``, ``alpha =
    2/n`` the cap ``1e10`` cost 28-30 iterations, ``N^2 = 1e12`` 24), unless
    the caller knows the scale of its slopes and passes ``width``. A very
    wide split costs absolute accuracy in ``M x = a - b`` while ``a, b`` are large; if that
    start fails to certify (or stalls), the method restarts without the
    kink-free shortcut, then from the narrow ``1e6 * slope_unit`` start (the
    previous default), then from ``fallback_width`` when that is wider still
    (:func:`_near_duplicate_width`), before giving up.

    BLAS is held to one thread: every vector here is touched by O(1)-flop
    kernels (dot products, banded solves with bandwidth 2-6), for which
    OpenBLAS threading only adds synchronisation -- up to 3x slower on a
    loaded machine.
    """
    n_points = qp.n_l1 + 2
    wide = slope_unit * min(max(float(n_points) ** 2, 1e6), 1e12) if width is None else width
    starts = [(wide, True), (wide, False)] if kink_free_start else [(wide, False)]
    if wide > 1e6 * slope_unit:
        starts.append((1e6 * slope_unit, False))
    if fallback_width is not None and fallback_width > wide:
        starts.append((fallback_width, False))
    with threadpool_limits(limits=1, user_api="blas"):
        kkt = _ChainKKT(qp) if isinstance(qp, _ChainQP) else _BandedKKT(qp)
        for attempt, (start_width, shortcut) in enumerate(starts):
            try:
                return _interior_point_loop(qp, kkt, tol, max_iter, verbose, start_width,
                                            shortcut, c_scale)
            except SolverError:
                if attempt == len(starts) - 1:
                    raise
                if verbose:
                    print("ipm: restarting from another start")


def _interior_point_loop(qp, kkt, tol, max_iter, verbose, width, shortcut, c_scale=None):
    lam, h, c = qp.lam, qp.h, qp.c
    E, M = kkt.E, kkt.M
    nl = lam.shape[0]
    if nl:
        x, y, nu, a, b, za, zb = _initial_point(qp, kkt, width, shortcut)
    else:
        x, y, nu = np.zeros(qp.n_var), np.zeros(qp.n_eq), np.zeros(0)
        a = b = za = zb = np.zeros(0)
    if c_scale is None:
        c_scale = float(np.max(np.abs(c), initial=0.0)) + float(np.max(lam, initial=0.0)) + 1e-300
    history = []
    best, best_it = np.inf, 0
    for it in range(1, max_iter + 1):
        Mx = M @ x
        hx = h * x
        r_x = hx + c
        r_x -= kkt.adjoint(y, nu)
        r_e = E @ x - qp.e
        r_m = Mx - (a - b)
        r_a = lam + nu - za
        r_b = lam - nu - zb
        comp = float(a @ za + b @ zb)
        primal = 0.5 * float(h @ (x * x)) + float(c @ x) + float(lam @ np.abs(Mx))
        x_scale = 1.0 + float(np.max(np.abs(x), initial=0.0))
        res_primal = max(float(np.max(np.abs(r_e), initial=0.0)),
                         float(np.max(np.abs(r_m), initial=0.0))) / x_scale
        stationarity = _stationarity_excess(r_x, hx, c, kkt.adjoint_size(y, nu))
        res_dual = max(float(np.max(stationarity, initial=0.0)),
                       float(np.max(np.abs(r_a), initial=0.0)),
                       float(np.max(np.abs(r_b), initial=0.0))) / c_scale
        # P - D = complementarity + x . r_x: a tiny stationarity error on a slope of 1e9
        # (clusters 1e-9 wide) hid 1.3 % of the objective
        res_gap = ((comp + float(np.abs(x) @ stationarity))
                   / (qp.value_unit + abs(primal + qp.value_offset)))
        history.append((res_primal, res_dual, res_gap))
        if verbose:
            print(f"ipm {it:3d}  P={primal: .10e}  primal={res_primal:.2e}  "
                  f"dual={res_dual:.2e}  gap={res_gap:.2e}")
        if not (np.isfinite(primal) and np.isfinite(res_primal) and np.isfinite(res_dual)
                and np.isfinite(res_gap)):
            raise SolverError(
                f"the univariate interior point method broke down at iteration {it} "
                f"(non-finite residuals: the iterate overflowed); nothing certified is "
                f"returned. Rescale the data or merge near-duplicate points."
            )
        worst = max(res_primal, res_dual, res_gap)
        if worst <= tol:
            return x, y, nu, it, res_gap, max(res_primal, res_dual), history
        # stall: no halving of the worst residual in 25 iterations (lost accuracy)
        if worst < 0.5 * best:
            best, best_it = worst, it
        elif it - best_it >= 25:
            raise SolverError(
                f"the univariate interior point method stalled at iteration {it} (relative "
                f"primal residual {res_primal:.2e}, dual residual {res_dual:.2e}, gap "
                f"{res_gap:.2e}); the point is not certified."
            )
        comp_mu = comp / (2 * nl) if nl else 0.0
        ia, ib = 1.0 / za, 1.0 / zb
        S = a * ia + b * ib
        w = 1.0 / S
        kkt.factorize(w)
        neg_r_x, neg_r_e = -r_x, -r_e

        def direction(r_ca, r_cb):
            kappa = (r_ca - a * r_a) * ia - (r_cb - b * r_b) * ib
            dx, dyt, dnut = kkt.solve(neg_r_x, neg_r_e, kappa - r_m)
            dnu = -dnut
            dza = dnu + r_a
            dzb = r_b - dnu
            da = (r_ca - a * dza) * ia
            db = (r_cb - b * dzb) * ib
            return dx, -dyt, dnu, da, db, dza, dzb

        # predictor (affine scaling)
        aff = direction(-a * za, -b * zb)
        _, _, _, da, db, dza, dzb = aff
        step = min(_max_step(a, da), _max_step(b, db), _max_step(za, dza), _max_step(zb, dzb))
        mu_aff = float((a + step * da) @ (za + step * dza) + (b + step * db) @ (zb + step * dzb))
        sigma = min((mu_aff / comp) ** 3, 1.0) if comp > 0 else 0.0
        # corrector
        dx, dy, dnu, da, db, dza, dzb = direction(
            sigma * comp_mu - a * za - da * dza, sigma * comp_mu - b * zb - db * dzb
        )
        step = min(_max_step(a, da), _max_step(b, db), _max_step(za, dza), _max_step(zb, dzb))
        step = min(1.0, 0.995 * step)
        x += step * dx
        y += step * dy
        nu += step * dnu
        a += step * da
        b += step * db
        za += step * dza
        zb += step * dzb
    last = history[-1]
    raise SolverError(
        f"the univariate interior point method did not reach tol={tol:g} in {max_iter} "
        f"iterations (relative primal residual {last[0]:.2e}, dual residual {last[1]:.2e}, "
        f"gap {last[2]:.2e}); the point is not certified. Increase max_iter or tol."
    )


# --------------------------------------------------------------------------
# From the QP back to the atoms of the program
# --------------------------------------------------------------------------


def _place(coef, groups_first, groups_last, group_index, values, offset=0):
    """Put a merged kink coefficient on the tied atom with the best linear term.

    Linear terms decrease along a tie group, so a positive coefficient goes on
    the group's last atom and a negative one on its first (math notes 3.1).
    """
    target = np.where(values > 0, groups_last[group_index], groups_first[group_index])
    coef[offset + target] = values


def _inactive(n_kinks, kept, nu, lam, offset=0):
    """Kinks whose l1 multiplier is strictly inside ``(-lam, lam)``: zero at the optimum.

    ``kept`` maps the QP's l1 rows (``offset`` onwards) to kink numbers; kinks
    without a row (zero weight) are never rounded.
    """
    mask = np.zeros(n_kinks, dtype=bool)
    rows = offset + np.arange(kept.shape[0])
    mask[kept] = np.abs(nu[rows]) < (1.0 - 1e-6) * lam[rows]
    return mask


def _best_line(program, coef):
    """Optimal skip connection ``(v, c)`` for fixed atoms (closed form).

    The normal equations are solved about the points' mean, where they are
    diagonal: written in ``x`` itself they are singular to rounding far from
    zero (ten points near ``1e8``: numpy's "Singular matrix").
    """
    x = program.x
    g = program.evaluate(coef, 0.0, 0.0)
    centre = float(np.mean(x))
    xc = x - centre
    # DSM fits the residual targets; SM's line minimises 1/2 |g + line|^2 + n v
    rest = program.targets - g if program.objective == "dsm" else -g
    v = float(xc @ rest - (0.0 if program.objective == "dsm" else program.n)) / float(xc @ xc)
    return v, float(np.mean(rest)) - v * centre


def _qp_value(qp, x):
    return extended_sum((0.5 * qp.h * x, x), (qp.c, x), (qp.lam, np.abs(qp.M @ x)))


def _polish_active_set(prob, qp, nu, tol, max_rounds=12):
    r"""The exact, sparse optimum of the full skip QP from the IPM's active set, or None.

    An interior point leaves every kink nonzero: those whose multiplier is
    inside its box are ``O(mu)``, and zeroing them all at once moves the fit
    by more than ``tol`` (at ``n = 1e5``, ``alpha = 2/n``, 87 % of the kinks).
    Here the active set is read off the multipliers (``|nu| >= (1 - 1e-3)
    lam``, with the sign ``-sign(nu)``; unpenalised points are free knots)
    and, with those signs fixed, the l1 terms are linear: the skip QP
    restricted to these knots (:func:`_build_segments`) is an
    equality-constrained QP, solved by one banded factorisation. The full
    QP's certificate (:func:`_full_certificate`) then proves it optimal --
    every other multiplier inside its box, and the knots whose kink came out
    against its sign adding at most ``2 lam |kink|`` each to the duality gap.
    Otherwise a primal-dual active-set step follows, at most ``max_rounds``
    solves in all: violators are added with the sign of their multiplier, and
    knots of the wrong sign are dropped -- all but the cheapest, which are
    kept while their share of the gap stays below ``tol / 10``
    (:func:`_active_set_step`). Dropping
    every one of them makes the rounds cycle (from ``n = 3e5`` on, at ``alpha
    = 2/n``, a few near-degenerate kinks flip back and forth); with the
    budget the set settles in 2-5 solves at ``n = 1e5`` (80 draws) and 3-7
    at ``n = 1e6`` (7 draws; the last rounds move a few knots in the tails),
    with 13 % of the points as kinks. If it does not settle, the interior
    point's own certified point is returned, with every kink nonzero.
    """
    N, lam = prob.N, prob.lam
    nu_points = np.zeros(N)
    nu_points[1:-1] = qp.on_points(nu)
    interior = np.zeros(N, dtype=bool)
    interior[1:-1] = True
    free = interior & (lam == 0)
    active = interior & (lam > 0) & (np.abs(nu_points) >= (1.0 - 1e-3) * lam)
    knots = np.flatnonzero(active | free)
    sign = -np.sign(nu_points[knots])
    for _ in range(max_rounds):
        if knots.size == 0:
            return None
        seg, info = _build_segments(prob, knots)
        kept = info["kept"]
        penalty = lam[knots][kept] * sign[kept]
        kkt = _BandedKKT(seg)
        try:
            kkt.factorize(np.zeros(seg.n_l1))
        except SolverError:
            return None
        x, yt, _ = kkt.solve(-(seg.c + seg.M.T @ penalty), seg.e, np.zeros(seg.n_l1))
        f, U = _expand_segments(x, info)
        nu_knots = np.zeros(knots.size)
        nu_knots[kept] = -penalty
        res_p, res_d, res_g, primal, _, nu_full, excess = _full_certificate(
            prob, knots, f, U, -yt, nu_knots)
        if max(res_p, res_d, res_g) <= tol:
            return {"U": U, "knots": knots, "primal": _skip_value(prob, f, U), "gap": res_g,
                    "res": max(res_p, res_d)}
        knots, sign, _ = _active_set_step(
            knots, sign, U[knots] - U[knots - 1], lam, nu_full, excess,
            gap_budget=0.1 * tol * (prob.value_unit + abs(primal + prob.value_offset)),
            floor=0.1 * tol * prob.box_scale)
    return None


def _active_set_step(active, sign, kink, lam, nu, excess, gap_budget, floor):
    r"""One primal-dual active-set correction: the next active rows and their signs.

    ``active`` (sorted rows) carry the l1 term as the linear term ``sign lam``
    and ``kink`` is what the equality QP gave them; ``nu`` and ``excess =
    (|nu| - lam)_+`` are the multipliers on every row. Rows whose multiplier
    leaves its box by more than ``floor`` join with the sign ``-sign(nu)``.
    Active rows whose kink came out against its sign each add ``2 lam |kink|``
    to the duality gap; they leave, all but the cheapest, which stay while
    their share of the gap is below ``gap_budget``: dropping every one of
    them makes the rounds cycle (a few near-degenerate kinks flip back and
    forth). Also returns how many rows changed.
    """
    cost = np.where(kink * sign < 0, 2.0 * lam[active] * np.abs(kink), 0.0)
    order = np.argsort(cost)
    wrong = np.zeros(active.size, dtype=bool)
    wrong[order[np.cumsum(cost[order]) > gap_budget]] = True
    new = np.flatnonzero(excess > floor)
    active = np.concatenate([active[~wrong], new])
    sign = np.concatenate([sign[~wrong], -np.sign(nu[new])])
    order = np.argsort(active)
    return active[order], sign[order], int(np.count_nonzero(wrong)) + new.size


def _polish_banded(qp, nu, tol, max_rounds=12):
    r"""The exact, sparse optimum of a banded QP from its interior point's multipliers, or None.

    The counterpart of :func:`_polish_active_set` for the QP of the absolute
    value without skip connection (:func:`_build_abs_noskip`), on every
    variable: with the active l1 rows and their signs read off the
    multipliers (``|nu| >= (1 - 1e-3) lam``, sign ``-sign(nu)``), their terms
    are linear, the other rows are held at zero as equalities, and one banded
    solve (:class:`_BandedKKT`) gives a point whose multipliers make the
    stationarity conditions exact. It is certified with the interior point
    method's own measures (module docstring), the box violations ``(|nu| -
    lam)_+`` counting as dual residual relative to ``box_scale = max lam +
    max |c|`` over the variables without curvature; otherwise the set is
    corrected (:func:`_active_set_step`), at most ``max_rounds`` solves; it
    gives up when a correction after the first changes more than a tenth of
    the active rows (and more than 16), or when an active set comes back: in
    the runs that settled, the first
    correction added up to a quarter (close to the bound, where the multipliers
    of many active rows are still inside ``(1 - 1e-3) lam``), the later ones at
    most 3 %.

    Returns ``(x, zero, gap, res)`` with ``zero`` the rows held at zero.
    """
    lam, M, E = qp.lam, qp.M.tocsr(), qp.E.tocsr()
    nl = lam.shape[0]
    if nl == 0:
        return None
    absM = abs(M)
    row_key = (absM @ qp.x_key) / np.maximum(absM @ np.ones(qp.n_var), 1.0)
    c_scale = float(np.max(np.abs(qp.c), initial=0.0)) + float(np.max(lam))
    box = float(np.max(lam)) + float(np.max(np.abs(qp.c[qp.h == 0]), initial=0.0))
    active = np.flatnonzero(np.abs(nu) >= (1.0 - 1e-3) * lam)
    sign = -np.sign(nu[active])
    seen = set()
    for rounds in range(max_rounds):
        state = (active.tobytes(), sign.tobytes())
        if state in seen:
            return None  # the corrections cycle
        seen.add(state)
        held = np.ones(nl, dtype=bool)
        held[active] = False
        rows = np.flatnonzero(held)
        eq = _QP(qp.n_var, qp.value_offset, qp.value_unit)
        eq.h, eq.x_key = qp.h, qp.x_key
        eq.c = qp.c + M[active].T @ (sign * lam[active])
        eq.E = sp.vstack([E, M[rows]]).tocsr()
        eq.e = np.concatenate([qp.e, np.zeros(rows.size)])
        eq.e_key = np.concatenate([qp.e_key, row_key[rows]])
        eq.n_eq = eq.e.shape[0]
        eq.M, eq.lam = sp.csr_matrix((0, qp.n_var)), np.zeros(0)
        try:
            eq_kkt = _BandedKKT(eq)
            eq_kkt.factorize(np.zeros(0))
            x, yt, _ = eq_kkt.solve(-eq.c, eq.e, np.zeros(0))
        except SolverError:
            return None
        y = -yt[: qp.n_eq]
        nu = np.empty(nl)
        nu[rows] = -yt[qp.n_eq:]
        nu[active] = -sign * lam[active]
        hx = qp.h * x
        r_x = hx + qp.c - (E.T @ y + M.T @ nu)
        kink = M @ x
        excess = np.maximum(np.abs(nu) - lam, 0.0)
        comp = float(np.maximum(kink, 0.0) @ np.maximum(lam + nu, 0.0)
                     + np.maximum(-kink, 0.0) @ np.maximum(lam - nu, 0.0))
        primal = 0.5 * float(hx @ x) + float(qp.c @ x) + float(lam @ np.abs(kink))
        res_primal = (float(np.max(np.abs(E @ x - qp.e), initial=0.0))
                      / (1.0 + float(np.max(np.abs(x)))))
        adjoint_size = abs(E).T @ np.abs(y) + absM.T @ np.abs(nu)
        stationarity = _stationarity_excess(r_x, hx, qp.c, adjoint_size)
        res_dual = max(float(np.max(stationarity)) / c_scale, float(np.max(excess)) / box)
        res_gap = ((comp + float(np.abs(x) @ stationarity))
                   / (qp.value_unit + abs(primal + qp.value_offset)))
        if max(res_primal, res_dual, res_gap) <= tol:
            return x, held, res_gap, max(res_primal, res_dual)
        size = active.size
        active, sign, changed = _active_set_step(
            active, sign, kink[active], lam, nu, excess,
            gap_budget=0.1 * tol * (qp.value_unit + abs(primal + qp.value_offset)),
            floor=0.1 * tol * box)
        if rounds > 0 and changed > max(0.1 * size, 16):
            # the multipliers did not identify the active set (abs DSM at small alpha:
            # half the rows change, round after round): not worth more full solves
            return None
    return None


def _solve_skip(prob, tol, max_iter, verbose, slope_unit):
    """The skip QP: working set first, the full chain IPM when the solution is dense.

    Returns the kinks on every point (zero on the extremes), the mask of
    kinks proven inactive, the QP value and the solver's certificate.
    """
    N = prob.N
    ws = _solve_skip_working_set(prob, tol, max_iter, verbose, slope_unit)
    if ws is not None:
        U, knots = ws["U"], ws["knots"]
        zero = np.ones(N, dtype=bool)
        zero[knots] = _inactive_knots(prob.lam[knots], ws["nu_knots"], U[knots] - U[knots - 1])
        fit = {"n_iter": ws["n_iter"], "gap": ws["gap"], "res": ws["res"],
               "qp_value": ws["primal"],
               "ws_info": {"working_set": int(knots.size), "working_set_rounds": ws["rounds"]}}
    else:
        qp = _ChainQP(prob)
        # the working set's first round showed the kink-free line is not optimal
        x, _, nu, n_iter, gap, res, _ = _interior_point(
            qp, tol, max_iter, verbose, slope_unit, kink_free_start=False,
            fallback_width=_near_duplicate_width(prob.g, slope_unit))
        polished = _polish_active_set(prob, qp, nu, tol)
        if polished is not None:
            U = polished["U"]
            zero = np.ones(N, dtype=bool)
            zero[polished["knots"]] = False
            gap, res, value = polished["gap"], polished["res"], polished["primal"]
        else:
            U = x[N:]
            zero = np.zeros(N, dtype=bool)
            zero[1:-1] = _inactive(N - 2, qp.kept, nu, qp.lam)
            value = _qp_value(qp, x)
        fit = {"n_iter": n_iter, "gap": gap, "res": res, "qp_value": value,
               "ws_info": {"working_set": None, "working_set_rounds": 0,
                           "active_set_polished": polished is not None}}
    kinks = np.zeros(N)
    kinks[1:-1] = np.diff(U)
    fit.update(kinks=kinks, zero=zero)
    return fit


def _solve_relu_noskip(program, z, m, ybar, tau, lam, tol, max_iter, verbose, slope_unit):
    """ReLU without skip connection, the forward/reversed QP by the general banded IPM.

    Its interior point is not polished (:func:`_polish_banded`): where the skip
    program's optimum is its optimum too, the forward and reversed kinks of a
    point carry opposite multipliers, both rows read as active, and the
    equality QP is singular (``F = -R`` is free): 124 of 150 programs failed
    at the first factorisation.
    """
    N, n = z.shape[0], program.n
    qp, info = _build_relu_noskip(z, m, ybar, n, tau, lam, _value_offset(program),
                                  program.value_unit())
    x, _, nu, n_iter, gap, res, _ = _interior_point(
        qp, tol, max_iter, verbose, slope_unit,
        fallback_width=_near_duplicate_width(np.diff(z), slope_unit))
    u = np.diff(np.concatenate([[0.0], x[info["P"]]]))  # u_1..u_{N-1}
    w = np.diff(np.concatenate([x[info["Q"]], [0.0]]))  # w_2..w_N
    zero_u = _inactive(N - 1, info["kept_fwd"], nu, qp.lam)
    zero_w = _inactive(N - 1, info["kept_rev"], nu, qp.lam, offset=info["kept_fwd"].shape[0])
    placements = [(u, zero_u, np.arange(N - 1), 0), (w, zero_w, np.arange(1, N), n)]
    return {"n_iter": n_iter, "gap": gap, "res": res, "qp_value": _qp_value(qp, x),
            "placements": placements,
            "ws_info": {"working_set": None, "working_set_rounds": 0,
                        "active_set_polished": False}}


# Beyond this many l1 rows the rounds of _polish_banded (each a full banded QP built anew,
# about a tenth of the interior point) mostly do not settle near the bound, where a few
# dozen near-degenerate kinks keep flipping: abs without skip connection at alpha = 2/n
# failed after 12 rounds at n = 1e5 (normal and bimodal: 1.45 -> 3.35 s, 1.26 -> 2.45 s),
# 3e5 (4 s on a 3.8 s solve) and 1e6 (24 s on 18 s); at 5e4 it settled after 11.
_POLISH_MAX_ROWS = 50_000


def _solve_abs_noskip(program, z, m, ybar, tau, lam, tol, max_iter, verbose, slope_unit):
    """Absolute value without skip connection: the folded chain QP by the banded IPM.

    Its slopes near the bound grow faster than with a skip connection (about
    ``1e16`` in standardised units at ``n = 1e6``), so the wide start scales
    like ``N^3``: with ``N^2`` the first iterations crawl and at ``n = 1e6``
    the method stalled. Up to ``_POLISH_MAX_ROWS`` kinks its answer is then
    polished to the exact sparse optimum (:func:`_polish_banded`).
    """
    N = z.shape[0]
    qp, info = _build_abs_noskip(z, m, ybar, program.n, tau, lam, _value_offset(program),
                                 program.value_unit())
    width = slope_unit * min(max(float(N) ** 3, 1e6), 1e18)
    x, _, nu, n_iter, gap, res, _ = _interior_point(
        qp, tol, max_iter, verbose, slope_unit, width=width,
        fallback_width=_near_duplicate_width(np.diff(z), slope_unit))
    polished = _polish_banded(qp, nu, tol) if qp.n_l1 <= _POLISH_MAX_ROWS else None
    if polished is None:
        zero = _inactive(N, info["kept"], nu, qp.lam)
    else:
        x, held, gap, res = polished
        zero = np.zeros(N, dtype=bool)
        zero[info["kept"]] = held
    U0 = x[info["U0"]]
    kinks = np.diff(np.concatenate([[U0], x[info["U"]], [-U0]]))
    return {"n_iter": n_iter, "gap": gap, "res": res, "qp_value": _qp_value(qp, x),
            "placements": [(kinks / 2.0, zero, np.arange(N), 0)],
            "ws_info": {"working_set": None, "working_set_rounds": 0,
                        "active_set_polished": polished is not None}}


def _solve_noskip_atoms(program, z, m, ybar, tau, lam, tol, verbose):
    """Without skip connection, the sparse regimes: a working set of atoms, or None.

    :func:`~skconvexscore._univariate_atoms.solve_noskip_working_set`, with
    the set capped at ``N/8`` atoms (at least 32, at most 400): beyond that the banded QP over
    every point is the better method.
    """
    N = z.shape[0]
    relu = program.activation == "relu"
    ws = solve_noskip_working_set(z, m, ybar, program.n, tau, lam, relu, tol, verbose,
                                  max_atoms=min(400, max(32, N // 8)),
                                  offset=_value_offset(program), unit=program.value_unit())
    if ws is None:
        return None
    w, n = ws["w"], program.n
    groups = np.arange(N)
    if relu:
        placements = [(w[:N], w[:N] == 0, groups, 0), (w[N:], w[N:] == 0, groups, n)]
    else:
        placements = [(w, w == 0, groups, 0)]
    return {"n_iter": ws["n_iter"], "gap": ws["gap"], "res": ws["res"], "qp_value": ws["P"],
            "placements": placements,
            "ws_info": {"working_set": ws["n_set"], "working_set_rounds": ws["rounds"]}}


def _value_offset(program):
    """The program's value minus its QP's: DSM's ``mean(y^2)/2``, which the QPs drop."""
    return 0.5 * float(np.mean(program.targets**2)) if program.objective == "dsm" else 0.0


def _certify(program, placements, first, last, fit, tol):
    """Atoms from QP kinks, exact zeros where proven inactive, certified against the QP value.

    Records ``coef, slope, intercept, objective``, the rounding loss and the
    certified gap (QP gap plus rounding loss) in ``fit``; returns whether that
    gap is at most ``10 tol``.
    """
    qp_value = fit["qp_value"]
    qp_value += _value_offset(program)
    unit = program.value_unit()
    # exact zeros where the multiplier proves the kink inactive; kept only if
    # the objective does not suffer (it cannot, up to interior-point residue)
    candidates = []
    for rounded in (True, False):
        coef = np.zeros(program.n_atoms)
        for values, zero, groups, offset in placements:
            _place(coef, first, last, groups, np.where(zero, 0.0, values) if rounded else values,
                   offset=offset)
        if program.skip_connection:
            slope, intercept = _best_line(program, coef)
        else:
            slope, intercept = 0.0, 0.0
        objective = program.objective_value(coef, slope, intercept)
        rounding = max(objective - qp_value, 0.0) / (unit + abs(objective))
        candidates.append((rounding, coef, slope, intercept, objective))
        if rounding <= tol:
            break
    rounding, coef, slope, intercept, objective = min(candidates, key=lambda t: t[0])
    certified = fit["gap"] + rounding
    fit.update(coef=coef, slope=slope, intercept=intercept, objective=objective,
               rounding=rounding, certified=certified)
    return bool(certified <= 10 * tol and np.isfinite(objective))


def _split_line(kinks, a, slope, value):
    r"""Reversed-atom weights ``w`` carrying a line, with ``0 <= w_j / kinks_j <= 1``.

    ``-sum_j w_j (x - z_j)`` must equal the line of slope ``slope`` and value
    ``value`` at ``z_1``: ``sum_j w_j = -slope`` and ``sum_j w_j a_j = value``
    with ``a = z - z_1``. Among such ``w`` the least ``sum |w_j|`` is found by
    a two-row LP (HiGHS) over the largest kinks first (few weights, so little
    cancellation). Returns None if no such ``w`` exists among them.
    """
    from scipy.optimize import linprog

    nonzero = np.flatnonzero(kinks)
    if nonzero.size == 0:
        return None
    order = nonzero[np.argsort(-np.abs(kinks[nonzero]), kind="stable")]
    for size in (20_000, 200_000):
        cand = np.sort(order[:size])
        k = kinks[cand]
        lo, hi = np.minimum(k, 0.0), np.maximum(k, 0.0)
        res = linprog(np.sign(k), A_eq=np.vstack([np.ones(cand.size), a[cand]]),
                      b_eq=[-slope, value], bounds=np.column_stack([lo, hi]), method="highs")
        if res.status == 0:
            w = np.zeros(kinks.shape[0])
            # clip HiGHS's bound tolerance so every weight keeps its kink's sign
            w[cand] = np.clip(res.x, lo, hi)
            return w
        if size >= order.size:
            break
    return None


def _solve_relu_through_skip(program, z, m, ybar, tau, lam, first, last, tol, max_iter, verbose,
                             slope_unit):
    r"""ReLU without skip connection, solved as the skip program when that is exact.

    Writing each reversed atom as ``(z_j - x)_+ = (x - z_j)_+ - (x - z_j)``,
    a network without skip connection is a skip network with kinks
    ``u_j + w_j`` and line ``-sum_j w_j (x - z_j)``, at weight decay
    ``sum lam_j (|u_j| + |w_j|) >= sum lam_j |u_j + w_j|``: the skip program
    (same ``lam``) is a relaxation. If its optimal line can be carried by
    reversed weights of the kinks' signs (:func:`_split_line`), the two costs
    agree and the skip optimum is the optimum without skip connection too; its
    certificate then certifies both. Near the bound, where the solution has
    many kinks, this has held in every case run, and the skip QP
    is far better conditioned there. Returns the certified fit, or None (the
    caller then solves the QP without skip connection).
    """
    N = z.shape[0]
    try:
        prob = _SkipProblem(z, m, ybar, program.n, tau, lam, _value_offset(program),
                            program.value_unit())
        fit = _solve_skip(prob, tol, max_iter, verbose, slope_unit)
    except SolverError:
        return None
    none_zeroed = np.zeros(N - 1, dtype=bool)
    # kinks proven inactive set to exact zeros first, as in _certify
    variants = [np.where(fit["zero"], 0.0, fit["kinks"])]
    if fit["zero"].any():
        variants.append(fit["kinks"])
    for kinks in variants:
        skip_atoms = np.zeros(program.n_atoms)
        _place(skip_atoms, first, last, np.arange(N), kinks)
        slope, intercept = _best_line(program, skip_atoms)
        w = _split_line(kinks, z - z[0], slope, slope * z[0] + intercept)
        if w is None:
            continue
        placements = [((kinks - w)[: N - 1], none_zeroed, np.arange(N - 1), 0),
                      (w[1:], none_zeroed, np.arange(1, N), program.n)]
        if _certify(program, placements, first, last, fit, tol):
            return fit
    return None


def _near_duplicate_hint(program):
    """Why an SM solve may fail on near-duplicate points, and what to do; "" if not that.

    Points closer than ``1e-9`` of the data's range would raise the
    well-posedness bound if they were ties; between the two bounds the program
    is bounded, but its optimum grows like the inverse squared gaps (``~1e21``
    at ``n = 3`` for gaps of ``1e-12``), beyond what floating point certifies.
    """
    x = program.x
    span = float(x[-1] - x[0])
    if program.objective != "sm" or not span > 0:
        return ""
    # each point moved to the first of its run of gaps below 1e-9 of the range
    starts = np.concatenate([[True], np.diff(x) > 1e-9 * span])
    merged = x[np.flatnonzero(starts)[np.cumsum(starts) - 1]]
    tie_bound = univariate_alpha_bound(merged, program.activation, program.skip_connection)
    if not program.alpha <= tie_bound:
        return ""
    return (f" The data hold points closer than 1e-9 of their range: as ties they would make "
            f"the program unbounded below alpha={tie_bound:.6g}, and up to there the optimum "
            f"grows like the inverse squared gaps. Merge near-duplicate points (round the "
            f"data) or use alpha above {tie_bound:.6g}.")


def solve_univariate_exact(program, tol=1e-8, max_iter=None, verbose=False):
    r"""Solve a 1-D program exactly, in ``O(n)`` memory and ``O(n)`` per iteration.

    Parameters
    ----------
    program : UnivariateProgram
    tol : float, default=1e-8
        Bound on the relative KKT residual (see module docstring) at which the
        solution counts as certified.
    max_iter : int or None
        Interior point iterations per solve (default 200; with the working
        set, per segment QP).
    verbose : bool

    Returns
    -------
    UnivariateSolution
        ``status="optimal"``, ``duality_gap`` the certified relative gap,
        ``n_iter`` the interior point iterations (summed over the
        working-set rounds). ``info["working_set"]`` is the number of knots
        of the working set that certified the solution (``None`` when the
        full interior point method solved it), ``info["working_set_rounds"]``
        the number of segment QPs checked; when the full interior point method
        solved a QP, ``info["active_set_polished"]`` says whether its
        answer was replaced by the exact sparse optimum on its active set
        (:func:`_polish_active_set`, :func:`_polish_banded`). Without skip connection,
        ``info["via_skip_program"]`` says whether the program was solved as
        the skip program (ReLU, when exact: :func:`_solve_relu_through_skip`).

    Raises
    ------
    UnboundedProgramError
        Score matching with ``alpha`` below ``program.well_posedness_bound()``.
    SolverError
        If the solution cannot be certified within ``max_iter`` iterations
        (for SM on near-duplicate points, the message says when merging them
        would make ``alpha`` ill-posed: :func:`_near_duplicate_hint`).
    """
    try:
        return _solve_univariate(program, tol, max_iter, verbose)
    except SolverError as exc:
        hint = _near_duplicate_hint(program)
        if hint:
            raise SolverError(str(exc) + hint) from exc
        raise


def _solve_univariate(program, tol, max_iter, verbose):
    exact = program.affine_solution()
    if exact is not None:
        return exact
    if max_iter is None:
        max_iter = 200
    n = program.n
    alpha = float(program.alpha)
    sm = program.objective == "sm"
    if sm:
        bound = program.well_posedness_bound()
        if not alpha >= bound:
            raise UnboundedProgramError(
                f"the score-matching program is unbounded below for alpha={alpha:.6g}: a hidden "
                f"unit kinked just inside an extreme (or tied) data value gains Jacobian trace "
                f"without changing the fit, so weight decay below alpha={bound:.6g} cannot pay "
                f"for it. Use alpha >= {bound:.6g}."
            )
    z, m, ybar, first, last = _group_points(program)
    N = z.shape[0]
    tau = 1.0 if sm else 0.0
    if N < 2:
        raise SolverError("a 1-D program needs at least two distinct points.")
    relu = program.activation == "relu"
    # natural unit of slopes (score per unit of x): 1 / variance of the points
    var = float(np.var(program.x))
    slope_unit = 1.0 / var if var > 0 and np.isfinite(var) else 1.0
    # per-merged-atom l1 weights (math notes 3.1, 3.2 and the tie analysis)
    if sm:
        lam_relu = alpha - m / (2.0 * n)
        lam_abs = alpha - m / n
    else:
        lam_relu = np.full(N, alpha)
        lam_abs = np.full(N, alpha)
    lam_relu = np.maximum(lam_relu, 0.0)
    lam_abs = np.maximum(lam_abs, 0.0)
    if program.skip_connection:
        # abs with skip = relu with skip at alpha/2, kink delta = 2 u
        lam_kink = lam_relu if relu else lam_abs / 2.0
        prob = _SkipProblem(z, m, ybar, n, tau, lam_kink, _value_offset(program),
                            program.value_unit())
        fit = _solve_skip(prob, tol, max_iter, verbose, slope_unit)
        placements = [(fit["kinks"] if relu else fit["kinks"] / 2.0, fit["zero"], np.arange(N), 0)]
        certified = _certify(program, placements, first, last, fit, tol)
    else:
        fit = None
        if relu:
            fit = _solve_relu_through_skip(program, z, m, ybar, tau, lam_relu, first, last, tol,
                                           max_iter, verbose, slope_unit)
        via_skip = certified = fit is not None
        if not via_skip:
            lam = lam_relu if relu else lam_abs
            fit = _solve_noskip_atoms(program, z, m, ybar, tau, lam, tol, verbose)
            if fit is not None:
                certified = _certify(program, fit["placements"], first, last, fit, tol)
            if not certified:
                solve = _solve_relu_noskip if relu else _solve_abs_noskip
                fit = solve(program, z, m, ybar, tau, lam, tol, max_iter, verbose, slope_unit)
                certified = _certify(program, fit["placements"], first, last, fit, tol)
        fit["ws_info"]["via_skip_program"] = via_skip
    if not certified:
        raise SolverError(
            f"the univariate solver could not certify its solution: relative gap {fit['gap']:.2e}, "
            f"rounding loss {fit['rounding']:.2e} (tol={tol:g})."
        )
    return UnivariateSolution(
        coef=fit["coef"],
        slope=fit["slope"],
        intercept=fit["intercept"],
        objective=fit["objective"],
        status="optimal",
        n_iter=fit["n_iter"],
        duality_gap=fit["certified"],
        info={"kkt_residual": fit["res"], "n_distinct": N, **fit["ws_info"]},
    )
