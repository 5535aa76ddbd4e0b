r"""Exact model density of a univariate (d = 1) score network.

In one dimension the learned score

.. math::

    s(x) = \sum_j a_j \phi(w_j x + b_j) + v x + c

is continuous and piecewise linear, with kinks at ``t_j = -b_j / w_j``. Its
integral, the unnormalised model log-density

.. math::

    \ell(x) = \int_{t_1}^x s(u)\, du,

is therefore continuous and piecewise quadratic: on a piece where
``s(x) = \alpha_p x + \beta_p`` it is
``\ell(x) = \ell(t) + s(t) (x - t) + \tfrac{\alpha_p}{2} (x - t)^2``.
Each piece integrates in closed form (a Gaussian integral with ``erfcx`` where
the piece is concave, ``\alpha_p < 0``; a Dawson integral where it is convex;
an exponential where it is linear), so the normaliser
``Z = \int e^{\ell}`` is exact up to rounding. The model is normalisable iff
both tails decay: on each unbounded piece either ``\alpha_p < 0`` (a Gaussian
tail) or ``\alpha_p = 0`` with the score pointing back to the data (an
exponential, "Laplace" tail, the absolute-value model's Gaussian-Laplace
regime of shared/design/math.md section 3.2).

Numerical scheme. Every piece is cut into *segments* on which ``\ell``
decreases away from an *anchor* (the segment's maximum: an endpoint, or the
mode of a concave piece, where the piece is split). On a segment of length
``h`` with anchor value ``\ell_a``, outward derivative ``g <= 0`` and
curvature ``\alpha``,

.. math::

    \int_{segment} e^{\ell} = e^{\ell_a} \, m(g, \alpha, h),
    \qquad m(g, \alpha, h) = \int_0^h e^{g y + \alpha y^2 / 2} dy \le h,

and ``m`` is evaluated without overflow (its integrand is at most 1), so the
normaliser is a ``logsumexp`` over segments. Sampling picks a segment with
probability ``e^{\ell_a} m / Z`` and inverts the segment's CDF ``m(g, \alpha,
y) / m(g, \alpha, h)``: in closed form on unbounded segments (a half-normal or
an exponential), by bisection on bounded ones.

In d > 1 the per-output score field of the convex architecture is not a
gradient field in general, so there is no model density: see
:func:`check_density_available`.
"""

from dataclasses import replace

import numpy as np
from scipy.special import dawsn, erfcx, log_ndtr, logsumexp, ndtri_exp
from sklearn.utils import check_random_state

__all__ = [
    "PiecewiseQuadraticDensity",
    "check_density_available",
    "remedy",
    "tail_defects",
]

# Relative size below which a TAIL's score slope counts as exactly zero (the
# slopes are sums of products of weights, exact zeros only up to rounding: a few
# eps times ``scale``). Only the two tails are rounded: interior slopes are
# integrated exactly whatever their size, and zeroing them (near the bound
# ``scale`` reaches 1e13, so slopes of thousands) made ``l`` jump at kinks.
_SLOPE_RTOL = 1e-12
# Below |alpha| h^2 = this, the quadratic term changes the integrand by less
# than 1e-8 relative and the closed forms would lose digits to cancellation:
# the segment is integrated as an exponential.
_LINEAR_CUTOFF = 1e-8
_BISECTION_STEPS = 64


def check_density_available(network):
    """Raise a ValueError unless ``network`` has a model log-density (d = 1).

    Parameters
    ----------
    network : ScoreNetwork

    Raises
    ------
    ValueError
        For ``d > 1``: the learned field ``s`` has one independent two-layer
        network per output coordinate, so its Jacobian is not symmetric in
        general and ``s`` is not the gradient of any function; there is no
        log-density to evaluate or sample exactly (use Langevin sampling).
    """
    d = network.n_features
    if d != 1:
        raise ValueError(
            f"An exact model log-density exists only for univariate data (d = 1); this model has "
            f"d = {d}. In d > 1 every output coordinate of the score is a separate two-layer network, "
            f"so the learned field is not the gradient of a log-density in general (its Jacobian is "
            f"not symmetric). Use Langevin sampling (method='langevin') instead."
        )


