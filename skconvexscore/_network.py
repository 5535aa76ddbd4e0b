"""The recovered two-layer score network.

:class:`ScoreNetwork` knows nothing of how it was found: it holds NumPy
weights in the user's (original) coordinates and evaluates the score, its
Jacobian trace and the training objectives. The ``recover_*`` functions turn a
solver's solution of a program (standardised coordinates) into a network.
"""

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "PiecewiseLinearScore",
    "ScoreNetwork",
    "recover_arrangement",
    "recover_univariate",
]

# Relative size of the shift that moves a recovered unit off the data points
# (1-D: kinks to x_j +/- delta) or off its cone's boundary (d >= 2). The
# recovered objective differs from the convex value by O(this): about 2e-6
# relative at 1e-6 near the bound, 2e-9 at 1e-9.
_KINK_SHIFT = 1e-9
_CONE_NUDGE = 1e-8
# Shifts are kept above this many roundings of the kink's coordinate, so that
# its side of the data point survives rounding (a kink rounded onto its point
# changes the Jacobian trace there by the unit's whole slope), up to this
# fraction of the gap.
_SHIFT_ROUNDINGS = 64
_MAX_GAP_FRACTION = 0.25


@dataclass
class ScoreNetwork:
    r"""A two-layer score network with an optional linear skip connection.

    .. math::

        s(x) = A^\top \phi(W (x - o) + b) + V (x - o) + c

    Every hidden unit feeds one output coordinate (each row of ``A`` has one
    non-zero entry), which is what makes the training problem convex.

    The weights are written around an *origin* ``o`` (zero by default; the
    data's mean for fitted networks). Far from zero -- data offset by 1e6,
    near the well-posedness bound where the units' slopes reach 1e7 -- the
    biases of ``W x + b`` would carry the offset and lose the digits that
    place each kink beside its data point: the score at the data moved by
    1e-5 relative and the held-out criterion by 3 %.
    :meth:`recentred` writes the same function around another origin
    (:meth:`recentred` at zero gives the plain ``A^T phi(W x + b) + V x + c``).

    Parameters
    ----------
    hidden_weights : ndarray of shape (n_units, d)
        ``W``.
    hidden_biases : ndarray of shape (n_units,)
        ``b``.
    output_weights : ndarray of shape (n_units, d)
        ``A``.
    skip_weights : ndarray of shape (d, d)
        ``V`` (zero without skip connection).
    output_bias : ndarray of shape (d,)
        ``c``.
    activation : {"relu", "abs"}
    origin : ndarray of shape (d,), default=None
        ``o`` (``None``: zero).
    """

    hidden_weights: np.ndarray
    hidden_biases: np.ndarray
    output_weights: np.ndarray
    skip_weights: np.ndarray
    output_bias: np.ndarray
    activation: str = "relu"
    origin: np.ndarray = field(default=None)

    def __post_init__(self):
        d = self.skip_weights.shape[0]
        self.origin = np.zeros(d) if self.origin is None else np.asarray(self.origin, float).reshape(d)

    def recentred(self, origin):
        """The same score with its weights written around ``origin``.

        ``b + W (o' - o)`` and ``c + V (o' - o)`` for the new origin ``o'``;
        ``recentred(0)`` gives the weights of ``A^T phi(W x + b) + V x + c``.
        """
        origin = np.broadcast_to(np.asarray(origin, dtype=np.float64), self.origin.shape)
        shift = origin - self.origin
        return ScoreNetwork(self.hidden_weights, self.hidden_biases + self.hidden_weights @ shift,
                            self.output_weights, self.skip_weights,
                            self.output_bias + self.skip_weights @ shift, self.activation,
                            origin.copy())

    @property
    def n_units(self):
        return self.hidden_weights.shape[0]

    @property
    def n_features(self):
        return self.skip_weights.shape[0]

    def score(self, X):
        """The score ``s(x)``, shape (n_samples, d).

        Univariate networks are evaluated through their linear pieces
        (:meth:`piecewise`): ``O((n_samples + n_units) log n_units)`` time and
        no ``n_samples x n_units`` array, which a fit on a million points near
        the well-posedness bound (about 1.4e5 units) could not afford.
        """
        X = np.asarray(X, dtype=np.float64)
        if self.n_features == 1:
            return self.piecewise().score(X[:, 0])[:, None]
        Y = X - self.origin
        pre = Y @ self.hidden_weights.T + self.hidden_biases
        hidden = np.abs(pre) if self.activation == "abs" else np.maximum(pre, 0.0)
        return hidden @ self.output_weights + Y @ self.skip_weights.T + self.output_bias

    def jacobian_trace(self, X):
        r"""``tr \nabla s(x)``, shape (n_samples,).

        Where a pre-activation is exactly zero the one-sided derivative with
        the smaller trace is used (the limit of units shifted off the point,
        the convention under which the convex program is exact).
        """
        X = np.asarray(X, dtype=np.float64)
        if self.n_features == 1:
            return self.piecewise().jacobian_trace(X[:, 0])
        pre = (X - self.origin) @ self.hidden_weights.T + self.hidden_biases
        # contribution of unit j to the trace per unit of phi': r_j w_{j, k(j)}
        gain = np.einsum("jk,jk->j", self.output_weights, self.hidden_weights)
        if self.activation == "abs":
            deriv = np.where(pre == 0.0, -np.sign(gain)[None, :], np.sign(pre))
        else:
            at_kink = (gain < 0).astype(np.float64)[None, :]
            deriv = np.where(pre == 0.0, at_kink, (pre > 0).astype(np.float64))
        return deriv @ gain + np.trace(self.skip_weights)

    def jacobians(self, X):
        r"""The Jacobians ``\nabla s(x)``, shape (n_samples, d, d).

        Row ``k`` is ``sum_{j -> k} phi'(w_j . x + b_j) r_j w_j + V_k``: each
        output's units are summed in one product, ``O(n_samples n_units d)``.
        A pre-activation exactly zero counts as inactive (ReLU) or as 0 (abs).
        """
        X = np.asarray(X, dtype=np.float64)
        pre = (X - self.origin) @ self.hidden_weights.T + self.hidden_biases
        deriv = np.sign(pre) if self.activation == "abs" else (pre > 0).astype(np.float64)
        jac = np.repeat(self.skip_weights[None], X.shape[0], axis=0)
        for k in range(self.n_features):
            units = np.flatnonzero(self.output_weights[:, k])
            jac[:, k, :] += (deriv[:, units] * self.output_weights[units, k]) @ self.hidden_weights[units]
        return jac

    def weight_decay(self):
        r"""``1/2 \sum_j (||w_j||^2 + ||a_j||^2)``; times ``alpha`` in the objectives."""
        return 0.5 * float(np.sum(self.hidden_weights**2) + np.sum(self.output_weights**2))

    def hyvarinen_terms(self, X):
        r"""``1/2 ||s(x)||^2 + tr \nabla s(x)`` for every sample, shape (n_samples,)."""
        if self.n_features == 1:
            pieces = self.piecewise()  # built once for both terms
            x = np.asarray(X, dtype=np.float64)[:, 0]
            return 0.5 * pieces.score(x) ** 2 + pieces.jacobian_trace(x)
        s = self.score(X)
        return 0.5 * np.sum(s**2, axis=1) + self.jacobian_trace(X)

    def sm_objective(self, X, alpha):
        """Score-matching objective ``J_SM`` (mean normalisation) on ``X``."""
        return float(np.mean(self.hyvarinen_terms(X))) + alpha * self.weight_decay()

    def dsm_objective(self, X_noisy, targets, alpha):
        """Denoising objective ``J_DSM`` on noisy points with targets ``-eps/sigma``."""
        residual = self.score(X_noisy) - targets
        return 0.5 * float(np.mean(np.sum(residual**2, axis=1))) + alpha * self.weight_decay()

    def lipschitz_bound(self):
        r"""An upper bound on the Lipschitz constant of ``s`` (spectral norms).

        ``||A^T diag(phi') W + V||_2 <= sum_k ||A_{:,k}^T W_k||`` per output
        block plus ``||V||_2``; we use the cruder but cheap
        ``sum_j ||a_j|| ||w_j|| + ||V||_2``.
        """
        units = float(
            np.sum(np.linalg.norm(self.output_weights, axis=1) * np.linalg.norm(self.hidden_weights, axis=1))
        )
        skip = float(np.linalg.norm(self.skip_weights, 2)) if self.skip_weights.size else 0.0
        return units + skip

    def piecewise(self):
        r"""The score of a univariate network as explicit linear pieces.

        Sorting the units by their kinks ``o - b_j / w_j``, the slope and
        the intercept of every piece are running sums of what each unit
        changes when ``x`` crosses its kink, so the representation costs
        ``O(n_units log n_units)``. The sums are accumulated in extended
        precision: near the well-posedness bound the units' slopes reach
        ``1e10`` (in units of the data's variance) with alternating signs.

        Returns
        -------
        PiecewiseLinearScore

        Raises
        ------
        ValueError
            If ``n_features != 1``.
        """
        if self.n_features != 1:
            raise ValueError(
                f"A score is piecewise linear on the real line only for univariate networks; "
                f"this one has d = {self.n_features}."
            )
        return _piecewise_linear(self)

    def to_torch(self, dtype=None, device=None):
        """The same network as a :class:`torch.nn.Module` (imports torch lazily)."""
        from ._torch_network import TorchScoreNetwork

        return TorchScoreNetwork.from_network(self, dtype=dtype, device=device)


