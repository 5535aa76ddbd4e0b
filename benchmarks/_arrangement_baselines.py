"""Helpers for ``bench_arrangement.py``: programs, capped runs, pyscnn and Adam baselines.

Everything that a benchmark cell runs goes through :func:`run_capped`, which
executes one solver in a fresh ``spawn`` subprocess and kills it after the
per-cell time cap, so that a slow or hanging solver cannot stall the run.
Each task returns a small dict of plain floats; objectives are always
recomputed with ``program.objective_value`` so that every column is comparable.

This module is benchmark-only: ``pyscnn`` (import name ``scnn``) is an
optional import and never a dependency of ``skconvexscore``.
"""

import math
import multiprocessing
import time
import traceback

import numpy as np

from skconvexscore._programs import ArrangementProgram, sample_patterns, standardize

# seconds allowed for a child to import its modules before the cap starts
_IMPORT_GRACE = 120.0
# extra seconds after the cap for tasks that stop themselves at the cap (pyscnn, Adam)
_STOP_GRACE = 30.0


# --------------------------------------------------------------------------
# Programs
# --------------------------------------------------------------------------


def make_program(kind, n, d, n_gates, seed=0, sigma=0.3):
    """Build one benchmark program on two Gaussian clusters.

    Parameters
    ----------
    kind : {"sm", "dsm", "dsm-noskip"}
        ``"sm"``: score matching, ReLU with skip connection,
        ``alpha = 4 d / n + 0.05`` (a bit above the well-posedness scale d/n).
        ``"dsm"``: denoising score matching, ReLU with skip connection,
        ``alpha = 0.05``, ``sigma = 0.3``, one noisy copy per point.
        ``"dsm-noskip"``: the same DSM program without skip connection (the
        program pyscnn can solve).
    n : int
        Number of rows of the program (data points for SM, noisy points for DSM).
    d : int
    n_gates : int
        Gates drawn; ``P`` (distinct non-trivial patterns) can be smaller.
    seed : int
    sigma : float

    Returns
    -------
    program : ArrangementProgram
    """
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    X[:, 0] += 2.0 * np.sign(rng.normal(size=n))  # two clusters
    targets = None
    if kind == "sm":
        Z, _ = standardize(X)
        alpha = 4.0 * d / n + 0.05
        objective, skip = "sm", True
    elif kind in ("dsm", "dsm-noskip"):
        # as tests/test_first_order.py make_program (copies = 1): targets -eps/sigma,
        # expressed in standardised units (the score scales as 1 / scale)
        eps = rng.normal(size=(n, d))
        Z, st = standardize(X + sigma * eps)
        targets = -eps / sigma * st.scale
        alpha = 0.05
        objective, skip = "dsm", kind == "dsm"
    else:
        raise ValueError(f"unknown program kind {kind!r}")
    masks, gates = sample_patterns(Z, n_gates, "relu", np.random.RandomState(seed))
    return ArrangementProgram(objective, Z, masks, gates, alpha, "relu", skip, targets)


# --------------------------------------------------------------------------
# Capped execution
# --------------------------------------------------------------------------


def _child(conn, task, program, threads, options):
    """Subprocess body: import, say ready, run ``task``, send its result dict."""
    try:
        func = TASKS[task]
        # import the heavy modules before the clock starts
        import torch

        if threads:
            torch.set_num_threads(threads)

        import skconvexscore._cvxpy_solver
        import skconvexscore._first_order  # noqa: F401

        conn.send("ready")
        result = func(program, **options)
    except Exception as exc:  # noqa: BLE001 -- reported as "failed (ExcName)"
        result = {"error": type(exc).__name__, "message": str(exc)[:300],
                  "traceback": traceback.format_exc()[-2000:]}
    conn.send(result)
    conn.close()


