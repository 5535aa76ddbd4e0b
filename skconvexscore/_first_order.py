r"""First-order solver for the arrangement programs (d >= 2), in PyTorch.

Output ``k``'s program (math notes 4.1, 4.2; :class:`ArrangementProgram`) is a
group lasso over ``2 P`` blocks ``u_j`` in ``R^{d+1}`` (the ``v_i`` then the
``w_i``, with output signs ``sigma_j = +1, -1``), each in a polyhedral cone::

    min_{u, beta}  g(u, beta) + alpha sum_j ||u_j[:d]||
    s.t.           K_j u_j = G_j * (Zt u_j) >= 0        (n constraints per block)

    g = (1/n) [ 1/2 ||A u + B beta - y||^2 + c . u + b . beta ]
    A u = sum_j sigma_j S_j * (Zt u_j),   B = Zt = [Z, 1],   beta = (V_k, c_k)

SM: ``y = 0``, ``c_j = sigma_j tr(D_i) e_k`` (``2 tr D_i - n`` for abs),
``b = n e_k``. DSM: ``y = Y_k``, ``c = 0``, ``b = 0``. Without skip connection
``beta`` is absent.

Algorithm
---------
The unpenalised ``beta`` is eliminated exactly: for fixed ``u`` it solves the
normal equations ``B^T (A u + B beta - y) + b = 0`` (a (d+1) x (d+1) system),
so the smooth part is ``g(u) = min_beta g(u, beta)`` with gradient
``(1/n) (A^T F + c)``, ``F = A u + B beta(u) - y`` (envelope theorem).

The cone constraints are handled by an augmented Lagrangian (method of
multipliers, as pilancilab/scnn does) with multipliers ``lambda_j >= 0``::

    L_rho(u; lambda) = g(u) + alpha sum_j ||u_j[:d]||
                       + (rho / 2n) sum_j ||(lambda_j / rho - K_j u_j)_+||^2

Each subproblem is solved by FISTA (accelerated proximal gradient) with
gradient-based adaptive restart; the prox of ``t alpha ||u[:d]||`` is block
soft-thresholding of the first ``d`` coordinates (the bias coordinate is left
alone). Then ``lambda <- (lambda - rho K u)_+`` and ``rho`` grows when the
violation stalls. Every step is a few dense ``n x P`` tensor operations:
nothing loops over points or patterns in Python.

Certificate
-----------
From a primal ``u`` (cleaned: blocks of negligible norm zeroed) the dual point
is ``z = F`` (the residual; ``B^T z + b = 0`` holds by construction) and
``mu_j = lambda_j / n``. Weak duality gives, for every feasible ``u'``,

    P(u') >= D(z) + sum_j [ mu_j . K_j u'_j + w_j . u'_j + alpha ||u'_j[:d]|| ],
    D(z) = -(1/n) (1/2 ||z||^2 + z . y),   w_j = (1/n)(A_j^T z + c_j) - K_j^T mu_j

so ``D(z)`` is a lower bound once every ``w_j`` is dual feasible:
``w_j[d] = 0`` and ``||w_j[:d]|| <= alpha``. The bias coordinate is made exact
by shifting ``mu_j`` on the points of one side of the pattern. For DSM
(``c = b = 0``) the remaining excess is removed by scaling ``(z, mu)`` by
``theta = min(1, alpha / max_j ||w_j[:d]||)``, which keeps every equality: the
reported ``duality_gap = P(u) - D(theta z)`` is a rigorous bound on
``P(u) - optimum`` (up to rounding and the cone violation). For SM the linear
terms forbid scaling; the excess ``e_j = (||w_j[:d]|| - alpha)_+`` is charged
as ``sum_j e_j ||u_j[:d]||`` (exact at the optimum, a first-order estimate
otherwise) and also reported as ``info["dual_residual"]``. The solver stops
when ``duality_gap <= tol max(1, |P|)`` and the relative cone violation
``max_j max_i (-K_j u_j)_+ / ||u_j|| <= tol``.

Unboundedness (SM only)
-----------------------
Below a data-dependent ``alpha`` (about ``d/n``) the SM program has a recession
direction: ``delta`` in the cones with zero fit (``A delta`` in the range of
``B``) and negative cost ``(1/n)(c . delta - b^T M B^T A delta) + alpha sum_j
||delta_j[:d]|| < 0`` (``M = (B^T B)^{-1}``); the iterates then run away along
it. When the iterate norm has grown far beyond its earlier size, its direction
is *snapped* onto an exact recession direction: the blocks that carry it are
kept, constraints that are nearly tight are made tight, and the direction is
projected (least squares, float64) onto ``{P_perp A delta = 0, tight rows = 0}``.
If the snapped direction is feasible, has zero fit to rounding and negative
cost, it is a certificate of unboundedness and :class:`UnboundedProgramError`
is raised. Otherwise the solver keeps going and, at ``max_iter``, raises
:class:`SolverError` saying that the iterates were diverging.

torch is imported inside the functions so that ``import skconvexscore`` does
not load it; results are NumPy float64 arrays.
"""