@dataclass(frozen=True)
class PiecewiseLinearScore:
    r"""A univariate score as linear pieces between sorted breakpoints.

    On piece ``p`` (``(-inf, t_0)``, ``(t_0, t_1)``, ..., ``(t_{K-1}, inf)``)
    the score is ``s(x) = values[q] + slopes[p] (x - t_q)`` with
    ``q = max(p - 1, 0)``: anchored at the piece's left breakpoint (the first
    one for the left tail), so that the large slopes near the well-posedness
    bound multiply small differences. Positions are relative to the network's
    :attr:`origin` (the methods take the user's ``x``). A network without
    kinks gets one breakpoint, at the zero of its score (or at the origin),
    where the slope does not change.

    Attributes
    ----------
    breakpoints : ndarray of shape (K,)
        Sorted distinct kinks ``t_0 < ... < t_{K-1}`` (``K >= 1``), relative
        to :attr:`origin`.
    slopes : ndarray of shape (K + 1,)
        The score's slope on every piece.
    values : ndarray of shape (K,)
        ``s(t_k)`` (the score is continuous).
    kink_traces : ndarray of shape (K,)
        ``s'`` at exactly ``t_k``: every unit kinking there contributes the
        smaller of its one-sided derivatives (the convention of
        :meth:`ScoreNetwork.jacobian_trace`).
    scale : float
        ``|v| + sum_j |a_j w_j|``, the size of the terms the slopes are sums
        of (a slope below ``1e-9 scale`` is zero up to rounding).
    origin : float
        The point positions are measured from.
    """

    breakpoints: np.ndarray
    slopes: np.ndarray
    values: np.ndarray
    kink_traces: np.ndarray
    scale: float
    origin: float = 0.0

    def locate(self, y):
        """Piece ``p`` and anchor ``q = max(p - 1, 0)`` of positions ``y`` relative to the origin."""
        piece = np.searchsorted(self.breakpoints, y, side="right")
        anchor = np.maximum(piece - 1, 0)
        return piece, anchor

    def score(self, x):
        """``s(x)`` for an array ``x`` of points."""
        y = np.asarray(x, dtype=np.float64) - self.origin
        piece, anchor = self.locate(y)
        return self.values[anchor] + self.slopes[piece] * (y - self.breakpoints[anchor])

    def jacobian_trace(self, x):
        """``s'(x)``, with :attr:`kink_traces` at exactly a breakpoint."""
        y = np.asarray(x, dtype=np.float64) - self.origin
        piece, anchor = self.locate(y)
        at_kink = (piece > 0) & (self.breakpoints[anchor] == y)
        return np.where(at_kink, self.kink_traces[anchor], self.slopes[piece])

    @property
    def intercepts(self):
        """``s(x) = slopes[p] x + intercepts[p]`` on piece ``p`` (loses digits far from 0)."""
        anchor = np.maximum(np.arange(self.slopes.size) - 1, 0)
        return self.values[anchor] - self.slopes * (self.breakpoints[anchor] + self.origin)