def run_capped(task, program, cap, self_stopping=False, threads=None, **options):
    """Run ``TASKS[task](program, **options)`` in a subprocess under a time cap.

    Parameters
    ----------
    task : str
        Key of :data:`TASKS`.
    program : ArrangementProgram
    cap : float
        Per-cell cap in seconds on the solve itself (imports are not counted).
    self_stopping : bool
        The task stops itself at the cap (its ``max_seconds`` option) and returns its iterate
        (pyscnn, Adam); it is killed only after a further grace period.
    threads : int or None
        ``torch.set_num_threads`` in the subprocess (None: torch's default).

    Returns
    -------
    result : dict
        The task's dict, ``{"timeout": True}`` if it was killed, or
        ``{"error": name, ...}`` if it raised or died.
    """
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child, args=(child, task, program, threads, options), daemon=True)
    process.start()
    child.close()
    try:
        if not parent.poll(_IMPORT_GRACE):
            return {"error": "ImportTimeout"}
        first = parent.recv()
        if first != "ready":  # the import itself failed
            return first
        limit = cap + (_STOP_GRACE if self_stopping else 0.0)
        if not parent.poll(limit):
            return {"timeout": True, "time": float(cap)}
        return parent.recv()
    except EOFError:
        return {"error": f"ChildDied(exitcode={process.exitcode})"}
    finally:
        if process.is_alive():
            process.kill()
        process.join(5)
        parent.close()


# --------------------------------------------------------------------------
# Our solvers
# --------------------------------------------------------------------------


def _solution_summary(program, solution, k, elapsed):
    objective = program.objective_value(k, solution.positive, solution.negative,
                                        solution.skip_row, solution.intercept)
    return {
        "time": elapsed,
        "objective": float(objective),
        "reported_objective": float(solution.objective),
        "n_iter": int(solution.n_iter),
        "duality_gap": float(solution.duality_gap),
        "cone_violation": float(program.cone_violation(solution.positive, solution.negative)),
    }


def task_first_order(program, k=0, tol=1e-6, device="cpu"):
    """Our PyTorch first-order solver (``solve_arrangement_output_first_order``)."""
    import torch

    from skconvexscore._first_order import solve_arrangement_output_first_order

    if device == "cuda":  # initialise the context outside the clock
        torch.zeros(1, device="cuda")
        torch.cuda.synchronize()
    start = time.perf_counter()
    solution = solve_arrangement_output_first_order(program, k, tol=tol, device=device)
    if device == "cuda":
        torch.cuda.synchronize()
    return _solution_summary(program, solution, k, time.perf_counter() - start)


def task_cvxpy(program, k=0):
    """The cvxpy + Clarabel reference (``solve_arrangement_output_cvxpy``)."""
    from skconvexscore._cvxpy_solver import solve_arrangement_output_cvxpy

    start = time.perf_counter()
    solution = solve_arrangement_output_cvxpy(program, k)
    return _solution_summary(program, solution, k, time.perf_counter() - start)


# --------------------------------------------------------------------------
# pyscnn (pilancilab/scnn) augmented Lagrangian on the DSM program
# --------------------------------------------------------------------------


def pyscnn_available():
    """Whether ``scnn`` (pip package ``pyscnn``) can be imported."""
    try:
        import scnn.models  # noqa: F401
    except Exception:  # noqa: BLE001 -- any import failure means "not installed"
        return False
    return True