import math
import time

import numpy as np

from ._programs import SolverError, UnboundedProgramError
from ._solution import OutputSolution

__all__ = [
    "estimate_memory_bytes",
    "solve_arrangement_first_order",
    "solve_arrangement_output_first_order",
]

# Multipliers are returned (float32, in ``info``) for warm starts only while
# they are this small: n * 2P entries.
_MAX_STORED_MULTIPLIERS = 10_000_000
# Below this relative tolerance float32 cannot certify; auto dtype refines in float64.
_FLOAT32_TOL = 1e-4
# Power-iteration estimates of ||A||^2 converge from below; inflate them.
_LIPSCHITZ_SAFETY = 1.2
_POWER_ITERATIONS = 60
# Augmented-Lagrangian schedule.
_RHO_GROWTH = 5.0
_RHO_INIT = 1.0  # rho * L_K = this * L_A at the start
_RHO_MAX_RATIO = 1e5  # rho * L_K <= this * L_A
_VIOLATION_DECREASE = 0.25
_INNER_MAX = 3000
_INNER_FIRST = 100  # inner cap of the first subproblem; doubles every outer iteration
# Unboundedness watch: test the direction once the iterate norm exceeds this
# multiple of the norm seen when the watch started, then at every doubling.
_RUNAWAY_FACTOR = 30.0
_DIVERGENCE_FACTOR = 1e3
_TIGHT_THRESHOLDS = (1e-9, 1e-7, 1e-5, 1e-4, 1e-3, 1e-2)
_MAX_SNAP_BLOCKS = 24
# n * P below which a CPU solve runs on one thread
_SMALL_PROBLEM = 200_000


# --------------------------------------------------------------------------
# Device tensors of a program
# --------------------------------------------------------------------------


def _resolve_device_dtype(device, dtype):
    import torch

    if device is None or device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r} requested but CUDA is not available.")
    auto = dtype is None
    if auto:
        dtype = torch.float32 if device.type == "cuda" else torch.float64
    elif isinstance(dtype, str):
        dtype = {"float32": torch.float32, "float64": torch.float64}.get(dtype)
        if dtype is None:
            raise ValueError("dtype must be None, 'float32', 'float64' or a torch dtype.")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}.")
    return device, dtype, auto


def estimate_memory_bytes(n, n_patterns, dtype_bytes=8):
    """Peak device memory of one output's solve, in bytes (an estimate).

    The iteration holds about a dozen ``n x P`` arrays: the masks ``S`` and
    signs ``G``, and for both the ``v`` and ``w`` blocks the multipliers, the
    pre-activations, the clipped multipliers and the gradient weights (plus
    temporaries). Everything else is ``O(P d)``.
    """
    return int(14 * n * n_patterns * dtype_bytes)


class _Tensors:
    """A program's data on a device (shared by its outputs)."""

    def __init__(self, program, device, dtype):
        import torch

        self.program = program
        self.device, self.dtype = device, dtype
        self.n, self.d, self.P = program.n, program.d, program.n_patterns
        self.alpha = float(program.alpha)
        self.sm = program.objective == "sm"
        self.skip = bool(program.skip_connection)
        as_t = lambda a: torch.as_tensor(np.ascontiguousarray(a), device=device, dtype=dtype)  # noqa: E731
        self.X = as_t(program.features)  # (n, d+1)
        masks = torch.as_tensor(np.ascontiguousarray(program.masks), device=device)
        signs = torch.where(masks, 1.0, -1.0).to(dtype)  # (n, P) cone signs
        out = masks.to(dtype) if program.activation == "relu" else signs  # output masks
        # Blocks are laid out flat, (2P, d+1): v_1..v_P then w_1..w_P, so that every
        # product is one 2-D matmul (batched broadcasting is ~30x slower on CPU).
        self.G = torch.cat([signs, signs], dim=1)  # (n, 2P)
        self.S = torch.cat([out, -out], dim=1)  # sigma_j S_j, (n, 2P)
        self.trace_counts = as_t(program.trace_counts())  # (P,)
        gram = program.features.T @ program.features
        # pinv: a rank-deficient skip design (collinear data) still has a least-squares beta
        self.M = as_t(np.linalg.pinv(gram)) if self.skip else None
        self.L_K = float(np.linalg.eigvalsh(gram)[-1]) / self.n
        self.targets = program.targets
        self.gates = as_t(program.gates)

    def output(self, k):
        """Per-output terms: targets ``y``, linear term ``c`` and ``b``."""
        import torch

        n, d, P = self.n, self.d, self.P
        lin = torch.zeros((2 * P, d + 1), device=self.device, dtype=self.dtype)
        b = torch.zeros(d + 1, device=self.device, dtype=self.dtype)
        y = None
        if self.sm:
            lin[:P, k] = self.trace_counts
            lin[P:, k] = -self.trace_counts
            if self.skip:
                b[k] = float(n)
        else:
            y = torch.as_tensor(np.ascontiguousarray(self.targets[:, k]), device=self.device,
                                dtype=self.dtype)
        return _Output(self, k, y, lin, b)


