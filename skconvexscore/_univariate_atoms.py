r"""Working set over the atoms of the 1-D programs without skip connection.

Without a skip connection the score is a sum of atoms only: ``(x - z_j)_+``
and ``(z_j - x)_+`` (ReLU, forward and reversed) or ``|x - z_j|`` (absolute
value), one per distinct point ``z_j``. Away from the well-posedness bound
the optimum uses few of them (two, the extreme points, in the
Gaussian-Laplace regime), and the banded QPs over every point cost a full
interior point solve there -- for ReLU one whose Newton systems lose their
accuracy from ``n ~ 1e5`` on. Here the lasso is solved on a small working set
of atoms instead, and the full program is checked directly in atom space:

.. math::

    g_j = \frac1n \sum_i m_i (s_i - \bar y_i)\, a_j(z_i)
          + \frac{\tau}{n} \sum_i m_i\, a_j'(z_i),

the gradient of the smooth part with respect to every atom's coefficient, is
``O(N)`` for all atoms at once by running sums over the gaps (no
cancellation: every running sum is of terms of one sign times gaps). The
point is optimal iff ``|g_j| <= lam_j`` where the coefficient is zero and
``g_j = -lam_j sign(w_j)`` where it is not; violators join the set. The
restricted problem is a dense lasso in the working set's Gram matrix, whose
entries are closed-form in tail and head moments of the points
(:class:`_Moments`), solved by Clarabel and then made exact on its support by
one linear solve.

The certificate is the module's relative KKT residual (see
:mod:`skconvexscore._univariate_solver`): box violations and stationarity
errors relative to ``c_scale``, complementarity ``sum_j (g_j w_j + lam_j
|w_j|)`` relative to ``1 + |P|``. When the restricted solve cannot meet
those conditions to rounding (a degenerate support) but no atom off the set
violates its box, a duality gap certifies instead: the dual evaluated on the
ray through the fit's residual, inside the dual box, needs no exact
multipliers (:func:`_dual_gap`).
"""

import numpy as np

from ._programs import _backward_sum, _forward_sum

__all__ = ["solve_noskip_working_set"]


def prefix_sums(v):
    """``cumsum(v)`` accumulated in extended precision where the platform has it.

    The certificates recover multipliers and gradients ``O(1/n)`` in size as
    differences of running sums ``O(1)`` in size over up to ``n`` terms; a
    float64 running sum would lose up to ``n eps`` of that.
    """
    return np.cumsum(v, dtype=np.longdouble)


def _suffix_sums(v):
    """``out[k] = sum_{i > k} v_i`` (zero at the end), in extended precision."""
    out = np.zeros(v.shape[0], dtype=np.longdouble)
    out[:-1] = np.cumsum(v[::-1], dtype=np.longdouble)[::-1][1:]
    return out


def _head_sums(v):
    """``out[k] = sum_{i < k} v_i`` (zero at the start), in extended precision."""
    out = np.zeros(v.shape[0], dtype=np.longdouble)
    out[1:] = prefix_sums(v)[:-1]
    return out


def extended_sum(*pairs):
    """``sum a . b`` over the pairs ``(a, b)``, accumulated in extended precision.

    For the values and gaps the certificates compare with
    :meth:`UnivariateProgram.objective_value`, which sums the same way:
    near-duplicate points make slopes ~1e11 whose trace and l1 terms cancel to
    ``O(1)``, and summed in float64 a value moved by ``5e-5`` of itself with
    the summation order (``n = 3``, a pair ``1.2e-12`` apart: certified on one
    machine, "rounding loss" on another).
    """
    return float(sum(np.dot(np.asarray(a, dtype=np.longdouble), b) for a, b in pairs))