def _piecewise_linear(network):
    """:meth:`ScoreNetwork.piecewise`, by running sums over the sorted kinks."""
    ld = np.longdouble
    w = network.hidden_weights[:, 0]
    b = network.hidden_biases
    a = network.output_weights[:, 0]
    v = float(network.skip_weights[0, 0])
    relu = network.activation != "abs"
    flat = w == 0
    # units without kink are constants
    constant = ld(network.output_bias[0]) + np.sum(
        a[flat].astype(ld) * (np.maximum(b[flat], 0.0) if relu else np.abs(b[flat])))
    scale = abs(v) + float(np.sum(np.abs(a * w)))
    if np.all(flat):
        # no kink: one breakpoint at the score's zero keeps the numbers small
        t = np.array([float(-constant / v) if v < 0 else 0.0])
        value = float(constant + ld(v) * t[0])
        return PiecewiseLinearScore(t, np.array([v, v]), np.array([value]), np.array([v]), scale,
                                    float(network.origin[0]))
    kinks = -b[~flat] / w[~flat]
    order = np.argsort(kinks, kind="stable")
    kinks, w, b, a = kinks[order], w[~flat][order], b[~flat][order], a[~flat][order]
    first = np.flatnonzero(np.concatenate([[True], kinks[1:] != kinks[:-1]]))
    t = kinks[first]
    # products and sums in extended precision: terms ~1e10 cancel to scores ~1e5 near the bound
    gain, offset = a.astype(ld) * w, a.astype(ld) * b
    if relu:
        # on for x > t_j when w_j > 0, for x < t_j when w_j < 0
        on_left = w < 0
        left_slope, left_offset = np.where(on_left, gain, 0.0), np.where(on_left, offset, 0.0)
        # crossing t_j from left to right switches the unit on or off
        jump_slope, jump_offset = np.where(on_left, -gain, gain), np.where(on_left, -offset, offset)
        at_kink = np.minimum(gain, 0.0)
    else:
        # a_j |w_j x + b_j| = sign(w_j) (a_j w_j x + a_j b_j) sign(x - t_j): crossing flips it
        left_slope, left_offset = -np.sign(w) * gain, -np.sign(w) * offset
        jump_slope, jump_offset = -2.0 * left_slope, -2.0 * left_offset
        at_kink = -np.abs(gain)
    slopes = np.concatenate([[v + np.sum(left_slope)], np.add.reduceat(jump_slope, first)])
    offsets = np.concatenate([[constant + np.sum(left_offset)], np.add.reduceat(jump_offset, first)])
    slopes, offsets = np.cumsum(slopes), np.cumsum(offsets)
    values = slopes[1:] * t + offsets[1:]
    # at t_k: the other units' slope there plus each unit's smaller one-sided derivative
    kink_traces = slopes[:-1] - np.add.reduceat(left_slope, first) + np.add.reduceat(at_kink, first)
    return PiecewiseLinearScore(t, slopes.astype(np.float64), values.astype(np.float64),
                                kink_traces.astype(np.float64), scale, float(network.origin[0]))


