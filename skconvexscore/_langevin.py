r"""Unadjusted (and annealed) Langevin dynamics driven by a fitted score network.

The paper's update (shared/design/math.md, section 5), with step size
``\epsilon``, applied to all chains at once as one ``(n_samples, d)`` tensor:

.. math::

    x \leftarrow x + \frac{\epsilon}{2} s(x) + \sqrt{\epsilon}\, z,
    \qquad z \sim N(0, I).

The score ``s(x) = A^\top \phi(W x + b) + V x + c`` is evaluated with three
fused matrix products on tensors of the NumPy weights (in 1-D from its linear
pieces, by a sorted search), under ``torch.inference_mode`` (no autograd
graph), on the CPU or a GPU. Torch is imported inside the functions so that
``import skconvexscore`` stays light.

Stability, on the Gaussian score ``s(x) = -(x - m) / v``: the update is the
AR(1) recursion ``x - m <- (1 - \epsilon / (2v)) (x - m) + \sqrt\epsilon z``,
stable iff ``|1 - \epsilon/(2v)| < 1``, i.e. ``\epsilon < 4v``, with the
exact stationary law

.. math::

    N\Big(m,\; \frac{\epsilon}{1 - (1 - \epsilon/(2v))^2}\Big)
    = N\Big(m,\; \frac{v}{1 - \epsilon/(4v)}\Big).

The discretisation inflates the variance by ``1 / (1 - \epsilon/(4v))``: this
bias, not stability alone, is what :func:`auto_step_size` controls.
"""

import math
import numbers
import warnings

import numpy as np
from sklearn.utils import check_random_state
from threadpoolctl import threadpool_limits

from ._devices import resolve_device, resolve_dtype

__all__ = [
    "LangevinDivergenceError",
    "NonNormalisableModelWarning",
    "auto_step_size",
    "initial_state",
    "langevin_sample",
    "warn_if_not_normalisable",
]

# Chains further than this many data radii from the data mean have diverged.
_ESCAPE_FACTOR = 20.0
# Elements of the (hidden units x chains) activation buffer per chunk of chains:
# bounds memory (1e6 chains x 1000 units would be 8 GB in float64) and keeps
# the buffer near cache on the CPU (2^19 measured fastest for d = 2).
_CPU_CHUNK_ELEMENTS = 2**19
# Below this many multiply-adds per step and chunk (chains x units x (d + 1)) the CPU chains run
# on one thread: the threads cannot pay for their synchronisation there, and with the other
# core busy each step waited for a descheduled thread (500 chains of a 1-D model, 1000 steps:
# 7.7 s on two threads, 0.03 s on one; 20,000 chains x 69 units in 2-D: 0.07 s on two, 0.11 s
# on one).
_CPU_THREADED_WORK = 2**20
# An explicit step in d > 1 is checked on the local Jacobians of at most this many starting
# points, and within a budget of flops for their eigenvalues (20 points in 100-D).
_STABILITY_POINTS = 4096
_STABILITY_BUDGET = 2 * 10**7
_GPU_CHUNK_ELEMENTS = 2**28


class LangevinDivergenceError(RuntimeError):
    """Langevin chains became non-finite or escaped far beyond the data.

    The message names the step size to try. Raised instead of returning
    samples that contain NaN or infinite values.
    """


class NonNormalisableModelWarning(RuntimeWarning):
    """A univariate model sampled by Langevin dynamics has a tail that does not decay.

    Such a model has no stationary law: chains that reach the tail drift away
    from the data, so some samples may lie far outside it.
    """


def check_step_size(step_size):
    """``"auto"``, or ``step_size`` as a positive finite float; ValueError otherwise."""
    if isinstance(step_size, str):
        if step_size != "auto":
            raise ValueError(f"step_size={step_size!r}: use a positive float or 'auto'.")
        return step_size
    # float(True) is 1.0: a flag passed by mistake must not become a step of 1
    # (scikit-learn's Real constraints reject bools the same way)
    if isinstance(step_size, (bool, np.bool_)):
        raise ValueError(f"step_size must be a positive finite float or 'auto', got {step_size!r} (a bool).")
    try:
        value = float(step_size)
    except (TypeError, ValueError):
        value = np.nan
    if not (value > 0 and np.isfinite(value)):
        raise ValueError(f"step_size must be a positive finite float or 'auto', got {step_size!r}.")
    return value


