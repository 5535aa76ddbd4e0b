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
The unpenalised ``beta`` is eliminated exactly (for fixed ``u`` it solves a
(d+1) x (d+1) least-squares system), which leaves a quadratic in the
differences ``a_i = v_i - w_i`` only::

    g(u) = 1/2 a^T H a + r . a + const,   H = Phi^T P_perp Phi / n,
    Phi = [S_1 * Zt, ..., S_P * Zt]  (n x P(d+1)),  P_perp = I - B (B^T B)^+ B^T.

``H`` is formed once per program (in float64, by row chunks) and shared by
the outputs: after it, no ADMM iteration touches the ``n`` points. ADMM splits
the penalty and the cones off ``u``::

    min g(u) + alpha sum_j ||z_j[:d]|| + I_{>=0}(s)   s.t.  u = z,  Y u = s

where ``Y`` holds a *working set* of each cone's constraint rows, normalised
to unit length and shared by ``v_i`` and ``w_i``. A cone in ``R^{d+1}`` has a
handful of facets among its ``n`` rows; carrying all of them makes ADMM both
``O(n P d)`` per iteration and badly conditioned (thousands of nearly
parallel rows). The set starts with the ``4(d+1)`` hyperplanes nearest, in
angle, to the pattern's interior gate; at every tenfold drop of the ADMM
residuals the full ``n x 2P`` constraints are checked and the worst violated
rows of each pattern (``2(d+1)`` at most) are added. Nothing is certified
before the full check passes, so the working set only affects speed.

The ``u``-step solves ``(Q + rho_z I + rho_s Y^T Y) u = rhs``; in the rotated
blocks ``(v - w, v + w) / sqrt 2`` it splits into one ``P(d+1)`` Cholesky
factorisation (of ``2 H + diag_i (rho_z I + rho_s Y_i^T Y_i)``, refactorised
only when a penalty or the working set changes) and ``P`` small inverses. The
``z``-step is block soft-thresholding of the first ``d`` coordinates (the bias
coordinate is unpenalised), the ``s``-step a clamp at zero. Iterations use
over-relaxation (1.6) and the residual balancing of OSQP, with one penalty per
split. An iteration costs ``O((P(d+1))^2)`` whatever ``n``; on the CPU it runs
on one thread (it is latency bound) and only the Hessian gets the caller's
threads; on a GPU everything runs on the device.

Certificate
-----------
From a primal ``u`` (the ``z`` iterate, cleaned of negligible blocks and
moved into its cones along each pattern's interior gate, so that it is exactly
feasible) the dual point is ``z = F`` (the residual; ``B^T z + b = 0`` holds by
construction) and ``mu_j``, the multipliers of the carried rows (``-rho_s``
times their scaled duals) rescaled to the unnormalised constraints, zero on
the other rows. Weak duality gives, for every
feasible ``u'``,

    P(u') >= D(z) + sum_j [ mu_j . K_j u'_j + w_j . u'_j + alpha ||u'_j[:d]|| ],
    D(z) = -(1/n) (1/2 ||z||^2 + z . y),   w_j = (1/n)(A_j^T z + c_j) - K_j^T mu_j