def select_spread(excess, taken, budget, floor):
    """About ``budget`` violators to add, spread over the runs of consecutive violators.

    A violator is an index not in ``taken`` whose ``excess`` exceeds ``floor``.
    Each run gets a share of the budget in proportion to its length (at least
    one point), is cut into that many equal chunks, and each chunk contributes
    its worst point: a long run (the kink-free start violates almost
    everywhere) needs many kinks, and neighbouring points of one bump would
    be redundant.
    """
    bad = excess > floor
    bad[taken] = False
    idx = np.flatnonzero(bad)
    if idx.size == 0:
        return idx
    run_first = np.flatnonzero(np.concatenate([[True], np.diff(idx) > 1]))
    run_len = np.diff(np.append(run_first, idx.size))
    share = np.maximum(1, (budget * run_len) // idx.size)
    chunk = -(-run_len // share)  # ceil
    pos = np.arange(idx.size) - np.repeat(run_first, run_len)
    chunk_id = np.repeat(np.cumsum(share) - share, run_len) + pos // np.repeat(chunk, run_len)
    chunk_first = np.flatnonzero(np.concatenate([[True], np.diff(chunk_id) > 0]))
    ex = excess[idx]
    chunk_max = np.maximum.reduceat(ex, chunk_first)
    hit = np.flatnonzero(ex == np.repeat(chunk_max, np.diff(np.append(chunk_first, idx.size))))
    hit = hit[np.concatenate([[True], np.diff(chunk_id[hit]) > 0])]
    return idx[hit]


class _Moments:
    r"""Tail and head moments of the points, for closed-form Gram entries.

    ``tail_k[b] = sum_{i > b} m_i (z_i - z_b)^k`` and ``head_k[a] = sum_{i < a}
    m_i (z_a - z_i)^k`` (``k = 0, 1, 2``), each accumulated gap by gap from its
    own end, so every term is nonnegative.
    """

    def __init__(self, z, m):
        g = np.diff(z)
        self.z, self.m = z, m
        t0 = _suffix_sums(m)
        t1 = np.zeros_like(t0)
        t1[:-1] = np.cumsum((g * t0[:-1])[::-1])[::-1]
        t2 = np.zeros_like(t0)
        t2[:-1] = np.cumsum((2.0 * g * t1[1:] + g * g * t0[:-1])[::-1])[::-1]
        h0 = _head_sums(m)
        h1 = np.zeros_like(h0)
        h1[1:] = np.cumsum(g * h0[1:])
        h2 = np.zeros_like(h0)
        h2[1:] = np.cumsum(2.0 * g * h1[:-1] + g * g * h0[1:])
        self.tail = [t.astype(np.float64) for t in (t0, t1, t2)]
        self.head = [h.astype(np.float64) for h in (h0, h1, h2)]

    def forward_reversed(self, f, r):
        """``sum_i m_i (z_i - z_f)_+ (z_r - z_i)_+``: nonzero for ``f < i < r`` only."""
        z, m = self.z, self.m
        t0, t1, t2 = self.tail
        D = z[r] - z[f]
        beyond = t0[r] + m[r]  # points i >= r
        w1 = t1[f] - (t1[r] + D * beyond)
        w2 = t2[f] - (t2[r] + 2.0 * D * t1[r] + D * D * beyond)
        return np.where(f < r, D * w1 - w2, 0.0)

    def gram(self, orient, idx):
        r"""``sum_i m_i a_p(z_i) a_q(z_i)`` for the atoms ``(orient, idx)``.

        ``orient`` is +1 for ``(x - z)_+``, -1 for ``(z - x)_+``.
        """
        a = np.broadcast_to(idx[:, None], (idx.size, idx.size))
        b = a.T
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        D = self.z[hi] - self.z[lo]
        forward_forward = self.tail[2][hi] + D * self.tail[1][hi]
        reversed_reversed = self.head[2][lo] + D * self.head[1][lo]
        oa = np.broadcast_to(orient[:, None], a.shape)
        ob = oa.T
        G = np.where((oa > 0) & (ob > 0), forward_forward, 0.0)
        G += np.where((oa < 0) & (ob < 0), reversed_reversed, 0.0)
        G += np.where((oa > 0) & (ob < 0), self.forward_reversed(a, b), 0.0)
        G += np.where((oa < 0) & (ob > 0), self.forward_reversed(b, a), 0.0)
        return 0.5 * (G + G.T)


class _AtomProblem:
    """A 1-D program without skip connection, in distinct points and atoms.

    Atoms are numbered ``0..N-1`` (forward ReLU, or absolute value) and
    ``N..2N-1`` (reversed ReLU). ``lam`` holds each atom's l1 weight (the
    merged weight of a tie group, as in the QPs).
    """

    def __init__(self, z, m, ybar, n, tau, lam, relu, offset=0.0, unit=1.0):
        N = z.shape[0]
        self.z, self.m, self.ybar, self.n, self.tau, self.relu = z, m, ybar, n, tau, relu
        self.offset = offset
        self.unit = unit
        self.N, self.g = N, np.diff(z)
        self.moments = _Moments(z, m)
        after, before = self.moments.tail[0], self.moments.head[0]
        # midpoint convention: an atom's own point gets half its slope
        lin_forward = tau * (after + 0.5 * m) / n
        lin_reversed = -tau * (before + 0.5 * m) / n
        if relu:
            self.lin = np.concatenate([lin_forward, lin_reversed])
            self.lam = np.concatenate([lam, lam])
        else:
            self.lin = lin_forward + lin_reversed
            self.lam = lam.copy()
        self.n_atoms = self.lin.shape[0]
        self.c_scale = (max(float(np.max(np.abs(self.lin))), float(np.max(np.abs(m * ybar))) / n)
                        + float(np.max(lam)) + 1e-300)

    def split(self, w):
        """Forward and reversed coefficients on the points (abs: each atom is both)."""
        N = self.N
        return (w[:N], w[N:]) if self.relu else (w, w)

    def values(self, w):
        """``s(z_i)`` for every point, by running sums of slopes over the gaps."""
        u, v = self.split(w)
        z = self.z
        return _forward_sum(z, z, u) + _backward_sum(z, z, v)

    def _fit_gradient(self, r):
        """``sum_i r_i a_j(z_i) / n`` for every atom ``j``."""
        g = self.g
        after = np.zeros(self.N, dtype=np.longdouble)  # sum_{i > j} r_i (z_i - z_j)
        after[:-1] = np.cumsum((g * _suffix_sums(r)[:-1].astype(np.float64))[::-1],
                               dtype=np.longdouble)[::-1]
        before = np.zeros(self.N, dtype=np.longdouble)  # sum_{i < j} r_i (z_j - z_i)
        before[1:] = np.cumsum(g * prefix_sums(r)[:-1].astype(np.float64), dtype=np.longdouble)
        if self.relu:
            fit = np.concatenate([after, before]).astype(np.float64)
        else:
            fit = (after + before).astype(np.float64)
        return fit / self.n

    def gradient(self, s):
        """Gradient of the smooth part with respect to every atom at the values ``s``."""
        return self._fit_gradient(self.m * (s - self.ybar)) + self.lin

    def objective(self, w, s):
        """The program's value (DSM without its constant ``mean(y^2)/2``)."""
        fit = float(self.m @ (0.5 * s * s - self.ybar * s)) / self.n
        return fit + float(self.lin @ w) + float(self.lam @ np.abs(w))

    def gram(self, atoms):
        N = self.N
        if self.relu:
            orient = np.where(atoms < N, 1.0, -1.0)
            return self.moments.gram(orient, atoms % N) / self.n
        ones = np.ones(atoms.size)
        both = np.concatenate([atoms, atoms])
        G = self.moments.gram(np.concatenate([ones, -ones]), both)
        k = atoms.size
        # |x - z| = (x - z)_+ + (z - x)_+
        return (G[:k, :k] + G[:k, k:] + G[k:, :k] + G[k:, k:]) / self.n

    def gradient_rounding(self, w, s):
        """A bound on the rounding error of :meth:`gradient` at ``w`` (values ``s``).

        ``16 eps`` of the terms it sums.
        """
        size = self.values(np.abs(w))
        size += np.abs(s)
        size += np.abs(self.ybar)
        return 16.0 * np.finfo(np.float64).eps * (self._fit_gradient(self.m * size)
                                                  + np.abs(self.lin) + self.lam)

    def certificate(self, w, in_set):
        r"""The full program's optimality conditions at ``w`` (zero off ``in_set``).

        Returns ``(res_dual, res_gap, P, violators)``: the stationarity error of
        the set's atoms beyond rounding, relative to ``c_scale`` (the
        working set certifies only at zero), the complementarity ``sum_j
        (g_j w_j + lam_j |w_j|)`` relative to ``unit + |P + offset|`` (the
        program's own value: the DSM constant is large for small noise), the
        value, and the box violation ``|g_j| - lam_j`` of every atom off the
        set beyond the rounding of its gradient (``16 eps`` of the terms it
        sums). Nothing beyond rounding is tolerated: near-duplicate points make
        directions whose slope is tiny but whose optimum is far
        (``n = 3``, a pair ``1e-12`` apart: a gradient ``1e-13`` beyond its box
        hid a coefficient ``6e11`` and half the objective).
        """
        s = self.values(w)
        grad = self.gradient(s)
        lam = self.lam
        floor = self.gradient_rounding(w, s)
        violation = np.where(w != 0, np.abs(grad + lam * np.sign(w)),
                             np.maximum(np.abs(grad) - lam, 0.0))
        violation -= floor
        np.maximum(violation, 0.0, out=violation)
        violators = np.where(in_set, 0.0, violation)
        res_dual = float(np.max(violation[in_set], initial=0.0)) / self.c_scale
        P = self.objective(w, s)
        comp = float(grad @ w + lam @ np.abs(w))
        return res_dual, abs(comp) / (self.unit + abs(P + self.offset)), P, violators


def _dual_gap(prob, w):
    r"""A duality gap of the program at ``w`` that needs no exact multipliers.

    With ``D_i = m_i / n`` and ``s = A w`` the program is ``min sum_i D_i
    (s_i^2 / 2 - ybar_i s_i) + lin . w + lam |w|``. Its dual, ``max_theta -1/2
    sum_i (D_i ybar_i + theta_i)^2 / D_i`` over ``|lin + A^T theta| <= lam``,
    is evaluated on the ray ``theta = t D (s - ybar)`` through the fit's
    residual, where ``lin + A^T theta = (1 - t) lin + t grad``: ``t`` is the
    point of the box's interval of ``t`` (the gradient counted with its
    rounding bound) nearest the ray's best. Weak duality then makes ``P - D``
    an upper bound on ``P - optimum`` however degenerate the support
    (heavy-tailed points: a support of condition ``4e15`` left the restricted
    solve ``3e-11`` off its box, and the banded QP stalled after 30 s).
    Returns it relative to ``unit + |P + offset|``; ``inf`` when the ray
    misses the box.
    """
    s = prob.values(w)
    grad = prob.gradient(s)
    floor = prob.gradient_rounding(w, s)
    # |lin + t (grad - lin)| + t floor <= lam for t >= 0: rows "slope t <= bound"
    slope = np.concatenate([grad - prob.lin + floor, prob.lin - grad + floor])
    bound = np.concatenate([prob.lam - prob.lin, prob.lam + prob.lin])
    if np.any((slope == 0.0) & (bound < 0.0)):
        return np.inf
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = bound / slope
    lo = max(0.0, float(np.max(ratio[slope < 0.0], initial=0.0)))
    hi = float(np.min(ratio[slope > 0.0], initial=np.inf))
    if not lo <= hi:
        return np.inf
    r = s - prob.ybar
    Dr = prob.m * r
    best = -float(Dr @ prob.ybar) / float(Dr @ r) if np.any(Dr) else 1.0
    t = min(max(best, lo), hi)
    # P - D with the two values' common -1/2 sum D ybar^2 (DSM's large constant at
    # small noise) cancelled by hand; near the bound the trace and penalty terms cancel too
    gap = extended_sum((prob.m * (0.5 * (1.0 + t * t) * r + t * prob.ybar) / prob.n, r),
                       (prob.lin, w), (prob.lam, np.abs(w)))
    P = prob.objective(w, s)
    return max(gap, 0.0) / (prob.unit + abs(P + prob.offset))


def _restricted_lasso(G, q, lam, max_corrections=5):
    r"""``min 1/2 w^T G w + q^T w + sum lam |w|`` for a small dense PSD ``G``.

    Clarabel (through CVXPY) finds the support and signs up to its residue
    (entries below ``1e-6`` of the largest are taken as zero); the
    coefficients are then solved exactly on that support, ``G_AA w_A = -(q_A
    + lam_A sign_A)``, and the support corrected (wrong signs dropped,
    violators off it added, a primal-dual active-set step) until the
    restricted optimality conditions hold to rounding
    (:func:`_exact_on_supports`).

    Returns ``(w, iterations, alternatives)`` -- Clarabel's answer with its
    residue cleared if the corrections do not settle -- or ``None`` if
    Clarabel fails. ``alternatives()`` yields the answers whose supports are
    first cut down to independent atoms (:func:`_drop_dependent_atoms`), with
    and without keeping the atoms each correction adds, for the caller to try
    when ``w`` misses the restricted optimum.
    """
    import warnings

    import cvxpy as cp

    k = q.shape[0]
    w = cp.Variable(k)
    problem = cp.Problem(cp.Minimize(0.5 * cp.quad_form(w, cp.psd_wrap(G)) + q @ w
                                     + lam @ cp.abs(w)))
    try:
        with warnings.catch_warnings():
            # an inaccurate answer is only a guess of the support: checked below
            warnings.simplefilter("ignore", UserWarning)
            problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12,
                          tol_feas=1e-12, max_iter=200)
    except cp.error.SolverError:
        return None
    if problem.status not in ("optimal", "optimal_inaccurate") or w.value is None:
        return None
    approx = np.asarray(w.value, dtype=np.float64)
    n_iter = problem.solver_stats.num_iters or 0
    approx[np.abs(approx) <= 1e-6 * float(np.max(np.abs(approx), initial=0.0))] = 0.0

    def alternatives():
        for keep_added in (True, False):
            yield _exact_on_supports(G, q, lam, approx, max_corrections, independent=True,
                                     keep_added=keep_added)

    plain = _exact_on_supports(G, q, lam, approx, max_corrections, independent=False,
                               keep_added=False)
    return plain, n_iter, alternatives


def _exact_on_supports(G, q, lam, approx, max_corrections, independent, keep_added):
    """Exact solves on the support of ``approx`` and its primal-dual active-set corrections.

    With ``independent`` each support is first cut down to atoms of
    independent columns (:func:`_drop_dependent_atoms`), and with
    ``keep_added`` the atoms that the previous correction added as violators
    stay (dropped again, they may come back every round; in other programs
    only dropping one again settled). Returns ``approx`` if the corrections
    do not settle.
    """
    k = q.shape[0]
    sign = np.sign(approx)
    current, added = approx, np.zeros(k, dtype=bool)
    for _ in range(max_corrections):
        if independent:
            sign = _drop_dependent_atoms(G, current, sign, keep=added & keep_added)
        support = sign != 0
        exact = np.zeros(k)
        if support.any():
            rhs = -(q[support] + lam[support] * sign[support])
            exact[support] = np.linalg.lstsq(G[np.ix_(support, support)], rhs, rcond=None)[0]
        grad = G @ exact + q
        slack = 1e-9 * (np.abs(q) + lam + np.abs(G) @ np.abs(exact))
        wrong = support & (exact * sign <= 0)
        outside = ~support & (np.abs(grad) > lam + slack)
        if not (wrong.any() or outside.any()):
            return exact
        sign[wrong] = 0.0
        sign[outside] = -np.sign(grad[outside])
        current, added = exact, outside
    return approx


def _drop_dependent_atoms(G, w, sign, keep):
    r"""The signs with the support (``sign != 0``) cut down to atoms of independent columns.

    Noisy points a few ``1e-9`` apart make clusters of atoms whose Gram
    matrix on the support is singular to rounding (DSM, 50,000 noisy
    points: condition ``1.5e17``), and the exact solve on it then misses
    the restricted optimum by a few percent: the working set grew past its
    cap and the banded QP returned one unit per noisy point. At the
    restricted optimum the objective is constant along a null direction
    ``v`` of ``G_AA`` (stationarity gives ``lam_A sign_A . v = 0``), so, as
    in the lasso's uniqueness argument, ``w`` moves along ``v`` until its
    first coordinate reaches zero (the ratio test: no other changes sign),
    and that atom leaves; atoms in ``keep`` do not. Repeated while the
    smallest eigenvalue of ``G_AA`` is below ``1e-12`` times the largest.
    Near-singular is not always singular (twins ``1e-10`` apart gave
    ``1.4e-13``, and the atom dropped along that direction was needed), so
    this is only the alternative tried when the plain solve misses.
    """
    w, sign = w.copy(), sign.copy()
    while True:
        idx = np.flatnonzero(sign)
        if idx.size < 2:
            return sign
        eigenvalues, vectors = np.linalg.eigh(G[np.ix_(idx, idx)])
        if eigenvalues[0] > 1e-12 * eigenvalues[-1]:
            return sign
        v = vectors[:, 0]
        ratio = np.full(idx.size, np.inf)
        moving = (np.abs(v) > 1e-12) & ~keep[idx]
        if not moving.any():
            return sign
        ratio[moving] = np.abs(w[idx][moving] / v[moving])
        leaving = int(np.argmin(ratio))
        w[idx] -= (w[idx[leaving]] / v[leaving]) * v
        w[idx[leaving]] = 0.0
        sign[idx[leaving]] = 0.0


def solve_noskip_working_set(z, m, ybar, n, tau, lam, relu, tol, verbose=False,
                             max_atoms=400, max_rounds=30, offset=0.0, unit=1.0):
    """Solve a program without skip connection on a growing working set of atoms.

    Starts from the extreme atoms (forward on the first point and reversed on
    the last for ReLU, the two extreme absolute values otherwise: together
    they carry any line on the data), and adds the worst violators of the
    full problem's optimality conditions (about as many as the set holds)
    until the full problem is certified to ``tol``. When no atom's gradient at
    zero leaves its box (``alpha >= 1`` for SM) the zero network is returned
    at once.

    Returns a dict with the coefficients ``w`` on every atom (exact zeros off
    the set), the certificate and counts, or ``None`` when the set would
    exceed ``max_atoms`` (a dense solution: the banded QP over every point is
    the better method) or a restricted solve fails.
    """
    prob = _AtomProblem(z, m, ybar, n, tau, lam, relu, offset, unit)
    N = prob.N
    # the zero network, when no atom's gradient leaves its box (math notes 3.2: alpha >= 1
    # for SM); from the extreme atoms the exact solve, with right-hand sides zero up to
    # rounding there, gave weights ~4e-9 at alpha = 1 instead of exact zeros
    zero = np.zeros(prob.n_atoms)
    _, _, P, violators = prob.certificate(zero, np.zeros(prob.n_atoms, dtype=bool))
    if not violators.any():
        return {"w": zero, "P": P, "gap": 0.0, "res": 0.0, "n_iter": 0, "rounds": 1,
                "n_set": 0}
    atoms = np.array([0, 2 * N - 1] if relu else [0, N - 1])
    linear = prob.gradient(np.zeros(N))  # every atom's linear term in the lasso
    total_iter = 0
    for rounds in range(1, max_rounds + 1):
        solved = _restricted_lasso(prob.gram(atoms), linear[atoms], prob.lam[atoms])
        if solved is None:
            return None
        w_set, n_iter, alternatives = solved
        total_iter += n_iter
        in_set = np.zeros(prob.n_atoms, dtype=bool)
        in_set[atoms] = True
        w = np.zeros(prob.n_atoms)
        w[atoms] = w_set
        res_dual, res_gap, P, violators = prob.certificate(w, in_set)
        # the set's own conditions fail: a support singular to rounding (noisy points 1e-9
        # apart, condition 1.5e17) made the exact solve miss by a few percent
        for alt_set in (alternatives() if res_dual > 0.0 else ()):
            w_alt = np.zeros(prob.n_atoms)
            w_alt[atoms] = alt_set
            checked = prob.certificate(w_alt, in_set)
            if checked[0] < res_dual:
                w, w_set, (res_dual, res_gap, P, violators) = w_alt, alt_set, checked
            if res_dual == 0.0:
                break
        n_violators = np.count_nonzero(violators)
        if verbose:
            print(f"atom working set round {rounds}: {atoms.size} atoms, "
                  f"{np.count_nonzero(w_set)} nonzero, P={P: .10e}  dual={res_dual:.2e}  "
                  f"gap={res_gap:.2e}  violators={n_violators}")
        if n_violators == 0:
            certified = res_dual == 0.0 and res_gap <= tol
            if not certified:
                # the restricted solve is not accurate enough for the conditions, but
                # the dual bound needs no exact multipliers
                res_gap = _dual_gap(prob, w)
                certified = res_gap <= tol
            if certified:
                return {"w": w, "P": P, "gap": res_gap, "res": res_dual, "n_iter": total_iter,
                        "rounds": rounds, "n_set": int(atoms.size)}
            return None  # the restricted solve is not accurate enough
        if atoms.size >= 64 and n_violators > 0.25 * prob.n_atoms:
            # dozens of well-spread atoms barely helped: a dense solution
            return None
        budget = max(16, atoms.size)
        new = select_spread(violators, atoms, budget, 0.0)
        if new.size > budget:  # one per run of violators can exceed it
            new = np.sort(new[np.argsort(violators[new])[-budget:]])
        if atoms.size + new.size > max_atoms:
            return None
        atoms = np.union1d(atoms, new)
    return None