class _Output:
    """Operators of output ``k``'s program."""

    def __init__(self, t, k, y, lin, b):
        self.t, self.k, self.y, self.lin, self.b = t, k, y, lin, b

    def pre(self, U):
        """Pre-activations ``Zt u_j`` of every block, shape (n, 2P)."""
        return self.t.X @ U.T

    def fit(self, H):
        """``F = A u + B beta(u) - y`` and ``beta(u)`` from pre-activations ``H``."""
        t = self.t
        F = (t.S * H).sum(dim=1)
        if self.y is not None:
            F = F - self.y
        beta = None
        if t.skip:
            # normal equations of beta: B^T (F + B beta) + b = 0
            beta = -(t.M @ (t.X.T @ F + self.b))
            F = F + t.X @ beta
        return F, beta

    def smooth_value(self, F, beta, U):
        """``g(u, beta)`` (without penalty)."""
        n = self.t.n
        value = 0.5 * (F @ F)
        if self.t.sm:
            value = value + (self.lin * U).sum()
            if beta is not None:
                value = value + self.b @ beta
        return value / n

    def penalty(self, U):
        d = self.t.d
        return self.t.alpha * U[..., :d].norm(dim=-1).sum()

    def gradient(self, F, clipped):
        """``(1/n)[A^T F + c - K^T clipped]`` for all blocks, shape (2P, d+1)."""
        t = self.t
        weights = t.S * F.unsqueeze(1)
        if clipped is not None:
            weights = weights - t.G * clipped
        # weights^T X, not (X^T weights)^T: ~6x faster for thin X on CPU
        return (weights.T @ t.X).add(self.lin).div(t.n)


def _group_prox(U, threshold, d):
    """Block soft-thresholding of the first ``d`` coordinates of every block.

    ``prox_{t alpha ||.[:d]||}(u) = (max(0, 1 - t alpha / ||u[:d]||) u[:d], u[d])``.
    """
    import torch

    head = U[..., :d]
    norms = head.norm(dim=-1, keepdim=True)
    shrink = torch.clamp(1.0 - threshold / torch.clamp(norms, min=torch.finfo(U.dtype).tiny), min=0.0)
    return torch.cat([head * shrink, U[..., d:]], dim=-1)


def _power_lipschitz(op, shape, iterations=_POWER_ITERATIONS, seed=0):
    """``||P_perp A||^2 / n`` by power iteration on ``u -> A^T P_perp A u / n``."""
    import torch

    t = op.t
    gen = torch.Generator(device="cpu").manual_seed(seed)
    U = torch.randn(shape, generator=gen, dtype=torch.float64).to(device=t.device, dtype=t.dtype)
    U = U / U.norm()
    estimate = 0.0
    saved_y, op.y = op.y, None
    saved_b, op.b = op.b, torch.zeros_like(op.b)
    try:
        for _ in range(iterations):
            F, _ = op.fit(op.pre(U))
            V = ((t.S * F.unsqueeze(1)).T @ t.X) / t.n
            estimate = float((V * U).sum())
            norm = float(V.norm())
            if norm == 0.0 or not math.isfinite(norm):
                break
            U = V / norm
    finally:
        op.y, op.b = saved_y, saved_b
    return max(estimate, 0.0)


# --------------------------------------------------------------------------
# Certificate
# --------------------------------------------------------------------------


def _clean(U, lam, tol, d):
    """Zero blocks that are solver noise.

    A block whose input part ``u[:d]`` is zero must have a zero bias too (its
    pattern has points on both sides, so ``G * (Zt u) >= 0`` forces it); blocks
    far below the largest are first-order residue.
    """
    import torch

    norms = U.norm(dim=-1)
    eps = torch.finfo(U.dtype).eps
    floor = max(1e-3 * tol, 100 * eps) * float(norms.max()) if norms.numel() else 0.0
    dead = (U[..., :d].norm(dim=-1) == 0) | (norms <= floor)
    return torch.where(dead.unsqueeze(-1), torch.zeros_like(U), U)