def _to_original(W_z, b_z, A_z, V_z, c_z, standardization, activation):
    """Express a network fitted on ``z = (x - m) / s`` in ``x``, around the origin ``m``.

    ``s_x(x) = s_z((x - m) / s) / s`` (the score of the pushed-forward law):
    ``W = W_z / s``, ``A = A_z / s``, ``V = V_z / s^2`` and ``c = c_z / s``,
    the biases unchanged.
    """
    s = standardization.scale
    return ScoreNetwork(W_z / s, b_z, A_z / s, V_z / s**2, c_z / s, activation,
                        standardization.mean)


def recover_univariate(program, coef, slope, intercept, standardization, kink_shift=_KINK_SHIFT):
    """The network of a 1-D solution, kinks moved off the data points.

    Each atom ``u_j phi(o_j (z - t_j))`` with ``u_j != 0`` becomes one unit with
    ``|w| = sqrt|u_j|`` and output weight ``sign(u_j) sqrt|u_j|`` (balanced, so
    its weight decay is ``alpha |u_j|``), its kink moved to
    ``t_j + sign(u_j) delta_j`` so that the midpoint convention's better side
    is realised; ``delta_j`` is ``kink_shift`` times the gap to the nearest
    distinct neighbour, but at least 64 roundings of the kink's coordinate
    (at most a quarter of the gap). The network's objective tends to the
    convex optimum as ``kink_shift -> 0``; the estimators check that it
    reproduces it (points a few roundings apart may not leave the room).

    Parameters
    ----------
    program : UnivariateProgram
    coef : ndarray of shape (n_atoms,)
    slope, intercept : float
        Skip connection (ignored without one).
    standardization : Standardization
    kink_shift : float, default=1e-9

    Returns
    -------
    network : ScoreNetwork
    """
    coef = np.asarray(coef, dtype=np.float64)
    active = _nonzero(coef)
    kinks = program.kinks[active]
    u = coef[active]
    orient = program.orientations[active]
    values = np.unique(program.x)
    gap = np.full(values.shape, np.inf)
    if values.size > 1:
        steps = np.diff(values)
        gap[:-1] = steps
        gap[1:] = np.minimum(gap[1:], steps)
    gap = gap[np.searchsorted(values, kinks)]
    floor = _SHIFT_ROUNDINGS * np.finfo(np.float64).eps * np.abs(kinks)
    delta = np.minimum(np.maximum(kink_shift * gap, floor), _MAX_GAP_FRACTION * gap)
    t = kinks + np.sign(u) * delta
    root = np.sqrt(np.abs(u))
    w = orient * root
    W_z = w[:, None]
    b_z = -w * t
    A_z = (np.sign(u) * root)[:, None]
    if program.skip_connection:
        V_z, c_z = np.array([[slope]], dtype=np.float64), np.array([intercept], dtype=np.float64)
    else:
        V_z, c_z = np.zeros((1, 1)), np.zeros(1)
    return _to_original(W_z, b_z, A_z, V_z, c_z, standardization, program.activation)