def _lipschitz(network):
    r"""An upper bound on the Lipschitz constant of the score network.

    Exact in 1-D (the largest absolute slope of the linear pieces). In d > 1
    row ``k`` of the Jacobian is ``\sum_{j \to k} \phi'_j r_j w_j + V_k``, so
    ``\|J\|_2 \le \|J\|_F \le (\sum_k (\sum_{j \to k} |r_j| \|w_j\| +
    \|V_k\|)^2)^{1/2}``; the smaller of this and
    :meth:`ScoreNetwork.lipschitz_bound` is returned.
    """
    if network.n_features == 1:
        return float(np.max(np.abs(network.piecewise().slopes)))
    gains = np.abs(network.output_weights) * np.linalg.norm(network.hidden_weights, axis=1)[:, None]
    rows = gains.sum(axis=0) + np.linalg.norm(network.skip_weights, axis=1)
    return min(float(np.sqrt(np.sum(rows**2))), network.lipschitz_bound())


def auto_step_size(networks, data_scale, *, noise_levels=None, accuracy=0.05):
    r"""A stable Langevin step size from the score's Lipschitz bound and the data scale.

    Rule. Let ``L`` bound the Lipschitz constant of the score (exact in 1-D)
    and ``s`` be the data scale. With the curvature
    ``\lambda = \max(L, 1/s^2)``

    .. math::

        \epsilon = \frac{4}{\lambda} \cdot \frac{a}{1 + a},
        \qquad a = \text{accuracy}.

    Why: on a Gaussian score of variance ``v`` (``L = 1/v``) the update is
    stable iff ``\epsilon < 4v`` and its stationary variance is
    ``v / (1 - \epsilon/(4v))``; the rule gives exactly ``(1 + a) v``, a
    relative variance bias ``a`` along the stiffest direction, and a factor
    ``(1 + a)/a`` below the stability limit. The score of any model is at
    most ``L``-stiff, so the same step is stable for it. The ``1/s^2``
    floor stops a flat score (``L`` near 0: a random walk) from taking steps
    larger than the data. Each step then moves a chain a fraction
    ``\sqrt{\epsilon} \le 0.43 s`` of the data scale: when ``L`` is near
    ``1/s^2`` (smooth fits) a chain mixes across the data in ``O(1/a)``
    steps, but a fit near the well-posedness bound has ``L`` up to ``~1/gap^2``
    and steps to match, and its chains barely leave their starting points
    (``init="data"`` then keeps the data's mode weights, not the model's:
    sample such 1-D models with ``method="exact"``).

    Annealed Langevin (``noise_levels`` given, largest first) runs level ``i``
    with ``\epsilon_i = \epsilon \sigma_i^2 / \sigma_L^2``; the base step is the
    largest for which every level's step obeys the rule for its own network:
    ``\epsilon = \min_i \epsilon^{auto}_i \sigma_L^2 / \sigma_i^2``. Level
    ``i`` has its own floor, ``\lambda_i = \max(L_i, 1/(s^2 + \sigma_i^2 -
    \sigma_L^2))``: its law is the smallest level's law smoothed by a further
    ``N(0, (\sigma_i^2 - \sigma_L^2) I)`` (Gaussian smoothings add), so its
    spread is ``\sigma_i^2 - \sigma_L^2`` above the one the floor assumes at
    the smallest level. A floor of ``1/s^2`` at every level would cap the
    largest level's step near ``s^2`` where its law spreads over
    ``s^2 + \sigma_1^2``, and through the minimum divide every level's step
    by up to ``\sigma_1^2 / s^2``. The smallest level (and a single level)
    keeps the floor ``1/s^2``.

    Parameters
    ----------
    networks : ScoreNetwork or list of ScoreNetwork
    data_scale : float
        Scale of the data (the estimators' ``scale_``).
    noise_levels : array-like of shape (n_levels,), default=None
        Decreasing noise levels aligned with ``networks``.
    accuracy : float, default=0.05
        Relative variance bias ``a`` tolerated on a Gaussian score.

    Returns
    -------
    step_size : float
        The base step (the step of the last, smallest, level).
    """
    if not isinstance(networks, (list, tuple)):
        networks = [networks]
    if not (data_scale > 0 and np.isfinite(data_scale)):
        raise ValueError(f"data_scale must be positive and finite, got {data_scale!r}.")
    if not accuracy > 0:
        raise ValueError(f"accuracy must be positive, got {accuracy!r}.")
    factor = 4.0 * accuracy / (1.0 + accuracy)
    ratios = _level_ratios(noise_levels, len(networks))
    # variance each level's law has beyond the smallest level's: sigma_i^2 - sigma_L^2
    if noise_levels is None:
        extra = np.zeros(1)
    else:
        levels = np.asarray(noise_levels, dtype=np.float64).reshape(-1)
        extra = levels**2 - levels[-1] ** 2
    floors = 1.0 / (data_scale**2 + extra)
    steps = np.array([factor / max(_lipschitz(net), floor) for net, floor in zip(networks, floors)])
    return float(np.min(steps / ratios))