def _certify(op, U, clipped, tol):
    """Objective, duality gap and cone violation at ``U`` in float64.

    Returns a dict of Python floats plus the cleaned ``U`` (float64 tensor).
    ``clipped`` is ``(lambda - rho K u)_+`` (n times the multipliers), shape
    (n, 2P), or None.
    """
    import torch

    t = op.t
    n, d = t.n, t.d
    f64 = torch.float64
    U = _clean(U.to(f64), None, tol, d)
    op64 = _Output(_Tensors64(t), op.k, None if op.y is None else op.y.to(f64), op.lin.to(f64),
                   op.b.to(f64))
    t64 = op64.t
    # Repair: move every block along its pattern's strictly interior gate until it
    # satisfies its cone constraints (tau_j = max_i -(K_j u_j)_i / (K_j g_j)_i). The
    # point becomes exactly feasible and its objective, hence the gap, pays for it.
    gates = torch.cat([t64.gates, t64.gates], dim=0)  # (2P, d+1)
    gate_margins = t64.G * (t64.X @ gates.T)  # (n, 2P), > 0
    H = op64.pre(U)
    norms = U.norm(dim=-1)
    raw = torch.clamp(-(t64.G * H), min=0.0).amax(dim=0)
    raw_violation = float(raw.max() / norms.max()) if bool((norms > 0).any()) else 0.0
    tau = torch.clamp((-(t64.G * H) / gate_margins).amax(dim=0), min=0.0)
    # a block that would need a nudge larger than itself is residue: zeroing it is cheaper
    norms = U.norm(dim=-1)
    residue = tau >= norms
    U = torch.where(residue.unsqueeze(1), torch.zeros_like(U), U + tau.unsqueeze(1) * gates)
    repair = float(torch.where(residue, norms, tau).max()) if U.numel() else 0.0
    H = op64.pre(U)
    F, beta = op64.fit(H)
    primal = float(op64.smooth_value(F, beta, U) + op64.penalty(U))
    # relative cone violation of the non-zero blocks (as ArrangementProgram.cone_violation)
    norms = U.norm(dim=-1)  # (2P,)
    viol = torch.clamp(-(t64.G * H), min=0.0).amax(dim=0)  # (2P,)
    nonzero = norms > 0
    violation = float((viol[nonzero] / norms[nonzero]).max()) if bool(nonzero.any()) else 0.0

    mu = torch.zeros_like(H) if clipped is None else clipped.to(f64)
    W = op64.gradient(F, mu)  # (2P, d+1) = (1/n)(A^T z + c - K^T lambda)
    # make the bias coordinate exact: shift lambda by delta/|side| on one side of the pattern
    bias = W[:, d] * n  # (2P,)
    active = (t64.G > 0).to(f64)
    n_active = active.sum(0).clamp(min=1.0)
    n_inactive = (1 - active).sum(0).clamp(min=1.0)
    zt = t64.X[:, :d]
    mean_active = (active.T @ zt) / n_active.unsqueeze(-1)  # (P, d)
    mean_inactive = ((1 - active).T @ zt) / n_inactive.unsqueeze(-1)
    side_mean = torch.where((bias > 0).unsqueeze(-1), mean_active, mean_inactive)
    head = W[..., :d] - (bias / n).unsqueeze(-1) * side_mean
    head_norms = head.norm(dim=-1)
    alpha = t.alpha
    excess = torch.clamp(head_norms - alpha, min=0.0)
    dual_residual = float(excess.max()) / alpha if excess.numel() else 0.0
    zz = float(F @ F)
    if t.sm:
        dual = -0.5 * zz / n
        charge = float((excess * U[..., :d].norm(dim=-1)).sum())
        lower = dual - charge
    else:
        zy = float(F @ op64.y)
        worst = float(head_norms.max()) if head_norms.numel() else 0.0
        theta = min(1.0, alpha / worst) if worst > 0 else 1.0
        lower = -(0.5 * theta**2 * zz + theta * zy) / n
    gap = primal - lower
    return {
        "U": U,
        "beta": beta,
        "objective": primal,
        "lower_bound": lower,
        "duality_gap": gap,
        "relative_gap": gap / max(1.0, abs(primal)),
        "constraint_violation": violation,
        "dual_residual": dual_residual,
        "repair": repair,
        "raw_violation": raw_violation,
    }


class _Tensors64:
    """A float64 view of :class:`_Tensors` (for certificates)."""

    def __init__(self, t):
        import torch

        f64 = torch.float64
        for name in ("n", "d", "P", "alpha", "sm", "skip", "device"):
            setattr(self, name, getattr(t, name))
        self.dtype = f64
        self.X, self.G, self.S, self.gates = (a.to(f64) for a in (t.X, t.G, t.S, t.gates))
        self.M = None if t.M is None else t.M.to(f64)