def _segment_mass(g, alpha, h):
    r"""``m(g, \alpha, h) = \int_0^h exp(g y + \alpha y^2 / 2) dy`` for ``g <= 0``.

    Vectorised over arrays of equal shape. ``h`` may be ``inf`` only where the
    integral converges (``alpha < 0``, or ``alpha == 0`` and ``g < 0``). The
    integrand is at most 1, so nothing overflows. Concave (``alpha = -kappa
    < 0``), with ``z(y) = \sqrt\kappa\, y - g / \sqrt\kappa``:

    .. math::

        m = \sqrt{\pi / (2\kappa)} \left[ \mathrm{erfcx}(z_0/\sqrt2)
            - \mathrm{erfcx}(z_h/\sqrt2)\, e^{g h - \kappa h^2 / 2} \right].

    Convex (``alpha = 2\lambda^2 > 0``), with ``u(y) = \lambda y + g/(2\lambda)``
    and Dawson's function ``D``:

    .. math::

        m = \lambda^{-1} \left[ e^{g h + \alpha h^2 / 2} D(u_h) - D(u_0) \right].

    Linear (``|alpha| h^2`` negligible): ``m = -\mathrm{expm1}(g h) / (-g)``,
    or ``h`` when ``g = 0``.
    """
    g, alpha, h = np.broadcast_arrays(*(np.asarray(t, dtype=np.float64) for t in (g, alpha, h)))
    out = np.empty(g.shape)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        quad = np.abs(alpha) * h * h
        linear = ~(quad > _LINEAR_CUTOFF)  # also alpha == 0 with h == inf
        concave = ~linear & (alpha < 0)
        convex = ~linear & (alpha > 0)

        if np.any(linear):
            gl, hl = g[linear], h[linear]
            flat = gl == 0
            val = np.where(flat, hl, -np.expm1(gl * hl) / np.where(flat, -1.0, -gl))
            out[linear] = val

        if np.any(concave):
            gc, ac, hc = g[concave], alpha[concave], h[concave]
            root = np.sqrt(-ac)
            z0 = -gc / root
            zh = root * hc + z0
            # at h = inf the second term is erfcx(inf) * 0 = 0
            decay = np.exp(gc * hc + 0.5 * ac * hc * hc)
            tail = np.where(np.isinf(hc), 0.0, erfcx(zh / np.sqrt(2.0)) * decay)
            out[concave] = np.sqrt(np.pi / 2.0) / root * (erfcx(z0 / np.sqrt(2.0)) - tail)

        if np.any(convex):
            gv, av, hv = g[convex], alpha[convex], h[convex]
            lam = np.sqrt(0.5 * av)
            u0 = gv / (2.0 * lam)
            uh = u0 + lam * hv
            out[convex] = (np.exp(gv * hv + 0.5 * av * hv * hv) * dawsn(uh) - dawsn(u0)) / lam
    # tiny negative values are cancellation noise on vanishing segments
    return np.maximum(out, 0.0)


def tail_defects(network):
    r"""Describe the tails of a univariate score along which ``e^{\ell}`` does not decay.

    Cheap (the linear pieces only, no normalising integrals): the model is
    normalisable iff the returned list is empty. On a tail that does not decay
    the model has no stationary law, so Langevin chains that reach it drift
    away from the data.

    Parameters
    ----------
    network : ScoreNetwork
        A univariate network (``n_features == 1``).

    Returns
    -------
    defects : list of str
        One phrase per defective tail, e.g. ``"on its right tail (x > 4.05)
        the score increases there (slope 1.11 > 0), so the log-density grows
        quadratically"``.
    """
    check_density_available(network)
    pieces = network.piecewise()
    return _tail_defects(_rounded_slopes(pieces), pieces.values, pieces.breakpoints + pieces.origin)