so ``D(z)`` is a lower bound once every ``w_j`` is dual feasible:
``w_j[d] = 0`` and ``||w_j[:d]|| <= alpha``. The bias coordinate is made exact
by shifting ``mu_j`` on the points of one side of the pattern. For DSM
(``c = b = 0``) the remaining excess is removed by scaling ``(z, mu)`` by
``theta = min(1, alpha / max_j ||w_j[:d]||)``, which keeps every equality: the
reported ``duality_gap = P(u) - D(theta z)`` is a rigorous bound on
``P(u) - optimum`` (up to rounding). For SM the linear terms forbid scaling;
the excess ``e_j = (||w_j[:d]|| - alpha)_+`` is charged as ``sum_j e_j
||u_j[:d]||`` (exact at the optimum, a first-order estimate otherwise) and
also reported, relative to ``alpha``, as ``info["dual_residual"]`` (a KKT
residual). The solver stops when ``duality_gap <= tol max(u, |P|)`` (``u``
the program's value unit, 1 unless its values are small: ``value_unit``), the
relative cone violation is ``<= tol`` and the dual residual ``<= sqrt(tol)``.

Unboundedness (SM only)
-----------------------
Below a data-dependent ``alpha`` (about ``d/n``) the SM program has a recession
direction: ``delta`` in the cones with zero fit (``A delta`` in the range of
``B``) and negative cost ``(1/n)(c . delta - b^T M B^T A delta) + alpha sum_j
||delta_j[:d]|| < 0`` (``M = (B^T B)^{-1}``); ADMM's iterates then run away
along it. When the iterate norm has grown far beyond its earlier size, its
direction is *snapped* onto an exact recession direction: the blocks that
carry it are kept, constraints that are nearly tight are made tight, and the
direction is projected (least squares, float64) onto ``{P_perp A delta = 0,
tight rows = 0}``. If the snapped direction is feasible, has zero fit to
rounding and negative cost, it is a certificate of unboundedness and
:class:`UnboundedProgramError` is raised. Iterates that keep growing with a
decreasing objective without such a certificate raise it too ("numerically
unbounded"); nothing uncertified is returned.

torch is imported inside the functions so that ``import skconvexscore`` does
not load it; results are NumPy float64 arrays.
"""

import math
import time

import numpy as np

from ._devices import resolve_device, resolve_dtype
from ._programs import SolverError, UnboundedProgramError
from ._solution import OutputSolution

__all__ = [
    "estimate_memory_bytes",
    "solve_arrangement_first_order",
    "solve_arrangement_output_first_order",
]

# Scaled duals are returned (float32, in ``info``) for warm starts only while
# they are this small: n * 2P entries.
_MAX_STORED_MULTIPLIERS = 10_000_000
_RELAXATION = 1.6
# Residuals are checked, and rho rebalanced, every this many iterations.
_CHECK_EVERY = 10
# rho is rebalanced when the root of the primal/dual residual ratio leaves [1/2, 2].
_RHO_ADAPT_RATIO = 2.0
_RHO_RANGE = 1e6
# Working set: rows per pattern at the start and added per round, per input dimension.
_INITIAL_ROWS_PER_DIMENSION = 4
_ROWS_ADDED_PER_ROUND = 2
# Unboundedness watch: test the direction once the iterate norm exceeds this
# multiple of the norm seen when the watch started, then at every doubling.
_WATCH_START = 50
_RUNAWAY_FACTOR = 30.0
_DIVERGENCE_FACTOR = 1e3
# Growth with a falling value is confirmed by the exact descent-ray program
# (:func:`~skconvexscore._cvxpy_solver._recession_cost`) up to this many cone
# rows, n x 2P; past it the growth alone is reported, as numerical.
_MAX_RAY_CHECK_ROWS = 200_000
_TIGHT_THRESHOLDS = (1e-9, 1e-7, 1e-5, 1e-4, 1e-3, 1e-2)
_MAX_SNAP_BLOCKS = 24
# entries of one row chunk of Phi while forming H
_HESSIAN_CHUNK = 1 << 23
# Blocks whose input weights are below this fraction of the largest are residue.
_RESIDUE = 1e-6


# --------------------------------------------------------------------------
# Device tensors of a program
# --------------------------------------------------------------------------


def _resolve_device_dtype(device, dtype):
    """The solver's device (None: ``"auto"``) and storage dtype (None: float64 on the CPU, float32 on a GPU)."""
    device = resolve_device("auto" if device is None else device)
    return device, resolve_dtype(dtype, device)


def estimate_memory_bytes(n, n_patterns, n_features, dtype_bytes=8):
    """Peak device memory of one output's solve, in bytes (an estimate).

    The stored cone signs and output masks (``n x 2P`` each, in the storage
    dtype), the float64 ``n x 2P`` temporaries of the full row checks and of
    the certificate (about six at once), the float64 ``P(d+1)`` square Hessian
    and its Cholesky factor, and one row chunk of the pattern design while
    ``H`` is formed. ADMM's own iterates are ``O(P m d)`` for ``m`` carried
    rows per pattern. Measured peaks (``n = 3e5``, ``P = 100``, d = 2, CPU):
    114 bytes per point and pattern in float64 storage, 98 in float32; this
    gives 128 and 112.
    """
    width = n_patterns * (n_features + 1)
    per_point_pattern = 4 * dtype_bytes + 96
    return int(per_point_pattern * n * n_patterns + 2 * 8 * width**2 + 8 * _HESSIAN_CHUNK)


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
        as_t = lambda a: torch.as_tensor(np.ascontiguousarray(a), device=device, dtype=dtype)
        self.X = as_t(program.features)  # (n, d+1)
        masks = torch.as_tensor(np.ascontiguousarray(program.masks), device=device)
        signs = torch.where(masks, 1.0, -1.0).to(dtype)  # (n, P) cone signs
        out = masks.to(dtype) if program.activation == "relu" else signs  # output masks
        # Blocks are laid out flat, (2P, d+1): v_1..v_P then w_1..w_P, so that every
        # product is one 2-D matmul (batched broadcasting is ~30x slower on CPU).
        self.G = torch.cat([signs, signs], dim=1)  # (n, 2P)
        self.S = torch.cat([out, -out], dim=1)  # sigma_j S_j, (n, 2P)
        self.trace_counts = as_t(program.trace_counts())  # (P,)
        # the float64 program's points, not their (possibly float32) storage: H, the
        # projection P_perp and the working-set rows describe the program that is
        # certified (built from the rounded points, ADMM converged to the optimum of a
        # program ~1e-6 away and float32 stalled at a gap of 1.1e-6 for tol = 1e-6)
        stored = np.ascontiguousarray(program.features, dtype=np.float64)
        gram = stored.T @ stored
        # pseudo-inverse of the Gram from the singular values of the points: a
        # rank-deficient skip design (collinear data) still has a least-squares beta,
        # and pinv(gram) would cut at eps relative to s_max^2, dropping spreads below
        # 1e-8 of the largest (anisotropic data, full rank): the solver then certified
        # the optimum of a program without skip connection along them
        _, sing, vt = np.linalg.svd(stored, full_matrices=False)
        keep = sing > max(stored.shape) * np.finfo(np.float64).eps * sing[0]
        pinv = (vt[keep].T / sing[keep] ** 2) @ vt[keep]
        self.M = as_t(pinv) if self.skip else None
        self.M64 = torch.as_tensor(pinv, device=device, dtype=torch.float64) if self.skip else None
        self.feature_gram = torch.as_tensor(gram / self.n, device=device, dtype=torch.float64)
        self.targets = program.targets
        self.gates = as_t(program.gates)
        self.hessian = None  # formed on first use, in float64
        self._exact = None
        self.threads = torch.get_num_threads()  # the caller's, for the Hessian

    def pattern_hessian(self):
        """``H = Phi^T P_perp Phi / n`` in float64, shape (P(d+1), P(d+1))."""
        import torch

        if self.hessian is not None:
            return self.hessian
        f64 = torch.float64
        n, d, P = self.n, self.d, self.P
        width = P * (d + 1)
        X = self.exact().X
        out = self.S[:, :P].to(f64)
        H = torch.zeros((width, width), device=self.device, dtype=f64)
        cross = torch.zeros((width, d + 1), device=self.device, dtype=f64)
        rows = max(1, _HESSIAN_CHUNK // width)
        single = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            for start in range(0, n, rows):
                Xc = X[start:start + rows]
                Phi = (out[start:start + rows, :, None] * Xc[:, None, :]).reshape(-1, width)
                H.addmm_(Phi.T, Phi)
                cross.addmm_(Phi.T, Xc)
        finally:
            torch.set_num_threads(single)
        if self.skip:
            H -= cross @ self.M64 @ cross.T
        H /= n
        self.hessian = 0.5 * (H + H.T)
        return self.hessian

    def exact(self):
        """The program in float64 (:class:`_Tensors64`), built once."""
        if self._exact is None:
            self._exact = _Tensors64(self)
        return self._exact

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

    def linear_term(self):
        """``r`` (shape (P, d+1)) and ``const`` of ``g(u) = 1/2 a^T H a + r . a + const``.

        ``r = grad g`` at ``u = 0`` on the ``v`` blocks, in float64.
        """
        import torch

        f64 = torch.float64
        t = self.t
        U0 = torch.zeros((2 * t.P, t.d + 1), device=t.device, dtype=f64)
        op64 = t.exact().output(self.k)
        F0, beta0 = op64.fit(op64.pre(U0))
        const = float(op64.smooth_value(F0, beta0, U0))
        return op64.gradient(F0, None)[: t.P], const


def _group_prox(U, threshold, d):
    """Block soft-thresholding of the first ``d`` coordinates of every block.

    ``prox_{t alpha ||.[:d]||}(u) = (max(0, 1 - t alpha / ||u[:d]||) u[:d], u[d])``.
    """
    import torch

    head = U[..., :d]
    norms = head.norm(dim=-1, keepdim=True)
    shrink = torch.clamp(1.0 - threshold / torch.clamp(norms, min=torch.finfo(U.dtype).tiny), min=0.0)
    return torch.cat([head * shrink, U[..., d:]], dim=-1)


# --------------------------------------------------------------------------
# Certificate
# --------------------------------------------------------------------------


def _clean(U, tol, d, full=None):
    """Zero blocks that are solver noise.

    A block whose input part ``u[:d]`` is zero must have a zero bias too when
    its pattern has points on both sides (``G * (Zt u) >= 0`` forces it); on
    the all-active pattern (``full``, kept without skip connection) such a
    block is a legitimate constant and is kept. Blocks far below the largest
    are first-order residue.
    """
    import torch

    norms = U.norm(dim=-1)
    eps = torch.finfo(U.dtype).eps
    floor = max(1e-3 * tol, 100 * eps) * float(norms.max()) if norms.numel() else 0.0
    flat = U[..., :d].norm(dim=-1) == 0
    if full is not None:
        flat = flat & ~full
    dead = flat | (norms <= floor)
    return torch.where(dead.unsqueeze(-1), torch.zeros_like(U), U)


def _project_violated_rows(U, t, rounds=3):
    """Move each block by the least-norm step that zeroes its violated cone rows.

    A first-order point violates a few rows by tiny amounts. Nudging along the
    pattern's interior gate alone costs ``violation / gate margin``, and in
    the thin cones of large ``n`` the margins are tiny; this step costs about
    the violation itself, and the gate nudge that follows only has rounding
    left to repair.
    """
    import torch

    U = U.clone()
    for _ in range(rounds):
        values = t.G * (t.X @ U.T)  # (n, 2P)
        violated = values < 0
        blocks = torch.nonzero(violated.any(dim=0)).flatten().tolist()
        if not blocks:
            break
        for j in blocks:
            rows = t.G[violated[:, j], j, None] * t.X[violated[:, j]]  # (m, d+1)
            U[j] -= torch.linalg.pinv(rows, rtol=1e-12) @ (rows @ U[j])
    return U


def _is_certified(cert, tol):
    """The stopping rule: gap and cone violation below ``tol``, dual residual below ``sqrt(tol)``."""
    return (cert["relative_gap"] <= tol and cert["constraint_violation"] <= tol
            and cert["dual_residual"] <= math.sqrt(tol))


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
    op64 = t.exact().output(op.k)
    t64 = op64.t
    U = _clean(U.to(f64), tol, d, full=(t64.G > 0).all(dim=0))
    U = _project_violated_rows(U, t64)
    # Repair: move every block along its pattern's strictly interior gate until it
    # satisfies its cone constraints (tau_j = max_i -(K_j u_j)_i / (K_j g_j)_i). The
    # point becomes exactly feasible and its objective, hence the gap, pays for it.
    gates = torch.cat([t64.gates, t64.gates], dim=0)  # (2P, d+1)
    gate_margins = t64.G * (t64.X @ gates.T)  # (n, 2P), > 0
    H = op64.pre(U)
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
        "relative_gap": gap / max(t.program.value_unit(op.k), abs(primal)),
        "constraint_violation": violation,
        "dual_residual": dual_residual,
        "repair": repair,
    }


class _Tensors64:
    """The program in float64 on the device, for certificates.

    Read from the program itself, not from the stored points: with float32
    storage those are rounded (by ~6e-8 relative), so a certificate computed
    on them would be about a nearby program, and a point can even fall on the
    wrong side of a pattern's interior gate. The cone signs and output masks
    are 0 and +-1, exact in any dtype, and are shared with the stored tensors
    (products with float64 tensors are float64).
    """

    def __init__(self, t):
        import torch

        f64 = torch.float64
        for name in ("n", "d", "P", "alpha", "sm", "skip", "device", "targets", "G", "S"):
            setattr(self, name, getattr(t, name))
        self.dtype = f64
        if t.dtype == f64:
            self.X, self.gates, self.trace_counts, self.M = t.X, t.gates, t.trace_counts, t.M
            return
        program, features = t.program, t.program.features
        as64 = lambda a: torch.as_tensor(np.ascontiguousarray(a), device=t.device, dtype=f64)
        self.X = as64(features)
        self.gates = as64(program.gates)
        self.trace_counts = as64(program.trace_counts())
        self.M = t.M64  # from the program's points already (None without skip)

    output = _Tensors.output


# --------------------------------------------------------------------------
# Unboundedness certificate
# --------------------------------------------------------------------------


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
            continue
        x = null.T @ (null @ x0)
        if np.linalg.norm(x) < 0.5:
            continue
        x /= np.linalg.norm(x)
        blocks = x.reshape(J, d + 1)
        cone = G * (Xt @ blocks.T)
        if np.min(cone / row_norms[:, None]) < -1e-12:
            continue
        fit = np.linalg.norm(A_perp @ x) / (scale_A + 1e-300)
        if fit > 1e-10:
            continue
        cost_lin = lin @ x
        if gram_pinv is not None:
            cost_lin -= b @ (gram_pinv @ (Xt.T @ (A_cols @ x)))
        penalty = program.alpha * np.linalg.norm(blocks[:, :d], axis=1).sum()
        slope = cost_lin / n + penalty
        if slope < -1e-6 * (abs(cost_lin) / n + penalty):
            return {"slope": float(slope), "n_blocks": int(np.sum(np.linalg.norm(blocks, axis=1) > 1e-8)),
                    "tight_threshold": threshold}
    return None


# --------------------------------------------------------------------------
# The solver
# --------------------------------------------------------------------------


class _WorkingSet:
    """The cone constraints that ADMM carries, per pattern (shared by ``v_i`` and ``w_i``).

    A cone ``{u : G_i * (Zt u) >= 0}`` in ``R^{d+1}`` has a handful of facets
    among its ``n`` constraints; the others are implied. ADMM carries only a
    working set of rows, normalised to unit length: at first the ``size``
    hyperplanes nearest (in angle) to the pattern's interior gate, then every
    row the full check finds violated. The full constraints are checked
    before anything is certified, so the working set only affects speed.
    """

    def __init__(self, t, size, multipliers=None):
        import torch

        self.t = t
        X64 = t.exact().X
        self.row_norms = X64.norm(dim=1)
        margins = (X64 @ t.exact().gates.T).abs() / self.row_norms[:, None]  # (n, P)
        # the nearest row on each side of every pattern: with rows of one sign only, a
        # block with a bias and no input weights would be feasible (a free step on the
        # pattern's points, which ADMM exploits until the full check finds it)
        for side in (t.G[:, : t.P] > 0, t.G[:, : t.P] < 0):
            nearest = torch.where(side, margins, math.inf).argmin(dim=0)
            margins[nearest, torch.arange(t.P, device=t.device)] = -1.0
        if multipliers is not None:
            # a warm start carries the rows that held its multipliers
            held = (multipliers[:, : t.P] > 0) | (multipliers[:, t.P:] > 0)
            margins = torch.where(held, -1.0, margins)
            size = max(size, int(held.sum(dim=0).max()))
        size = min(size, t.n)
        self.index = torch.topk(margins, size, dim=0, largest=False).indices.T.contiguous()
        self.valid = torch.ones_like(self.index, dtype=torch.bool)
        self._build_rows()

    def _build_rows(self):
        import torch

        t = self.t
        f64 = torch.float64
        patterns = torch.arange(t.P, device=t.device)[:, None]
        signs = t.G[:, : t.P].to(f64)[self.index, patterns]  # (P, m)
        rows = t.exact().X[self.index] / self.row_norms[self.index][..., None]
        rows = rows * (signs * self.valid)[..., None]  # padding rows are zero
        self.rows = torch.cat([rows, rows])  # (2P, m, d+1): v blocks then w blocks
        self.grams = torch.einsum("pmc,pme->pce", rows, rows)  # (P, d+1, d+1)

    @property
    def size(self):
        return int(self.valid.sum())

    def apply(self, U):
        """Constraint values ``y_r . u_j``, shape (2P, m)."""
        import torch

        return torch.einsum("jmc,jc->jm", self.rows, U)

    def adjoint(self, S):
        import torch

        return torch.einsum("jmc,jm->jc", self.rows, S)

    def add_violated(self, Z, threshold, per_pattern):
        """Add the worst violated rows of each pattern; return how many were added.

        A row counts as violated below ``-threshold`` (relative to the row and
        block norms) and below twice the worst violation of the carried rows:
        rows next to a carried facet are violated as much as it is, to ADMM's
        accuracy, and adding them would only slow ADMM down.
        """
        import torch

        t = self.t
        f64 = torch.float64
        # blocks far below the largest are residue; a block with a bias and no input
        # weights is not: it is feasible only while the carried rows of its pattern
        # all have one sign, and only the full check can find the others
        norms = Z.norm(dim=1)
        live = norms > _RESIDUE * float(norms.max())
        inverse = torch.where(live, 1.0 / torch.where(live, norms, 1.0), 0.0)
        carried = float((-self.apply(Z) * inverse[:, None]).max())
        threshold = max(threshold, 2.0 * carried)
        values = (t.G.to(f64) * (t.exact().X @ Z.T)) * inverse / self.row_norms[:, None]  # (n, 2P)
        worst = torch.minimum(values[:, : t.P], values[:, t.P:])  # (n, P)
        patterns = torch.arange(t.P, device=t.device)[:, None].expand_as(self.index)
        worst[self.index[self.valid], patterns[self.valid]] = 0.0  # already carried
        k = min(per_pattern, t.n)
        lowest, candidates = torch.topk(worst, k, dim=0, largest=False)
        new_valid = (lowest < -threshold).T
        count = int(new_valid.sum())
        if count:
            keep = new_valid.any(dim=0)  # drop columns that add nothing
            self.index = torch.cat([self.index, candidates.T[:, keep]], dim=1)
            self.valid = torch.cat([self.valid, new_valid[:, keep]], dim=1)
            self._build_rows()
        return count

    def multipliers(self, mu, rho_s):
        """Cone multipliers on the full constraints, as ``_certify`` takes them.

        ``n`` times the multiplier of ``G_j * (Zt u_j) >= 0`` at every point,
        shape (n, 2P): the scaled duals of the carried unit rows, rescaled by
        the row norms and scattered to their points.
        """
        import torch

        t = self.t
        nu = torch.clamp(-rho_s * mu, min=0.0)  # (2P, m), multiplier of the unit rows
        index = torch.cat([self.index, self.index])  # (2P, m)
        values = t.n * nu / self.row_norms[index]
        out = torch.zeros((t.n, 2 * t.P), device=t.device, dtype=torch.float64)
        blocks = torch.arange(2 * t.P, device=t.device)[:, None].expand_as(index)
        out.index_put_((index.reshape(-1), blocks.reshape(-1)), values.reshape(-1), accumulate=True)
        return out


class _SplitSystem:
    """The ADMM ``u``-step ``(Q + rho_z I + rho_s K^T K) u = rhs``, factorised once per ``rho``.

    Blocks ``v_i`` and ``w_i`` share their constraint rows, so in the rotated
    blocks ``a = (v - w)/sqrt 2``, ``b = (v + w)/sqrt 2`` the matrix is
    ``2 H + diag_i E_i`` on ``a`` and ``diag_i E_i`` on ``b``, with
    ``E_i = rho_z I + rho_s Y_i^T Y_i``: one ``P(d+1)`` Cholesky factor and ``P``
    small inverses, all float64.
    """

    def __init__(self, H, grams, rho_z, rho_s):
        import torch

        P, d1 = grams.shape[0], grams.shape[1]
        self.P, self.d1 = P, d1
        E = rho_z * torch.eye(d1, device=H.device, dtype=H.dtype) + rho_s * grams  # (P, d1, d1)
        system = 2.0 * H + torch.block_diag(*E)
        self.factor, info = torch.linalg.cholesky_ex(system)
        if int(info) != 0:
            raise SolverError("the ADMM linear system is not positive definite (rounding).")
        self.E_inv = torch.linalg.inv(E)

    def solve(self, rhs):
        import torch

        P, d1 = self.P, self.d1
        root2 = math.sqrt(2.0)
        ra = (rhs[:P] - rhs[P:]) / root2
        rb = (rhs[:P] + rhs[P:]) / root2
        a = torch.cholesky_solve(ra.reshape(-1, 1), self.factor).reshape(P, d1)
        b = torch.einsum("pce,pe->pc", self.E_inv, rb)
        return torch.cat([(a + b) / root2, (b - a) / root2])


def _mean_curvature(H):
    """The fit's mean curvature per coordinate: the scale of a penalty and of a block."""
    import torch

    return float(torch.diagonal(H).mean()) if H.numel() else 1.0


def _run(op, U0, multipliers, rho, tol, max_iter, verbose):
    """ADMM with a working set of cone rows until the certificate holds.

    See the module docstring. ``U0`` (2P, d+1) and ``multipliers`` (n, 2P,
    as ``_certify`` takes them) warm-start it. Returns ``(certificate, n_iter,
    history, rho, multipliers)`` or raises.
    """
    import torch

    t = op.t
    d, P = t.d, t.P
    f64 = torch.float64
    alpha = t.alpha
    H = t.pattern_hessian()
    r, _ = op.linear_term()
    q = torch.cat([r, -r])
    work = _WorkingSet(t, max(1, int(_INITIAL_ROWS_PER_DIMENSION * (d + 1))), multipliers)
    curvature = _mean_curvature(H)
    # both penalties start at the curvature of the fit
    rho_z, rho_s = (min(max(curvature, 1e-4), 1e4),) * 2 if rho is None else rho
    bounds = [(x / _RHO_RANGE, x * _RHO_RANGE) for x in (rho_z, rho_s)]
    system = _SplitSystem(H, work.grams, rho_z, rho_s)
    mu = torch.zeros((2 * P, work.index.shape[1]), device=t.device, dtype=f64)
    if U0 is None:
        Z = torch.zeros((2 * P, d + 1), device=t.device, dtype=f64)
        lam = torch.zeros_like(Z)
    else:
        Z = U0.to(f64)
        if multipliers is not None:
            # carried rows take the stored multipliers of their points
            index = torch.cat([work.index, work.index])
            blocks = torch.arange(2 * P, device=t.device)[:, None].expand_as(index)
            mu = -multipliers.to(f64)[index, blocks] * work.row_norms[index] / (t.n * rho_s)
        # stationarity of the u-step at u = z: grad g + rho_z lam + rho_s K^T mu = 0
        a = (Z[:P] - Z[P:]).reshape(-1)
        grad = (H @ a).reshape(P, d + 1) + r
        lam = -(torch.cat([grad, -grad]) + rho_s * work.adjoint(mu)) / rho_z
    S = torch.clamp(work.apply(Z), min=0.0)

    q_scale = float(q.abs().max())
    block_scale = max(q_scale, alpha) / max(curvature, 1e-12)
    gamma = _RELAXATION
    eps_admm = max(tol, 1e-12)
    row_check = 1e-2
    history = []
    cert = None
    watch_norm, next_test, objectives = None, math.inf, []
    ray = []  # the descent-ray check's verdict, once run
    n_iter = 0
    while True:
        n_iter += 1
        U = system.solve(-q + rho_z * (Z - lam) + rho_s * work.adjoint(S - mu))
        KU = work.apply(U)
        U_hat = gamma * U + (1.0 - gamma) * Z
        KU_hat = gamma * KU + (1.0 - gamma) * S
        Z_new = _group_prox(U_hat + lam, alpha / rho_z, d)
        S_new = torch.clamp(KU_hat + mu, min=0.0)
        lam = lam + U_hat - Z_new
        mu = mu + KU_hat - S_new
        if n_iter % _CHECK_EVERY and n_iter < max_iter:
            Z, S = Z_new, S_new
            continue
        # primal and dual residuals of each split, relative to the iterates or, when
        # the optimum is (near) zero, to the natural size of a block, |q| / curvature
        primal_z = float((U - Z_new).abs().max()) / max(float(U.abs().max()),
                                                         float(Z_new.abs().max()), block_scale)
        primal_s = float((KU - S_new).abs().max()) / max(float(KU.abs().max()),
                                                          float(S_new.abs().max()), block_scale)
        dual_scale = max(q_scale, alpha, rho_z * float(lam.abs().max()),
                         rho_s * float(work.adjoint(mu).abs().max()))
        dual_z = rho_z * float((Z_new - Z).abs().max()) / dual_scale
        dual_s = rho_s * float(work.adjoint(S_new - S).abs().max()) / dual_scale
        Z, S = Z_new, S_new
        residuals = (primal_z, primal_s, dual_z, dual_s)
        if not all(math.isfinite(v) for v in residuals):
            raise SolverError(
                "the first-order solver produced non-finite values (overflow); the program "
                "is probably unbounded below or badly scaled. Try a larger alpha."
            )
        worst = max(residuals)
        if verbose and n_iter % (20 * _CHECK_EVERY) == 0:
            print(f"[admm k={op.k}] iter {n_iter:6d} rows {work.size:6d} rho {rho_z:8.2g} "
                  f"{rho_s:8.2g} primal {primal_z:.1e} {primal_s:.1e} dual {dual_z:.1e} "
                  f"{dual_s:.1e}")
        if t.sm:
            norm = float(Z.norm())
            if watch_norm is None and n_iter >= _WATCH_START:
                watch_norm = max(norm, 1.0)
                next_test = _RUNAWAY_FACTOR * watch_norm
            if watch_norm is not None and norm >= next_test:
                next_test = 2.0 * norm
                # the value at the iterate made feasible: ADMM's iterates leave their
                # cones, and near the bound their own value can fall far below a
                # bounded optimum while they grow (-54 against -17.9, 3-D, abs)
                objectives.append(_certify(op, Z, None, tol)["objective"])
                certificate = _recession_certificate(t.program, op.k, Z.view(2, P, d + 1))
                if certificate is not None:
                    raise UnboundedProgramError(
                        f"the score-matching program of output {op.k} is unbounded below at "
                        f"alpha={alpha:.6g}: the solver found a recession direction (in the "
                        f"cones, zero fit, cost slope {certificate['slope']:.3g} < 0, "
                        f"{certificate['n_blocks']} unit(s))"
                    )
                if (norm >= _DIVERGENCE_FACTOR * watch_norm and len(objectives) >= 4
                        and all(b < a for a, b in zip(objectives[-4:-1], objectives[-3:]))
                        and _confirms_descent_ray(t.program, op.k, ray)):
                    raise UnboundedProgramError(
                        f"the score-matching program of output {op.k} is numerically unbounded "
                        f"below at alpha={alpha:.6g}: the iterates grew {norm / watch_norm:.3g}-"
                        f"fold while the objective kept decreasing (to {objectives[-1]:.4g})"
                    )
        if worst <= max(row_check, eps_admm):
            # look for violated rows at every tenfold drop of the residuals, so that
            # the facets are found long before the final digits
            row_check = 0.1 * worst
            added = work.add_violated(Z, 0.1 * tol, max(1, int(_ROWS_ADDED_PER_ROUND * (d + 1))))
            if added:
                mu = torch.cat([mu, torch.zeros((2 * P, work.index.shape[1] - mu.shape[1]),
                                                device=t.device, dtype=f64)], dim=1)
                S = torch.clamp(work.apply(Z), min=0.0)
                system = _SplitSystem(H, work.grams, rho_z, rho_s)
                if verbose:
                    print(f"[admm k={op.k}] iter {n_iter:6d} added {added} violated rows "
                          f"({work.size} carried)")
                continue
        if worst <= eps_admm:
            cert = _certify(op, Z, work.multipliers(mu, rho_s), tol)
            history.append((n_iter, cert["objective"], cert["relative_gap"],
                            cert["constraint_violation"]))
            if verbose:
                print(f"[admm k={op.k}] iter {n_iter:6d} certificate: obj "
                      f"{cert['objective']: .10g} gap {cert['relative_gap']:.2e} viol "
                      f"{cert['constraint_violation']:.2e} dual {cert['dual_residual']:.2e} "
                      f"repair {cert['repair']:.2e}")
            if _is_certified(cert, tol):
                break
            eps_admm = max(0.2 * eps_admm, 1e-13)
        if n_iter >= max_iter:
            # the last iterate may pass although the residuals did not ask for a check
            cert = _certify(op, Z, work.multipliers(mu, rho_s), tol)
            if _is_certified(cert, tol):
                break
            growing = watch_norm is not None and float(Z.norm()) > 100.0 * watch_norm
            hint = (
                " The iterates were growing without bound: the score-matching program may be "
                "unbounded below (alpha at or below its well-posedness bound, roughly d/n)."
                if (t.sm and growing) else " Increase max_iter or loosen tol."
            )
            raise SolverError(
                f"the first-order solver did not reach tol={tol:g} in max_iter={max_iter} "
                f"iterations on output {op.k} (relative duality gap {cert['relative_gap']:.3g}, "
                f"cone violation {cert['constraint_violation']:.3g}, dual residual "
                f"{cert['dual_residual']:.3g}, ADMM residual {worst:.2g}); the point is not "
                f"certified.{hint}"
            )
        new_z = _rebalance(rho_z, primal_z, dual_z, bounds[0])
        new_s = _rebalance(rho_s, primal_s, dual_s, bounds[1])
        if (new_z, new_s) != (rho_z, rho_s):
            lam = lam * (rho_z / new_z)
            mu = mu * (rho_s / new_s)
            rho_z, rho_s = new_z, new_s
            system = _SplitSystem(H, work.grams, rho_z, rho_s)
    return cert, n_iter, history, (rho_z, rho_s), work.multipliers(mu, rho_s)


def _confirms_descent_ray(program, k, verdict):
    """Whether growing iterates with a falling value may be called unbounded (SM, output k).

    They are no proof: a bounded program whose optimum lies far out (41 points
    in 2-D at alpha = 2/n, optimum -13.37 at a norm ~1e6) grows the same way
    and was reported unbounded. Where the exact descent-ray program is small
    enough it decides, once (``verdict`` caches it); without a ray the run
    goes on and ends certified or as a SolverError.
    """
    if program.n * 2 * program.n_patterns > _MAX_RAY_CHECK_ROWS:
        return True
    if not verdict:
        from ._cvxpy_solver import _recession_cost

        verdict.append(bool(_recession_cost(program, k) < -1e-6 * program.alpha))
    return verdict[0]


def _rebalance(rho, primal, dual, bound):
    """Residual balancing (OSQP): move ``rho`` by the root of the residual ratio."""
    ratio = math.sqrt(max(primal, 1e-300) / max(dual, 1e-300))
    if 1.0 / _RHO_ADAPT_RATIO <= ratio <= _RHO_ADAPT_RATIO:
        return rho
    return min(max(rho * ratio, bound[0]), bound[1])


def _stack_warm_start(warm_start, P, d):
    if warm_start is None:
        return None, None, None
    if not isinstance(warm_start, OutputSolution):
        raise ValueError(f"warm_start must be an OutputSolution, got {type(warm_start).__name__}.")
    pos = np.asarray(warm_start.positive, dtype=np.float64)
    neg = np.asarray(warm_start.negative, dtype=np.float64)
    if pos.shape != (P, d + 1) or neg.shape != (P, d + 1):
        raise ValueError(
            f"warm_start has blocks of shape {pos.shape}, expected {(P, d + 1)}: it must come "
            "from a program with the same patterns."
        )
    info = warm_start.info or {}
    return np.concatenate([pos, neg]), info.get("cone_multipliers"), info.get("penalty_parameter")


def solve_arrangement_output_first_order(program, k, tol=1e-6, max_iter=None, device="cpu",
                                         dtype=None, warm_start=None, verbose=False,
                                         _tensors=None):
    r"""Solve output ``k``'s cone-constrained arrangement program by ADMM.

    ADMM splits the group penalty and the cone constraints ``G_i * (Zt v_i)
    >= 0``, ``G_i * (Zt w_i) >= 0`` off the quadratic fit, whose ``P(d+1)``
    square Hessian is factorised once per penalty parameter; the skip row and
    intercept are eliminated by least squares. See the module docstring for
    the maths, the certificate and the unboundedness test.

    Parameters
    ----------
    program : ArrangementProgram
    k : int
        Output coordinate.
    tol : float, default=1e-6
        Stop when ``duality_gap <= tol * max(program.value_unit(k), |objective|)``, the relative
        cone violation is ``<= tol`` and the dual residual ``<= sqrt(tol)``.
    max_iter : int or None
        ADMM iterations (default ``50000``; one costs ``O((P(d+1))^2)``, not ``O(n)``).
    device : str or torch.device, default="cpu"
        ``"cpu"``, ``"cuda"``, ``"cuda:N"``, a :class:`torch.device` or
        ``"auto"`` (:func:`~skconvexscore._devices.resolve_device`; None
        means ``"auto"``).
    dtype : None, "float32", "float64" or torch dtype
        Storage of the ``n x P`` data (masks, signs, points) that ADMM works
        on: float32 halves it, though the float64 temporaries of the
        certificates dominate the peak (:func:`estimate_memory_bytes`). ADMM's
        iterates, the Hessian and its factor are float64 whatever ``dtype``,
        and the certificate is computed on the float64 program (not on its
        rounding). ``None``: float64 on CPU, float32 on CUDA.
    warm_start : OutputSolution or None
        A solution of a program with the same patterns (e.g. the previous
        ``alpha`` of a path). Its blocks, cone multipliers and penalty
        parameter (stored in ``info``) start the iteration.
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
        SM only: the iterates run away along a recession direction.
    SolverError
        The certificate did not reach ``tol`` within ``max_iter`` iterations.
    """
    import torch

    start = time.perf_counter()
    if not 0 <= k < program.d:
        raise ValueError(f"k must be in [0, {program.d}), got {k}.")
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}.")
    if max_iter is not None and (isinstance(max_iter, bool) or int(max_iter) != max_iter
                                 or max_iter < 1):
        raise ValueError(f"max_iter must be a positive integer or None, got {max_iter!r}.")
    max_iter = 50000 if max_iter is None else int(max_iter)
    dev, dt = _resolve_device_dtype(device, dtype)
    exact = program.affine_solution(k)
    if exact is not None:
        return exact
    n, d, P = program.n, program.d, program.n_patterns
    memory = estimate_memory_bytes(n, P, d, torch.finfo(dt).bits // 8)
    if verbose:
        print(f"[admm k={k}] n={n} d={d} P={P} device={dev} dtype={dt} "
              f"estimated memory {memory / 2**20:.1f} MiB")
    U_np, multipliers_np, rho = _stack_warm_start(warm_start, P, d)
    tensors = _tensors
    if tensors is None or tensors.dtype != dt or tensors.device != dev:
        tensors = _Tensors(program, dev, dt)

    # ADMM's iterations are latency bound (P(d+1)-sized tensors): intra-op threads
    # only add synchronisation, up to 1000x slower when another job holds a core.
    # Only the one large product, the pattern Hessian, gets the caller's threads.
    threads = torch.get_num_threads()
    if dev.type == "cpu":
        torch.set_num_threads(1)
    try:
        op = tensors.output(k)
        U0 = None if U_np is None else torch.as_tensor(U_np, device=dev, dtype=torch.float64)
        multipliers = None
        if multipliers_np is not None and np.shape(multipliers_np) == (n, 2 * P):
            multipliers = torch.as_tensor(np.asarray(multipliers_np), device=dev)
        cert, n_iter, history, rho, multipliers = _run(op, U0, multipliers, rho, tol, max_iter,
                                                       verbose)
    finally:
        torch.set_num_threads(threads)

    Uc = cert["U"].detach().cpu().numpy().reshape(2, P, d + 1)
    skip_row, intercept = np.zeros(d), 0.0
    if cert["beta"] is not None:
        beta = cert["beta"].detach().cpu().numpy()
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
        "penalty_parameter": rho,
        "history": history,
    }
    if n * 2 * P <= _MAX_STORED_MULTIPLIERS:
        info["cone_multipliers"] = multipliers.detach().to("cpu", torch.float32).numpy()
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

    The outputs share the data tensors and the pattern Hessian (built once on
    the device; each output factorises it with its own penalties) and are
    solved one after the other.

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
    dev, dt = _resolve_device_dtype(device, dtype)
    if warm_start is not None and (
        not isinstance(warm_start, (list, tuple)) or len(warm_start) != program.d
        or not all(isinstance(solution, OutputSolution) for solution in warm_start)
    ):
        raise ValueError(
            f"warm_start must be a list of {program.d} OutputSolution, one per output, from a "
            f"program with the same patterns; got {type(warm_start).__name__}."
        )
    tensors = _Tensors(program, dev, dt)
    return [
        solve_arrangement_output_first_order(
            program, k, tol=tol, max_iter=max_iter, device=dev, dtype=dtype,
            warm_start=None if warm_start is None else warm_start[k], verbose=verbose,
            _tensors=tensors,
        )
        for k in range(program.d)
    ]