# --------------------------------------------------------------------------
# Unboundedness certificate
# --------------------------------------------------------------------------


def _debug(*args):
    if _DEBUG:
        print(*args)


_DEBUG = False  # prints why a recession direction was rejected


def _recession_certificate(program, k, U):
    """Snap the direction of ``U`` onto an exact recession direction, if any.

    Returns a dict describing the certificate (cost slope, blocks) or None.
    Works in NumPy float64 on the few blocks that carry the direction.
    """
    U = U.detach().to("cpu").double().numpy()
    norm = np.linalg.norm(U)
    if not np.isfinite(norm) or norm == 0:
        return None
    delta = U / norm
    n, d = program.n, program.d
    block_norms = np.linalg.norm(delta, axis=-1)  # (2, P)
    flat = np.argsort(-block_norms, axis=None)[:_MAX_SNAP_BLOCKS]
    flat = flat[block_norms.ravel()[flat] >= 1e-3 * block_norms.max()]
    sides, pats = np.unravel_index(flat, block_norms.shape)
    Xt = program.features
    G = program.signs[:, pats]  # (n, J)
    S = program.output_masks[:, pats]
    sig = np.where(sides == 0, 1.0, -1.0)
    J = len(flat)
    m = J * (d + 1)
    # columns of A restricted to the blocks: sigma_j S_j * Xt[:, c]
    A_cols = (sig[None, :, None] * S[:, :, None] * Xt[:, None, :]).reshape(n, m)
    if program.skip_connection:
        Q, _ = np.linalg.qr(Xt)
        A_perp = A_cols - Q @ (Q.T @ A_cols)
    else:
        A_perp = A_cols
    x0 = delta[sides, pats].reshape(m)
    row_norms = np.linalg.norm(Xt, axis=1)
    pre = G * (Xt @ delta[sides, pats].T)  # (n, J), >= 0 on a feasible direction
    rel = np.abs(pre) / (row_norms[:, None] * np.maximum(block_norms[sides, pats], 1e-300)[None, :])
    lin = np.zeros((J, d + 1))
    if program.objective == "sm":
        lin[:, k] = sig * program.trace_counts()[pats]
    lin = lin.reshape(m)
    b = np.zeros(d + 1)
    if program.skip_connection and program.objective == "sm":
        b[k] = n
    gram_pinv = np.linalg.pinv(Xt.T @ Xt) if program.skip_connection else None
    scale_A = np.linalg.norm(A_cols, 2) + 1e-300
    for threshold in _TIGHT_THRESHOLDS:
        tight = rel <= threshold
        rows = []
        for j in np.flatnonzero(tight.any(axis=0)):
            block = np.zeros((int(tight[:, j].sum()), m))
            block[:, j * (d + 1):(j + 1) * (d + 1)] = (G[tight[:, j], j:j + 1] * Xt[tight[:, j]])
            rows.append(block / row_norms[tight[:, j], None])
        E = np.vstack([A_perp / scale_A] + rows)
        # least-norm correction onto the null space of E
        _, sv, Vt = np.linalg.svd(E, full_matrices=False)
        rank = int(np.sum(sv > 1e-10 * max(sv.max(initial=0.0), 1e-300)))
        null = Vt[rank:]
        if null.shape[0] == 0:
            _debug(threshold, "no null space")
            continue
        x = null.T @ (null @ x0)
        if np.linalg.norm(x) < 0.5:
            _debug(threshold, "far", np.linalg.norm(x))
            continue
        x /= np.linalg.norm(x)
        blocks = x.reshape(J, d + 1)
        cone = G * (Xt @ blocks.T)
        if np.min(cone / row_norms[:, None]) < -1e-12:
            _debug(threshold, "cone", np.min(cone / row_norms[:, None]))
            continue
        fit = np.linalg.norm(A_perp @ x) / (scale_A + 1e-300)
        if fit > 1e-10:
            _debug(threshold, "fit", fit)
            continue
        cost_lin = lin @ x
        if gram_pinv is not None:
            cost_lin -= b @ (gram_pinv @ (Xt.T @ (A_cols @ x)))
        penalty = program.alpha * np.linalg.norm(blocks[:, :d], axis=1).sum()
        slope = cost_lin / n + penalty
        _debug(threshold, "slope", slope, cost_lin / n, penalty)
        if slope < -1e-6 * (abs(cost_lin) / n + penalty):
            return {"slope": float(slope), "n_blocks": int(np.sum(np.linalg.norm(blocks, axis=1) > 1e-8)),
                    "tight_threshold": threshold}
    return None