def _is_integer(value):
    """An integer that is not a bool (``True`` is an Integral, but never a count)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def warn_if_not_normalisable(networks, noise_levels=None, stacklevel=2):
    """Warn when a univariate network has a tail along which its density does not decay.

    On such a tail the score does not point back to the data (a positive
    slope, or a constant score pointing outwards), so the model has no
    stationary law: Langevin chains that reach it drift away and are returned
    among the samples, however small the step. The check reads the score's
    outer linear pieces only. With ``d > 1`` only the plainest case is caught:
    a field that, far from the data, points back towards them along none of a
    fixed set of directions (the zero score, for one). A field that points
    outwards along some directions only is not reported: it may still carry
    the chains round to where it pulls them back.

    Parameters
    ----------
    networks : ScoreNetwork or list of ScoreNetwork
    noise_levels : array-like of shape (n_levels,), default=None
        Noise levels aligned with ``networks``, named in the warning.
    stacklevel : int, default=2
        Passed to :func:`warnings.warn`.

    Returns
    -------
    normalisable : bool
        False when a warning was emitted.

    Warns
    -----
    NonNormalisableModelWarning
        Naming the level, the tail and its slope.
    """
    if not isinstance(networks, (list, tuple)):
        networks = [networks]
    problems = []
    for level, network in enumerate(networks):
        defects = _tail_report(network) if network.n_features == 1 else _far_field_report(network)
        if defects is None:
            continue
        where = _level_phrase(level, len(networks), noise_levels)
        problems.append(f"The model{where} is not normalisable: {defects}.")
    if not problems:
        return True
    from ._density import remedy

    warnings.warn(
        " ".join(problems) + " It has no stationary law there: Langevin chains that reach such a tail "
        "drift away from the data, and the samples include them (or sampling stops with a "
        "LangevinDivergenceError), whatever the step size. This happens with a weight decay too small "
        "for the data, with activation='abs' without a skip connection, or with alpha so large that "
        f"no unit is left; {remedy(' '.join(problems))}.",
        NonNormalisableModelWarning,
        stacklevel=stacklevel,
    )
    return False


def _level_phrase(level, n_levels, noise_levels):
    """`` at noise level i of L (sigma=...)`` for annealed sampling, else ``""``."""
    if n_levels <= 1 or noise_levels is None:
        return ""
    return f" at noise level {level + 1} of {n_levels} (sigma={float(noise_levels[level]):.4g})"


def _tail_report(network):
    """``None`` if a univariate ``network`` is normalisable, else its defective tails in words."""
    from ._density import tail_defects

    defects = tail_defects(network)
    return "; ".join(defects) if defects else None


def _far_field_report(network, n_directions=256):
    """``None`` unless a ``d > 1`` ``network`` points back to its data along no direction.

    Far from the kinks the score is positively homogeneous of degree 1 around
    the origin, so ``u . s(o + R u)`` at a large ``R`` has the sign of its
    radial part along ``u``. If it is nowhere negative, ``|x|^2`` grows under the
    drift and the noise alike at large radius: the chains never come back. The
    directions are the coordinate axes and a fixed pseudo-random set (the
    caller's random state is not consumed).
    """
    d = network.n_features
    directions = np.vstack([np.eye(d), -np.eye(d),
                            np.random.default_rng(0).standard_normal((n_directions, d))])
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    norms = np.linalg.norm(network.hidden_weights, axis=1)
    reach = np.abs(network.hidden_biases[norms > 0]) / norms[norms > 0]
    radius = 1e3 * max(1.0, float(reach.max(initial=0.0)))
    radial = np.einsum("ij,ij->i", directions, network.score(network.origin + radius * directions))
    if np.any(radial < 0):
        return None
    return "far from the data its score points back towards them along no direction"


def _level_ratios(noise_levels, n_networks):
    """``sigma_i^2 / sigma_L^2`` per level (ones without noise levels)."""
    if noise_levels is None:
        if n_networks != 1:
            raise ValueError(
                f"{n_networks} networks were given without noise_levels: annealed Langevin needs "
                "the noise level of every network (largest first)."
            )
        return np.ones(1)
    levels = np.asarray(noise_levels, dtype=np.float64).reshape(-1)
    if levels.size != n_networks:
        raise ValueError(f"{levels.size} noise levels for {n_networks} networks.")
    if np.any(~np.isfinite(levels)) or np.any(levels <= 0):
        raise ValueError(f"noise levels must be positive and finite, got {levels}.")
    if np.any(np.diff(levels) > 0):
        raise ValueError(f"noise levels must be in decreasing order (largest first), got {levels}.")
    return levels**2 / levels[-1] ** 2


def initial_state(init, n_samples, *, X=None, location=None, scale=None, jitter=0.0, random_state=None):
    """Starting points of the chains.

    Parameters
    ----------
    init : {"data", "gaussian"} or array-like of shape (n_samples, d)
        ``"data"``: training points drawn with replacement plus
        ``N(0, jitter^2 I)`` noise (the chains start near the target law).
        ``"gaussian"``: ``N(location, scale^2 I)``. An array is used as is.
    n_samples : int
    X : ndarray of shape (n, d), default=None
        Training data (for ``"data"``).
    location : ndarray of shape (d,), default=None
    scale : float, default=None
    jitter : float, default=0.0
        Noise added to resampled training points.
    random_state : int, RandomState instance or None, default=None

    Returns
    -------
    init : ndarray of shape (n_samples, d), float64
    """
    rng = check_random_state(random_state)
    if isinstance(init, str):
        if init == "data":
            X = np.asarray(X, dtype=np.float64)
            start = X[rng.randint(X.shape[0], size=n_samples)]
            if jitter > 0:
                start = start + jitter * rng.standard_normal(start.shape)
            return start
        if init == "gaussian":
            location = np.asarray(location, dtype=np.float64).reshape(-1)
            return location + float(scale) * rng.standard_normal((n_samples, location.size))
        raise ValueError(f"init={init!r}: use 'data', 'gaussian' or an array of shape (n_samples, n_features).")
    start = np.asarray(init, dtype=np.float64)
    d = None if X is None else np.asarray(X).shape[1]
    if start.ndim != 2 or start.shape[0] != n_samples or (d is not None and start.shape[1] != d):
        expected = f"({n_samples}, {d if d is not None else 'n_features'})"
        raise ValueError(f"init has shape {start.shape}; an array init must have shape {expected}.")
    if not np.all(np.isfinite(start)):
        raise ValueError("init contains NaN or infinite values.")
    return start.copy()


def langevin_sample(
    networks,
    n_samples,
    *,
    n_steps,
    step_size,
    init,
    noise_levels=None,
    device="cpu",
    dtype=None,
    random_state=None,
    progress=False,
    data_scale=None,
    data_center=None,
    data_radius=None,
    escape_factor=_ESCAPE_FACTOR,
    check_every=10,
    chunk_size=None,
):
    r"""Run unadjusted (annealed) Langevin dynamics on a score network.

    Every chain follows ``x <- x + (eps/2) s(x) + sqrt(eps) z``. With several
    networks (a noise-conditional DSM model, ``noise_levels`` largest first)
    this is annealed Langevin (Song & Ermon, 2019): ``n_steps`` steps with
    network ``i`` and step ``eps_i = eps sigma_i^2 / sigma_L^2``, level after
    level, each level starting where the previous one stopped.

    Parameters
    ----------
    networks : ScoreNetwork or list of ScoreNetwork
    n_samples : int
        Number of chains (one sample each: the final state).
    n_steps : int
        Steps per noise level.
    step_size : float or "auto"
        ``eps`` (the smallest level's step). ``"auto"``: :func:`auto_step_size`
        with ``data_scale``.
    init : ndarray of shape (n_samples, d)
        Starting points (see :func:`initial_state`).
    noise_levels : array-like of shape (n_levels,), default=None
        Decreasing noise levels aligned with ``networks`` (annealing only).
    device : str or torch.device, default="cpu"
        See :func:`~skconvexscore._devices.resolve_device`.
    dtype : torch.dtype, numpy dtype or str, default=None
        float64 on the CPU, float32 on a GPU by default.
    random_state : int, RandomState instance or None, default=None
        Seeds a :class:`torch.Generator` on ``device``: the same seed gives the
        same samples on the same device, dtype and chunking.
    progress : bool, default=False
        Show a tqdm progress bar (needs ``tqdm``).
    data_scale : float, default=None
        Data scale for ``step_size="auto"`` and the divergence radius (default:
        the root-mean-square spread of ``init``, at least ``1/sqrt(L)`` for the
        score's Lipschitz bound ``L``).
    data_center : ndarray of shape (d,), default=None
        Centre of the data (default: the mean of ``init``).
    data_radius : float, default=None
        Largest distance of the data from ``data_center`` (default: that of
        ``init``).
    escape_factor : float, default=20
        Chains further than ``escape_factor * R`` from ``data_center`` have
        diverged, with ``R = max(data_radius, r_0, sqrt(d) data_scale, sqrt(d)
        sigma_1)`` and ``r_0`` the largest distance of ``init`` from
        ``data_center`` (chains started far away are not diverging while they
        return).
    check_every : int, default=10
        Steps between divergence checks (each check synchronises a GPU).
    chunk_size : int, default=None
        Chains advanced together; by default enough to fill about 2^19
        activations on the CPU (cache) and 2^28 on a GPU (in 1-D, where no
        activations are formed, 2^19 or 2^28 chains). Chunks run one after
        another through all the steps.

    Returns
    -------
    samples : ndarray of shape (n_samples, d), float64

    Raises
    ------
    LangevinDivergenceError
        If any chain becomes non-finite or escapes beyond ``escape_factor``
        data radii; the message names the step size to try.
    """
    import torch

    if not isinstance(networks, (list, tuple)):
        networks = [networks]
    networks = list(networks)
    ratios = _level_ratios(noise_levels, len(networks))
    d = networks[0].n_features
    if any(net.n_features != d for net in networks):
        raise ValueError("All networks must have the same number of features.")
    if not _is_integer(n_steps) or n_steps < 0:
        raise ValueError(f"n_steps must be a non-negative integer, got {n_steps!r}.")
    if not _is_integer(n_samples) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}.")

    start = np.asarray(init, dtype=np.float64)
    if start.shape != (n_samples, d) or not np.all(np.isfinite(start)):
        raise ValueError(f"init must be a finite array of shape ({n_samples}, {d}), got shape {start.shape}.")

    # chains move relative to the first network's origin (the data's mean for fitted
    # networks): in float32 on a GPU, data offset by 1e6 would otherwise keep 0.06 of resolution.
    # They are stored as the columns of a (d, n) array: one transposed copy serves the
    # statistics below (sums along its contiguous rows, 10x faster than down the columns of
    # init) and the transfers
    origin = networks[0].origin
    columns = np.subtract(start.T, origin[:, None], order="C")
    if data_center is None:
        data_center = origin + columns.mean(axis=1)
    data_center = np.asarray(data_center, dtype=np.float64).reshape(d)
    offsets = columns - (data_center - origin)[:, None]
    squared_spread = np.sum(np.multiply(offsets, offsets, out=offsets), axis=0)
    if data_scale is None:
        # the spread of the starting points, but at least the narrowest width
        # 1/sqrt(L) of the model (chains started at one point must not count as
        # escaping as soon as they spread out)
        lipschitz = max(_lipschitz(net) for net in networks)
        data_scale = float(np.sqrt(np.mean(squared_spread) / d))
        if lipschitz > 0:
            data_scale = max(data_scale, 1.0 / math.sqrt(lipschitz))
        if not data_scale > 1e-12 * (1.0 + float(np.abs(data_center).max())):
            data_scale = 1.0
    largest_noise = 0.0 if noise_levels is None else float(np.max(noise_levels))
    # the radius covers the starting points too: a chain started far from the data (an array
    # init) has not diverged while it comes back
    radius = max(math.sqrt(float(squared_spread.max())), 0.0 if data_radius is None else data_radius,
                 math.sqrt(d) * data_scale, math.sqrt(d) * largest_noise)
    escape_radius = escape_factor * radius

    auto = None
    step_size = check_step_size(step_size)
    if step_size == "auto":
        auto = step_size = auto_step_size(networks, data_scale, noise_levels=noise_levels)
    steps = step_size * ratios
    if auto is None:
        _warn_if_unstable(networks, steps, noise_levels, start)

    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    rng = check_random_state(random_state)
    generator = torch.Generator(device=torch_device)
    generator.manual_seed(int(rng.randint(0, 2**31 - 1)))

    # univariate networks are evaluated through their linear pieces (a sorted
    # search per chain); the rest through their hidden units
    n_units = 1 if d == 1 else max(max(net.n_units for net in networks), 1)
    if chunk_size is None:
        budget = _CPU_CHUNK_ELEMENTS if torch_device.type == "cpu" else _GPU_CHUNK_ELEMENTS
        chunk_size = max(1024, budget // n_units)
    chunk_size = int(min(chunk_size, n_samples))

    def tensor(array):
        return torch.as_tensor(np.ascontiguousarray(array), dtype=torch_dtype, device=torch_device)

    drifts = [_drift(net.recentred(origin), tensor) for net in networks]
    center = tensor((data_center - origin)[:, None])

    small = torch_device.type == "cpu" and chunk_size * n_units * (d + 1) < _CPU_THREADED_WORK
    bar = _progress_bar(progress, total=n_samples * n_steps * len(networks))
    try:
        with torch.inference_mode(), threadpool_limits(limits=1 if small else None):
            for begin in range(0, n_samples, chunk_size):
                stop = min(begin + chunk_size, n_samples)
                # a last row of ones carries the biases into the matrix products
                state = torch.ones((d + 1, stop - begin), dtype=torch_dtype, device=torch_device)
                state[:d].copy_(torch.from_numpy(columns[:, begin:stop]))
                _run_chunk(
                    state, drifts, steps, n_steps, generator, center, escape_radius, check_every,
                    bar, diagnose=lambda level, step, reason: _divergence_message(
                        reason, level, step, n_steps, len(networks), step_size, steps, networks,
                        auto, data_scale, noise_levels, escape_radius,
                    ),
                )
                columns[:, begin:stop] = state[:d].to(device="cpu", dtype=torch.float64).numpy()
    finally:
        if bar is not None:
            bar.close()
    return np.add(columns.T, origin, order="C")


def _warn_if_unstable(networks, steps, noise_levels, start):
    r"""Warn when a level's step exceeds the stability limit of the score where it is steep.

    On a piece where the score has slope ``-kappa < 0`` the update is the AR(1) recursion with
    factor ``1 - eps kappa / 2``: unstable for ``eps >= 4 / kappa`` (shared/design/math.md 5).
    Chains thrown out of a narrow steep piece need not diverge, so no error is raised, but the
    samples then miss the model's law by far more than the O(eps) bias. In 1-D every piece is
    checked. In d > 1 the score is affine on each activation region, where the update
    multiplies deviations by ``I + (eps/2) J``; an eigenvalue ``lambda`` of ``J`` with
    ``Re lambda < 0`` is overshot when ``|1 + eps lambda / 2| >= 1``, i.e. ``eps >= -4 Re lambda
    / |lambda|^2`` (``4 / kappa`` for a real one). The regions checked are those of the
    starting points ``start`` (a spread subset of them, see :data:`_STABILITY_POINTS`). A
    locally expanding direction (``Re lambda >= 0``, between modes) is the model's, not the
    step's, and is not reported.
    """
    d = networks[0].n_features
    if d > 1:
        n_points = int(min(start.shape[0], _STABILITY_POINTS, max(8, _STABILITY_BUDGET // d**3)))
        points = start[np.linspace(0, start.shape[0] - 1, n_points).astype(np.int64)]
    for level, (network, step) in enumerate(zip(networks, steps)):
        if d == 1:
            rates = network.piecewise().slopes.astype(np.complex128)
        else:
            rates = np.linalg.eigvals(network.jacobians(points)).ravel()
        rates = rates[rates.real < 0]
        if rates.size == 0:
            continue
        limits = -4.0 * rates.real / np.abs(rates) ** 2
        steepest = int(np.argmin(limits))
        limit, rate = float(limits[steepest]), complex(rates[steepest])
        if step >= limit:
            where = _level_phrase(level, len(networks), noise_levels)
            growth = abs(1.0 + 0.5 * float(step) * rate)
            shown = f"{rate.real:.4g}" if rate.imag == 0 else f"{rate:.4g}"
            warnings.warn(
                f"Langevin step {float(step):.4g}{where} is above the stability limit "
                f"{limit:.4g} of the score where it is steepest (rate {shown}: the update "
                f"multiplies deviations there by {growth:.4g} per step): chains are thrown "
                f"out of it and the samples do not follow the "
                f"model. Use step_size below {limit * float(steps[-1] / step):.4g}, or "
                f"step_size='auto'.",
                RuntimeWarning,
                stacklevel=4,
            )
            return


def _drift(network, tensor):
    r"""``drift(state, out)``: the score of ``network`` at the chains into ``out`` (shape (d, chunk)).

    ``state`` (shape (d + 1, chunk)) holds the chains as columns, ``x^T``,
    relative to the network's origin, over a row of ones. With ``d >= 2`` the
    score is ``s^T = A^T phi([W, b] state) + [V, c] state``: three matrix
    products into preallocated buffers, the biases carried by the row of
    ones. A bias added by ``addmm`` is first broadcast over the whole
    (units x chains) product, which took 3.5x the time of the product itself
    on a GPU (measured, H200, 1000 units). The output product (d x units) @
    (units x chains) runs 2-3x faster on the CPU than the skinny (chains x
    units) @ (units x d) of the row layout (measured, d = 2). With ``d = 1`` it is read off the
    network's linear pieces (:meth:`~skconvexscore.ScoreNetwork.piecewise`):
    a sorted search per chain, whatever the number of units (a fit on a
    million points near the well-posedness bound has about 1.4e5).
    """
    import torch

    if network.n_features == 1:
        pieces = network.piecewise()
        t, slopes, values = (tensor(a) for a in (pieces.breakpoints, pieces.slopes, pieces.values))

        def piecewise_drift(state, out):
            row = state[0]
            piece = torch.searchsorted(t, row, right=True)
            anchor = (piece - 1).clamp_(min=0)
            # index_select, not t[anchor]: the same gather, but advanced indexing runs a
            # parallel kernel that on a busy 2-core CPU took 8 ms for 20,000 chains (measured)
            torch.sub(row, t.index_select(0, anchor), out=out[0])
            out[0].mul_(slopes.index_select(0, piece)).add_(values.index_select(0, anchor))

        return piecewise_drift

    hidden_weights = tensor(np.column_stack([network.hidden_weights, network.hidden_biases]))
    skip_weights = tensor(np.column_stack([network.skip_weights, network.output_bias]))
    At = tensor(network.output_weights.T)
    if network.n_units == 0:
        return lambda state, out: torch.mm(skip_weights, state, out=out)
    buffer = {}

    def dense_drift(state, out):
        hidden = buffer.get(state.shape[1])
        if hidden is None:
            hidden = buffer[state.shape[1]] = state.new_empty((At.shape[1], state.shape[1]))
        torch.mm(hidden_weights, state, out=hidden)
        if network.activation == "abs":
            hidden.abs_()
        else:
            hidden.relu_()
        torch.mm(At, hidden, out=out)
        out.addmm_(skip_weights, state)

    return dense_drift


def _run_chunk(state, drifts, steps, n_steps, generator, center, escape_radius, check_every, bar,
               diagnose):
    """Advance the chains (the first d rows of ``state``, in place) through every level."""
    import torch

    x = state[:-1]
    d, n = x.shape
    # The Gaussian increments are drawn in float32 whatever the chains' dtype:
    # torch's CPU normal sampler is ~5x faster in float32 and dominates the cost
    # of a step for small networks; 24-bit increments (tails cut near 5.8 sd by
    # the float32 Box-Muller) change the noise variance by ~1e-8 relative, far
    # below the O(eps) discretisation bias of the unadjusted update.
    noise = torch.empty((d, n), dtype=torch.float32, device=x.device)
    drift = torch.empty_like(x)
    escape2 = escape_radius**2
    for level, (score, step) in enumerate(zip(drifts, steps)):
        half, root = 0.5 * float(step), math.sqrt(float(step))
        done = 0
        while done < n_steps:
            block = min(check_every, n_steps - done)
            for _ in range(block):
                score(state, drift)
                x.add_(drift, alpha=half)
                noise.normal_(generator=generator)
                x.add_(noise, alpha=root)
            done += block
            # one reduction, one synchronisation: NaN/inf make the comparison False
            farthest2 = float(((x - center) ** 2).sum(dim=0).max())
            if not farthest2 <= escape2:
                reason = "non-finite" if not math.isfinite(farthest2) else math.sqrt(farthest2)
                raise LangevinDivergenceError(diagnose(level, done, reason))
            if bar is not None:
                bar.update(n * block)


def _divergence_message(reason, level, step, n_steps, n_levels, step_size, steps, networks, auto,
                        data_scale, noise_levels, escape_radius):
    """Explain a divergence and name the step size to try."""
    where = f"by step {step} of {n_steps}" + _level_phrase(level, n_levels, noise_levels)
    if reason == "non-finite":
        what = "Langevin chains diverged: some became non-finite (inf/NaN)"
    else:
        what = (
            f"Langevin chains escaped to distance {reason:.4g} from the data centre, beyond "
            f"{escape_radius:.4g} (the divergence radius)"
        )
    lipschitz = _lipschitz(networks[level])
    limit = 4.0 / lipschitz if lipschitz > 0 else float("inf")
    try:
        recommended = auto_step_size(networks, data_scale, noise_levels=noise_levels)
    except ValueError:
        recommended = None
    suggestion = 0.5 * step_size
    if recommended is not None and recommended < suggestion:
        suggestion = recommended
    message = (
        f"{what} {where}, with step_size={step_size:.4g} (step {float(steps[level]):.4g} at this level). "
        f"The update x <- x + (eps/2) s(x) + sqrt(eps) z is stable only for eps below about 4/L "
        f"= {limit:.4g}, L = {lipschitz:.4g} the score's Lipschitz bound. "
        f"Try step_size={suggestion:.4g}"
    )
    if recommended is not None and auto is None:
        message += f" (step_size='auto' gives {recommended:.4g})"
    message += "."
    # a univariate model can say for certain whether it has a stationary law at all
    univariate = networks[level].n_features == 1
    defects = _tail_report(networks[level]) if univariate else None
    from ._density import remedy

    no_law = (
        f"not normalisable: {defects}. It has no stationary law, so chains that reach that tail "
        f"drift away whatever the step size (a smaller step only delays it): {remedy(defects or '')}"
    )
    if auto is None:
        if defects is not None:
            message += f" The model is also {no_law}."
    elif defects is not None:
        message += (
            f" The automatic step already respects the stability limit, and the model itself is {no_law}, "
            "or sample with init='data' and fewer steps."
        )
    else:
        model = (
            "the model is normalisable (both tails decay) but may put mass far from the data"
            if univariate else
            "the model itself may put mass far from the data (a score that does not point back to "
            "the data in its tails)"
        )
        message += (
            f" The automatic step already respects the stability limit, so {model}: check the fit "
            "(larger alpha) or sample with init='data' and fewer steps."
        )
    return message


def _progress_bar(progress, total):
    if not progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError as exc:  # pragma: no cover - tqdm is an optional dependency
        raise ImportError("progress=True needs tqdm: pip install tqdm (or skconvexscore[progress]).") from exc
    return tqdm(total=total, unit="chain-step", unit_scale=True, desc="Langevin")