def _rounded_slopes(pieces):
    """The pieces' slopes, with tail slopes that are zero up to rounding set to exactly zero."""
    # a tail slope that is zero up to rounding is zero (Laplace tails stay Laplace);
    # interior slopes are kept as they are (the score is what ``predict`` returns)
    slopes = np.array(pieces.slopes, dtype=np.float64, copy=True)
    tol = _SLOPE_RTOL * max(pieces.scale, 1e-300)
    for end in (0, -1):
        if abs(slopes[end]) <= tol:
            slopes[end] = 0.0
    return slopes


ZERO_SCORE = "the score is identically zero (the weight decay removed every unit)"


def remedy(defects):
    """What to change for a model whose tails do not decay, from its defects' phrases."""
    if ZERO_SCORE in defects:
        return "lower alpha, so that some units survive"
    return "increase alpha or use a skip connection"


def _tail_defects(slopes, score_at_kinks, breakpoints):
    """Phrases for the tails that do not decay (see :func:`tail_defects`)."""
    if not np.any(slopes) and not np.any(score_at_kinks):
        return [ZERO_SCORE]
    defects = []
    for side, slope, score_end, end in (
        ("left", slopes[0], -score_at_kinks[0], breakpoints[0]),
        ("right", slopes[-1], score_at_kinks[-1], breakpoints[-1]),
    ):
        # ``score_end`` is the outward derivative of l at the last kink: a tail
        # decays when it is concave (Gaussian) or linear and pointing back (Laplace)
        if slope < 0 or (slope == 0 and score_end < 0):
            continue
        end = float(end) + 0.0  # no "-0" in the message
        region = f"x < {end:.6g}" if side == "left" else f"x > {end:.6g}"
        if slope > 0:
            why = f"the score increases there (slope {slope:.3g} > 0), so the log-density grows quadratically"
        else:
            why = (
                "the score is constant there and does not point back towards the data "
                f"(outward log-density slope {score_end:.3g} >= 0), so the density does not decay"
            )
        defects.append(f"on its {side} tail ({region}) {why}")
    return defects