# --------------------------------------------------------------------------
# The solver
# --------------------------------------------------------------------------


def _stack_warm_start(warm_start, P, d):
    if warm_start is None:
        return None, None, None
    pos = np.asarray(warm_start.positive, dtype=np.float64)
    neg = np.asarray(warm_start.negative, dtype=np.float64)
    if pos.shape != (P, d + 1) or neg.shape != (P, d + 1):
        raise ValueError(
            f"warm_start has blocks of shape {pos.shape}, expected {(P, d + 1)}: it must come "
            "from a program with the same patterns."
        )
    info = warm_start.info or {}
    lam = info.get("cone_multipliers")
    rho = info.get("penalty_parameter")
    return np.stack([pos, neg]), lam, rho


def _run(op, U0, lam0, rho0, tol, max_iter, verbose, budget_used=0):
    """Augmented Lagrangian + FISTA from ``(U0, lam0, rho0)``; see the module docstring.

    Returns ``(state, certificate, n_iter)`` or raises.
    """
    import torch

    t = op.t
    d, P = t.d, t.P
    alpha = t.alpha
    shape = (2 * P, d + 1)
    L_A = _power_lipschitz(op, shape) * _LIPSCHITZ_SAFETY
    L_A = max(L_A, 1e-12)
    rho = float(rho0) if rho0 else max(_RHO_INIT * L_A / t.L_K, 1e-8)
    rho_max = _RHO_MAX_RATIO * max(L_A / t.L_K, 1.0)
    U = U0.clone()
    lam = lam0.clone()
    n_iter = budget_used
    omega = 1e-1  # inner tolerance: gradient-mapping norm per block, relative to alpha
    omega_min = 1e-3 * tol
    prev_violation = math.inf
    watch_norm = None  # iterate norm when the unboundedness watch started
    next_test = math.inf
    history = []
    cert = None
    outer = 0
    while True:
        outer += 1
        L = L_A + rho * t.L_K
        step = 1.0 / L
        Y, U_prev, momentum = U.clone(), U.clone(), 1.0
        inner = 0
        inner_cap = min(_INNER_MAX, _INNER_FIRST * 2 ** (outer - 1))
        clipped = None
        while True:
            H = op.pre(Y)
            F, _ = op.fit(H)
            clipped = torch.clamp(lam - rho * (t.G * H), min=0.0)
            grad = op.gradient(F, clipped)
            U_new = _group_prox(Y - step * grad, step * alpha, d)
            mapping = (Y - U_new) * L
            # gradient-based restart (O'Donoghue & Candes): drop momentum when it points uphill
            if float(((Y - U_new) * (U_new - U_prev)).sum()) > 0:
                momentum = 1.0
                Y_next = U_new
            else:
                momentum_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * momentum**2))
                Y_next = U_new + ((momentum - 1.0) / momentum_next) * (U_new - U_prev)
                momentum = momentum_next
            U_prev, Y = U_new, Y_next
            inner += 1
            n_iter += 1
            residual = float(mapping.norm(dim=-1).max()) / alpha
            if not math.isfinite(residual):
                raise SolverError(
                    "the first-order solver produced non-finite values (overflow); the program "
                    "is probably unbounded below or badly scaled. Try a larger alpha or "
                    "dtype=float64."
                )
            if t.sm and inner % 25 == 0:
                norm = float(U_new.norm())
                if watch_norm is not None and norm >= next_test:
                    certificate = _recession_certificate(t.program, op.k, U_new.view(2, P, d + 1))
                    next_test = 2.0 * norm
                    if certificate is not None:
                        raise UnboundedProgramError(
                            f"the score-matching program of output {op.k} is unbounded below at "
                            f"alpha={alpha:.6g}: the solver found a recession direction (in the "
                            f"cones, zero fit, cost slope {certificate['slope']:.3g} < 0, "
                            f"{certificate['n_blocks']} unit(s))"
                        )
            if residual <= omega or inner >= inner_cap or n_iter >= max_iter:
                break
        U = U_prev
        H = op.pre(U)
        clipped = torch.clamp(lam - rho * (t.G * H), min=0.0)
        lam = clipped
        cert = _certify(op, U, lam, tol)
        norm = float(U.norm())
        if watch_norm is None:
            watch_norm = max(norm, 1.0)
            next_test = _RUNAWAY_FACTOR * watch_norm
        history.append((n_iter, cert["objective"], cert["relative_gap"], cert["constraint_violation"]))
        if verbose:
            print(
                f"[first-order k={op.k}] outer {outer:3d} iters {n_iter:6d} rho {rho:9.3g} "
                f"obj {cert['objective']: .10g} gap {cert['relative_gap']:.2e} "
                f"viol {cert['constraint_violation']:.2e} dual {cert['dual_residual']:.2e}"
            )
        if t.sm and norm >= _DIVERGENCE_FACTOR * watch_norm and len(history) >= 4 and all(
            later[1] < earlier[1] for earlier, later in zip(history[-4:-1], history[-3:])
        ):
            # No exact recession direction was isolated, but the iterates run away with a
            # steadily decreasing objective: numerically unbounded.
            raise UnboundedProgramError(
                f"the score-matching program of output {op.k} is numerically unbounded below at "
                f"alpha={alpha:.6g}: the iterates grew {norm / watch_norm:.3g}-fold while the "
                f"objective kept decreasing (to {cert['objective']:.4g})"
            )
        if (cert["relative_gap"] <= tol and cert["constraint_violation"] <= tol
                and cert["dual_residual"] <= math.sqrt(tol)):
            break
        if n_iter >= max_iter:
            growing = norm > 100.0 * watch_norm
            hint = (
                " The iterates were growing without bound: the score-matching program may be "
                "unbounded below (alpha at or below its well-posedness bound, roughly d/n)."
                if (t.sm and growing) else
                " Increase max_iter, loosen tol, or use dtype=float64."
            )
            raise SolverError(
                f"the first-order solver did not reach tol={tol:g} in max_iter={max_iter} "
                f"iterations on output {op.k} (relative duality gap {cert['relative_gap']:.3g}, "
                f"cone violation {cert['constraint_violation']:.3g}, dual residual "
                f"{cert['dual_residual']:.3g}); the point is not certified.{hint}"
            )
        violation = cert["raw_violation"]
        if violation > tol and violation > _VIOLATION_DECREASE * prev_violation and rho < rho_max:
            rho = min(rho * _RHO_GROWTH, rho_max)
        prev_violation = violation
        omega = max(0.1 * omega, omega_min)
    return U, lam, rho, cert, n_iter, history