def task_pyscnn(program, k=0, max_seconds=120.0, bias_scale=10.0, tol=1e-6):
    """Solve output ``k``'s DSM program with pyscnn's augmented-Lagrangian ("AL") solver.

    pyscnn solves ``1/(2n) ||sum_i D_i X (v_i - w_i) - y||^2 + lam sum_i
    (||v_i|| + ||w_i||)`` subject to ``(2 D_i - 1) X v_i >= 0`` (same for ``w_i``),
    with ``D_i = 1[X g_i > 0]``; its loss has the same ``1/(2n)`` normalisation
    as ours (checked: ``squared_error / (2 len(y))``), so ``lam = alpha``. It
    has no skip connection (``program.skip_connection`` must be False) and its
    group norm covers every column of ``X``. We pass ``X = [Z, c 1]`` with
    ``c = bias_scale`` and gates ``[g[:d], g[d] / c]`` (the same patterns); a
    block ``u`` of ours is ``u' = [u[:d], u[d] / c]`` in pyscnn's variables, so
    its penalty is ``alpha sqrt(||u[:d]||^2 + u[d]^2 / c^2)``, which tends to
    ours (bias unpenalised) as ``c`` grows. ``c = 1`` is pyscnn's native
    formulation (bias penalised like a weight).

    The solve stops at pyscnn's own criterion or at ``max_seconds`` (a wrapper
    on its outer termination test), whichever is first; the returned
    objective is the one our program assigns to the mapped weights.
    """
    import logging

    import lab
    import scnn.private.interface.solvers as scnn_solvers
    from scnn.metrics import Metrics
    from scnn.models import ConvexReLU
    from scnn.private.interface import (
        build_internal_model,
        build_metrics_tuple,
        build_optimizer,
        get_logger,
        process_data,
        set_device,
    )
    from scnn.regularizers import NeuronGL1
    from scnn.solvers import AL

    if program.objective != "dsm" or program.skip_connection or program.activation != "relu":
        raise ValueError("pyscnn solves only the ReLU DSM program without skip connection")
    n, d, P = program.n, program.d, program.n_patterns
    state = {"timeout": False}

    class TimedCriterion(scnn_solvers.ConstrainedHeuristic):
        """pyscnn's outer termination test, also true once the time cap is reached."""

        def __call__(self, *args, **kwargs):
            if time.perf_counter() - state["start"] > max_seconds:
                state["timeout"] = True
                return True
            return super().__call__(*args, **kwargs)

    scnn_solvers.ConstrainedHeuristic = TimedCriterion
    logger = get_logger("scnn", False, False, None)
    logging.getLogger("scnn").setLevel(logging.ERROR)

    features = np.hstack([program.Z, np.full((n, 1), float(bias_scale))])
    gates = program.gates.copy()
    gates[:, d] /= bias_scale
    model = ConvexReLU(gates.T, c=1, bias=False)
    solver = AL(model, max_primal_iters=10**8, max_dual_iters=10**8, tol=tol, constraint_tol=tol)
    regularizer = NeuronGL1(float(program.alpha))
    metrics = Metrics()

    state["start"] = start = time.perf_counter()
    set_device("cpu", "float64", 778)
    (X_train, y_train), test, _ = process_data(features, program.targets[:, k], None, None,
                                               unitize_data=False, bias=False)
    internal = build_internal_model(model, regularizer, X_train)
    procedure = build_optimizer(solver, regularizer, metrics)
    exit_status, internal, _ = procedure(logger, internal, lambda m: m, (X_train, y_train),
                                         test, build_metrics_tuple(metrics))
    elapsed = time.perf_counter() - start

    # pyscnn sorts (np.unique) and filters its patterns: map them back to ours
    patterns = lab.to_np(internal.D).astype(bool)
    weights = lab.to_np(internal.weights)  # (2, c, p, d + 1): v then w
    index = {column.tobytes(): i for i, column in enumerate(program.masks.T)}
    order = np.array([index.get(column.tobytes(), -1) for column in patterns.T])
    if patterns.shape[1] != P or np.any(order < 0) or len(set(order.tolist())) != P:
        raise AssertionError("pyscnn's activation patterns differ from the program's")
    positive, negative = np.zeros((P, d + 1)), np.zeros((P, d + 1))
    positive[order], negative[order] = weights[0, 0], weights[1, 0]
    positive[:, d] *= bias_scale
    negative[:, d] *= bias_scale
    violation = program.cone_violation(positive, negative)
    absolute = max(float(np.max(np.maximum(-program.signs * (program.features @ u.T), 0.0)))
                   for u in (positive, negative))
    return {
        "time": elapsed,
        "objective": float(program.objective_value(k, positive, negative)),
        "cone_violation": float(violation),
        "absolute_violation": absolute,
        "n_iter": int(exit_status.get("total_inner_iterations", -1)),
        "capped": bool(state["timeout"]),
        "success": bool(exit_status.get("success", False)) and not state["timeout"],
    }


# --------------------------------------------------------------------------
# Adam on the non-convex network of the same width
# --------------------------------------------------------------------------