class PiecewiseQuadraticDensity:
    r"""The normalised model density ``p(x) = e^{\ell(x)} / Z`` of a 1-D score network.

    Parameters
    ----------
    network : ScoreNetwork
        A univariate network (``n_features == 1``).

    Attributes
    ----------
    breakpoints : ndarray of shape (n_kinks,)
        Kinks of the score (where ``\ell`` changes quadratic).
    slopes, intercepts : ndarray of shape (n_kinks + 1,)
        The score on each piece, ``s(x) = slopes[p] x + intercepts[p]``.
    log_normalizer : float
        ``\log Z`` for ``\ell`` referenced to ``\max_k \ell(t_k) = 0``.

    Raises
    ------
    ValueError
        If ``d != 1`` (no density exists), or if a tail does not decay (the
        model is not normalisable: ``e^{\ell}`` has infinite integral).
    """

    def __init__(self, network):
        check_density_available(network)
        pieces = network.piecewise()
        slopes = _rounded_slopes(pieces)
        self._pieces = replace(pieces, slopes=slopes)
        # positions relative to the network's origin (the data's mean when fitted): far
        # from zero the kinks would lose the digits that place them beside the data
        self._origin = pieces.origin
        self._t = pieces.breakpoints
        self.breakpoints = pieces.breakpoints + pieces.origin
        self.slopes = slopes
        self.intercepts = self._pieces.intercepts
        # the score at the kinks (continuous)
        self._score_at_kinks = pieces.values
        widths = np.diff(self._t)
        # l(t_{p+1}) - l(t_p): the trapezoid rule is exact for a linear score
        rises = 0.5 * (self._score_at_kinks[:-1] + self._score_at_kinks[1:]) * widths
        log_at_kinks = np.concatenate([[0.0], np.cumsum(rises)])
        # reference l to its largest kink value: keeps l and log Z small numbers near the data
        self._log_at_kinks = log_at_kinks - np.max(log_at_kinks)
        self._check_tails()
        self._build_segments()
        self.log_normalizer = float(logsumexp(self._segment_log_mass))

    # -- construction ---------------------------------------------------------------------------

    def _check_tails(self):
        defects = _tail_defects(self.slopes, self._score_at_kinks, self.breakpoints)
        if defects:
            raise ValueError(
                f"The model is not normalisable: {defects[0]}. "
                "Its exp(integral of the score) has infinite mass, so there is no log-density or exact "
                "sampler. This happens with a weight decay too small for the data, with activation='abs' "
                f"without a skip connection at large alpha, or with alpha so large that no unit is left; "
                f"{remedy(defects[0])}."
            )

    def _build_segments(self):
        """Cut the line into segments on which ``l`` decreases away from an anchor.

        A concave piece whose mode lies inside it is split at the mode (both
        halves decrease away from it, outward derivative 0); any other piece is
        one segment anchored at its higher end (the tails at their breakpoint).
        Segments are listed from left to right.
        """
        t, s, lv, slopes = self._t, self._score_at_kinks, self._log_at_kinks, self.slopes
        n_pieces = slopes.size
        inf = np.array([np.inf])
        lo = np.concatenate([-inf, t])
        hi = np.concatenate([t, inf])
        s_lo = np.concatenate([[0.0], s])
        s_hi = np.concatenate([s, [0.0]])
        ref = np.maximum(np.arange(n_pieces) - 1, 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            mode = t[ref] - s[ref] / slopes
        split = (slopes < 0) & (lo < mode) & (mode < hi)
        mode = np.where(split, mode, 0.0)
        # otherwise the anchor is the higher end: the right tail's is its breakpoint
        left_end = np.zeros(n_pieces, dtype=bool)
        left_end[-1] = True
        left_end[1:-1] = lv[:-1] >= lv[1:]
        anchor = np.where(split, mode, np.where(left_end, lo, hi))
        direction = np.where(split | ~left_end, -1.0, 1.0)
        length = np.where(split, mode - lo, hi - lo)
        outward = np.where(split, 0.0, np.where(left_end, s_lo, -s_hi))
        # the second half of every split piece follows its first
        first = np.arange(n_pieces) + np.concatenate([[0], np.cumsum(split)[:-1]])
        second = first[split] + 1
        size = n_pieces + int(np.count_nonzero(split))

        def interleave(first_values, second_values):
            out = np.empty(size)
            out[first] = first_values
            out[second] = second_values
            return out

        self._anchor = interleave(anchor, mode[split])
        self._direction = interleave(direction, 1.0)
        self._length = interleave(length, hi[split] - mode[split])
        self._outward = np.minimum(interleave(outward, 0.0), 0.0)  # > 0 only by rounding
        self._curvature = interleave(slopes, slopes[split])
        self._anchor_log = self._unnormalised_log(self._anchor, relative=True)
        mass = _segment_mass(self._outward, self._curvature, self._length)
        with np.errstate(divide="ignore"):
            self._segment_log_mass = self._anchor_log + np.log(mass)

    # -- evaluation -----------------------------------------------------------------------------

    def _unnormalised_log(self, x, relative=False):
        """``l(x)`` (max over kinks 0), expanded around the kink nearest on the left.

        ``relative``: ``x`` is measured from the origin.
        """
        y = np.asarray(x, dtype=np.float64) - (0.0 if relative else self._origin)
        p, ref = self._pieces.locate(y)  # the left tail expands around t_1
        dx = y - self._t[ref]
        return self._log_at_kinks[ref] + self._score_at_kinks[ref] * dx + 0.5 * self.slopes[p] * dx * dx

    def score(self, x):
        """``d/dx log p(x)``: the network's score, from the pieces."""
        return self._pieces.score(x)

    def log_density(self, x):
        """Normalised log-density ``log p(x)``, same shape as ``x``."""
        return self._unnormalised_log(x) - self.log_normalizer

    def cdf(self, x):
        """``P(X <= x)`` under the model, same shape as ``x`` (exact)."""
        x = np.asarray(x, dtype=np.float64)
        flat = x.reshape(-1) - self._origin
        probs = np.exp(self._segment_log_mass - self.log_normalizer)
        before = np.concatenate([[0.0], np.cumsum(probs)])
        # segments tile the line from left to right
        lower = np.where(self._direction > 0, self._anchor, self._anchor - self._length)
        k = np.clip(np.searchsorted(lower, flat, side="right") - 1, 0, probs.size - 1)
        # mass of segment k between its anchor and x, as a fraction of the segment
        y = np.clip((flat - self._anchor[k]) * self._direction[k], 0.0, self._length[k])
        full = _segment_mass(self._outward[k], self._curvature[k], self._length[k])
        part = _segment_mass(self._outward[k], self._curvature[k], y)
        frac = np.where(full > 0, part / np.where(full > 0, full, 1.0), 0.0)
        # anchor on the left: the part is left of x; anchor on the right: it is right of x
        left_of_x = np.where(self._direction[k] > 0, frac, 1.0 - frac)
        out = before[k] + probs[k] * left_of_x
        return np.clip(out, 0.0, 1.0).reshape(x.shape)

    # -- sampling -------------------------------------------------------------------------------

    def sample(self, n_samples=1, random_state=None):
        """Exact samples from the model density.

        Parameters
        ----------
        n_samples : int, default=1
        random_state : int, RandomState instance or None, default=None

        Returns
        -------
        X : ndarray of shape (n_samples,)
        """
        rng = check_random_state(random_state)
        probs = np.exp(self._segment_log_mass - self.log_normalizer)
        probs /= probs.sum()
        seg = rng.choice(probs.size, size=n_samples, p=probs)
        u = rng.uniform(size=n_samples)
        g, alpha, h = self._outward[seg], self._curvature[seg], self._length[seg]
        y = np.empty(n_samples)

        unbounded = np.isinf(h)
        exp_tail = unbounded & (alpha == 0)
        gauss_tail = unbounded & (alpha < 0)
        bounded = ~unbounded
        if np.any(exp_tail):
            # density ∝ e^{g y} on y > 0, g < 0: inverse CDF of an exponential
            y[exp_tail] = np.log1p(-u[exp_tail]) / g[exp_tail]
        if np.any(gauss_tail):
            # N(g/kappa, 1/kappa) restricted to y > 0: a standard normal z > z0 = -g/sqrt(kappa);
            # P(Z > z) = u P(Z > z0), solved in log space so that far tails stay accurate
            root = np.sqrt(-alpha[gauss_tail])
            z0 = -g[gauss_tail] / root
            log_survival = np.log1p(-u[gauss_tail]) + log_ndtr(-z0)
            z = -ndtri_exp(log_survival)
            y[gauss_tail] = (z - z0) / root
        if np.any(bounded):
            y[bounded] = self._invert_bounded(g[bounded], alpha[bounded], h[bounded], u[bounded])
        return self._origin + (self._anchor[seg] + self._direction[seg] * y)

    @staticmethod
    def _invert_bounded(g, alpha, h, u):
        """Solve ``m(g, alpha, y) = u m(g, alpha, h)`` for ``y in [0, h]`` by bisection."""
        target = u * _segment_mass(g, alpha, h)
        lo = np.zeros_like(h)
        hi = h.copy()
        for _ in range(_BISECTION_STEPS):
            mid = 0.5 * (lo + hi)
            below = _segment_mass(g, alpha, mid) < target
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
        return 0.5 * (lo + hi)