def solve_arrangement_output_first_order(program, k, tol=1e-6, max_iter=None, device="cpu",
                                         dtype=None, warm_start=None, verbose=False,
                                         _tensors=None):
    r"""Solve output ``k``'s cone-constrained arrangement program, first order.

    Augmented Lagrangian on the cone constraints ``G_i * (Zt v_i) >= 0``,
    ``G_i * (Zt w_i) >= 0``, with FISTA (adaptive restart) on each subproblem;
    the skip row and intercept are eliminated by least squares. See the module
    docstring for the maths, the certificate and the unboundedness test.

    Parameters
    ----------
    program : ArrangementProgram
    k : int
        Output coordinate.
    tol : float, default=1e-6
        Stop when ``duality_gap <= tol * max(1, |objective|)`` and the relative
        cone violation is ``<= tol``.
    max_iter : int or None
        Total proximal-gradient iterations (default ``50000``).
    device : str or torch.device, default="cpu"
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
    dtype : None, "float32", "float64" or torch dtype
        ``None``: float64 on CPU; on CUDA float32, refined in float64 when
        ``tol < 1e-4`` (float32 cannot certify smaller gaps).
    warm_start : OutputSolution or None
        A solution of a program with the same patterns (e.g. the previous
        ``alpha`` of a path). Its blocks, and its multipliers and penalty
        parameter when stored in ``info``, start the iteration.
    verbose : bool

    Returns
    -------
    OutputSolution
        NumPy float64 arrays; ``duality_gap`` (absolute, standardised units),
        ``constraint_violation`` (relative), ``n_iter`` and ``info`` with
        ``relative_gap``, ``dual_residual``, ``lower_bound``,
        ``memory_bytes`` (estimate), ``device``, ``dtype``, ``time_s``,
        ``penalty_parameter`` and, for moderate sizes, ``cone_multipliers``.

    Raises
    ------
    UnboundedProgramError
        SM only: a recession direction with negative cost was found.
    SolverError
        The certificate did not reach ``tol`` within ``max_iter`` iterations.
    """
    import torch

    start = time.perf_counter()
    if not 0 <= k < program.d:
        raise ValueError(f"k must be in [0, {program.d}), got {k}.")
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}.")
    max_iter = 50000 if max_iter is None else int(max_iter)
    dev, dt, auto = _resolve_device_dtype(device, dtype)
    n, d, P = program.n, program.d, program.n_patterns
    memory = estimate_memory_bytes(n, P, torch.finfo(dt).bits // 8)
    if verbose:
        print(f"[first-order k={k}] n={n} d={d} P={P} device={dev} dtype={dt} "
              f"estimated memory {memory / 2**20:.1f} MiB")
    U_np, lam_np, rho0 = _stack_warm_start(warm_start, P, d)

    # Small problems are latency bound: intra-op threads only add synchronisation
    # (and thrash when the machine is shared), so run them on one thread.
    threads = torch.get_num_threads()
    if dev.type == "cpu" and n * P < _SMALL_PROBLEM:
        torch.set_num_threads(1)
    try:
        return _solve_phases(program, k, tol, max_iter, dev, dt, auto, U_np, lam_np, rho0,
                             memory, start, verbose, _tensors)
    finally:
        torch.set_num_threads(threads)


def _solve_phases(program, k, tol, max_iter, dev, dt, auto, U_np, lam_np, rho0, memory, start,
                  verbose, _tensors):
    import torch

    n, d, P = program.n, program.d, program.n_patterns
    phases = [dt]
    if auto and dt == torch.float32 and tol < _FLOAT32_TOL:
        phases = [torch.float32, torch.float64]
    tensors = _tensors
    n_iter = 0
    history = []
    U = lam = None
    for i, phase_dtype in enumerate(phases):
        if tensors is None or tensors.dtype != phase_dtype or tensors.device != dev:
            tensors = _Tensors(program, dev, phase_dtype)
        op = tensors.output(k)
        if U is None:
            U = (torch.zeros((2 * P, d + 1), device=dev, dtype=phase_dtype) if U_np is None
                 else torch.as_tensor(U_np.reshape(2 * P, d + 1), device=dev, dtype=phase_dtype))
            lam = torch.zeros((n, 2 * P), device=dev, dtype=phase_dtype)
            if lam_np is not None and np.shape(lam_np) == (n, 2 * P):
                lam = torch.as_tensor(np.asarray(lam_np), device=dev, dtype=phase_dtype)
        else:
            U, lam = U.to(phase_dtype), lam.to(phase_dtype)
        phase_tol = max(tol, _FLOAT32_TOL) if i + 1 < len(phases) else tol
        U, lam, rho0, cert, n_iter, phase_history = _run(op, U, lam, rho0, phase_tol, max_iter,
                                                         verbose, n_iter)
        history.extend(phase_history)

    Uc = cert["U"].detach().cpu().numpy().reshape(2, P, d + 1)
    beta = cert["beta"]
    skip_row = np.zeros(d)
    intercept = 0.0
    if beta is not None:
        beta = beta.detach().cpu().numpy()
        skip_row, intercept = beta[:d].copy(), float(beta[d])
    info = {
        "solver": "first_order",
        "relative_gap": cert["relative_gap"],
        "dual_residual": cert["dual_residual"],
        "lower_bound": cert["lower_bound"],
        "memory_bytes": memory,
        "device": str(dev),
        "dtype": str(dt).replace("torch.", ""),
        "time_s": time.perf_counter() - start,
        "penalty_parameter": float(rho0),
        "history": history,
    }
    if lam.numel() <= _MAX_STORED_MULTIPLIERS:
        info["cone_multipliers"] = lam.detach().to("cpu", torch.float32).numpy()
    return OutputSolution(
        positive=np.ascontiguousarray(Uc[0], dtype=np.float64),
        negative=np.ascontiguousarray(Uc[1], dtype=np.float64),
        skip_row=skip_row,
        intercept=intercept,
        objective=cert["objective"],
        status="optimal",
        n_iter=int(n_iter),
        duality_gap=float(cert["duality_gap"]),
        constraint_violation=float(cert["constraint_violation"]),
        info=info,
    )


def solve_arrangement_first_order(program, tol=1e-6, max_iter=None, device="cpu", dtype=None,
                                  warm_start=None, verbose=False, n_jobs=None):
    """Solve every output's program with :func:`solve_arrangement_output_first_order`.

    The outputs share the data tensors (built once on the device) and are
    solved one after the other: each solve already uses all CPU threads or
    the whole GPU through dense tensor operations.

    Parameters
    ----------
    program : ArrangementProgram
    tol, max_iter, device, dtype, verbose
        As for :func:`solve_arrangement_output_first_order`.
    warm_start : list of OutputSolution or None
        One per output.
    n_jobs : ignored
        Accepted for the dispatcher's signature; parallelism is torch's.

    Returns
    -------
    list of OutputSolution, one per output coordinate
    """
    dev, dt, _ = _resolve_device_dtype(device, dtype)
    if warm_start is not None and len(warm_start) != program.d:
        raise ValueError(f"warm_start must hold one solution per output ({program.d}).")
    tensors = _Tensors(program, dev, dt)
    return [
        solve_arrangement_output_first_order(
            program, k, tol=tol, max_iter=max_iter, device=dev, dtype=dtype,
            warm_start=None if warm_start is None else warm_start[k], verbose=verbose,
            _tensors=tensors,
        )
        for k in range(program.d)
    ]