def adam_objective_terms(program, k):
    """Tensors and the loss closure of output ``k``'s non-convex problem.

    The network is ``s(z) = sum_j relu(w_j . z + b_j) a_j (+ V . z + c)`` with
    ``m = 2 P`` hidden units (math notes section 1, one output). Its objective
    is the convex program's: SM ``(1/n) sum_i [1/2 s(z_i)^2 + d s / d z_k (z_i)]``,
    DSM ``1/(2n) ||s - Y_k||^2``, plus ``(alpha/2) sum_j (||w_j||^2 + a_j^2)``
    (biases and the skip connection are not penalised). The ReLU derivative
    is ``1[w . z + b > 0]``, so the Jacobian term is exact and needs no
    double back-propagation.
    """
    import torch

    Z = torch.as_tensor(program.Z, dtype=torch.float64)
    y = None if program.objective == "sm" else torch.as_tensor(program.targets[:, k],
                                                               dtype=torch.float64)
    alpha = float(program.alpha)

    def loss(params):
        W, b, a = params["W"], params["b"], params["a"]
        pre = Z @ W.T + b
        s = torch.relu(pre) @ a
        if "V" in params:
            s = s + Z @ params["V"] + params["c"]
        penalty = 0.5 * alpha * (W.pow(2).sum() + a.pow(2).sum())
        if y is not None:
            return 0.5 * (s - y).pow(2).mean() + penalty
        trace = (pre > 0).to(Z.dtype) @ (a * W[:, k])
        if "V" in params:
            trace = trace + params["V"][k]
        return (0.5 * s.pow(2) + trace).mean() + penalty

    return loss


def task_adam(program, k=0, max_seconds=120.0, max_iter=20000, lr=1e-2, seed=0):
    """Full-batch Adam (float64, CPU) on the non-convex network of width ``2 P``.

    The learning rate follows a cosine schedule from ``lr`` to ``lr / 100``
    over the budget, whichever of ``max_iter`` and ``max_seconds`` runs out
    first sets the progress. Returns the objective trajectory (time, value)
    so that the time to reach the convex optimum can be computed afterwards.
    """
    import torch

    torch.manual_seed(seed)
    d, P = program.d, program.n_patterns
    m = 2 * P
    params = {
        "W": ((torch.rand(m, d, dtype=torch.float64) * 2 - 1) / math.sqrt(d)),
        "b": ((torch.rand(m, dtype=torch.float64) * 2 - 1) / math.sqrt(d)),
        "a": ((torch.rand(m, dtype=torch.float64) * 2 - 1) / math.sqrt(m)),
    }
    if program.skip_connection:
        params["V"] = torch.zeros(d, dtype=torch.float64)
        params["c"] = torch.zeros((), dtype=torch.float64)
    for tensor in params.values():
        tensor.requires_grad_(True)
    loss_fn = adam_objective_terms(program, k)
    optimizer = torch.optim.Adam(params.values(), lr=lr)
    times, values = [], []
    start = time.perf_counter()
    n_iter = 0
    while True:
        elapsed = time.perf_counter() - start
        progress = max(n_iter / max_iter, elapsed / max_seconds)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(params)
        times.append(elapsed)
        values.append(float(loss.detach()))
        if progress >= 1.0 or not math.isfinite(values[-1]):
            break
        loss.backward()
        for group in optimizer.param_groups:
            group["lr"] = lr * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress)))
        optimizer.step()
        n_iter += 1
    return {
        "time": time.perf_counter() - start,
        "objective": values[-1],
        "n_iter": n_iter,
        "times": np.asarray(times),
        "values": np.asarray(values),
    }


def time_to_reach(times, values, target, rtol):
    """First time at which ``values <= target + rtol |target|``; None if never."""
    hit = np.nonzero(np.asarray(values) <= target + rtol * abs(target))[0]
    return None if hit.size == 0 else float(np.asarray(times)[hit[0]])


TASKS = {
    "first_order": task_first_order,
    "cvxpy": task_cvxpy,
    "pyscnn": task_pyscnn,
    "adam": task_adam,
}