def recover_arrangement(program, solutions, standardization, cone_nudge=_CONE_NUDGE):
    """The network of a d >= 2 solution (all outputs).

    Every non-zero ``v_i`` (``w_i``) of output ``k`` becomes the unit
    ``v_i / sqrt||v_i[:d]||`` with output weight ``+sqrt||v_i[:d]||``
    (``-`` for ``w_i``) on coordinate ``k``. The unit is first nudged towards
    its pattern's interior gate by ``cone_nudge ||v_i||`` so that its activation
    pattern on the points is exactly ``D_i`` (points on the cone's boundary
    would otherwise depend on the derivative convention at 0). A unit with a
    zero input weight is a constant (its weight decay vanishes as its bias
    grows): it is added to the output bias (only the all-active pattern,
    kept without skip connection, admits such a unit).

    Parameters
    ----------
    program : ArrangementProgram
    solutions : list of OutputSolution
        One per output coordinate, in order.
    standardization : Standardization
    cone_nudge : float, default=1e-8

    Returns
    -------
    network : ScoreNetwork
    """
    d = program.d
    gates = program.gates
    features, signs = program.features, program.signs
    Ws, bs, As = [], [], []
    skip = program.skip_connection
    bias = np.array([s.intercept for s in solutions], dtype=np.float64) if skip else np.zeros(d)
    for k, solution in enumerate(solutions):
        for weights, sign in ((solution.positive, 1.0), (solution.negative, -1.0)):
            # a block with a zero slope is zero unless its pattern is all-active (kept
            # without skip connection): it is then a constant, the limit of a unit with a
            # vanishing slope and a growing bias whose weight decay vanishes
            keep = _nonzero(np.linalg.norm(weights[:, :d], axis=1))
            bias[k] += sign * float(np.sum(weights[~keep, d]))
            if not np.any(keep):
                continue
            v = _nudge_into_cone(weights[keep], gates[keep], signs[:, keep], features, cone_nudge)
            root = np.sqrt(np.linalg.norm(v[:, :d], axis=1))
            unit = v / root[:, None]
            Ws.append(unit[:, :d])
            bs.append(unit[:, d])
            out = np.zeros((unit.shape[0], d))
            out[:, k] = sign * root
            As.append(out)
    W_z = np.vstack(Ws) if Ws else np.zeros((0, d))
    b_z = np.concatenate(bs) if bs else np.zeros(0)
    A_z = np.vstack(As) if As else np.zeros((0, d))
    V_z = np.stack([s.skip_row for s in solutions]).astype(np.float64) if skip else np.zeros((d, d))
    return _to_original(W_z, b_z, A_z, V_z, bias, standardization, program.activation)


def _nudge_into_cone(weights, gates, signs, features, nudge):
    """Move each row of ``weights`` towards its interior gate until strictly inside.

    The step is ``nudge ||v||``, or twice what it takes to fix the worst
    (solver-tolerance) violation of the cone constraints if that is larger.
    """
    norms = np.linalg.norm(weights, axis=1)
    own = signs * (features @ weights.T)  # (n, units), >= 0 up to solver tolerance
    gate = signs * (features @ gates.T)  # > 0 strictly: interior gates
    needed = np.max(np.maximum(-own, 0.0) / gate, axis=0) / np.maximum(norms, 1e-300)
    step = np.maximum(nudge, 2.0 * needed) * norms
    return weights + step[:, None] * gates


def _nonzero(values):
    """Entries that are exactly non-zero (solvers zero their own noise)."""
    return np.asarray(values) != 0
