"""Reference solver: the programs written in CVXPY and solved by Clarabel.

Interior point, accurate to about 1e-8, and slow for large problems: it is the
yardstick the structured solvers are tested against. The formulations are
vectorised (one matrix variable for all patterns, no Python loop building
expressions). cvxpy is imported lazily to keep ``import skconvexscore`` light.
"""

import numpy as np

from ._programs import SolverError, UnboundedProgramError
from ._solution import OutputSolution, UnivariateSolution

__all__ = ["solve_arrangement_output_cvxpy", "solve_univariate_cvxpy"]

_UNBOUNDED = ("unbounded", "unbounded_inaccurate")

# An interior point leaves residue of about 1e-9 relative to the solution's
# size on coefficients that are zero at the optimum; clear it so that units
# are counted and recovered only where the optimum has them.
_RESIDUE_RTOL = 1e-7
_RESIDUE_ATOL = 1e-10


def _clear_residue(magnitudes, skip=0.0):
    """Mask of entries that are interior-point residue rather than solution.

    Relative to the largest entry or the skip connection's size (``skip``),
    whichever is larger: in the Gaussian regime every unit is residue and the
    skip connection is the whole solution.
    """
    magnitudes = np.abs(magnitudes)
    size = max(magnitudes.max(initial=0.0), abs(float(skip)))
    return magnitudes <= max(_RESIDUE_ATOL, _RESIDUE_RTOL * size)


def _solve(problem, solver_options, verbose):
    import cvxpy as cp

    options = {"solver": cp.CLARABEL}
    options.update(solver_options or {})
    try:
        problem.solve(verbose=verbose, **options)
    except cp.error.SolverError as exc:
        raise SolverError(
            f"cvxpy failed to solve the program: {exc} For score matching near its "
            f"well-posedness bound this can mean the program is unbounded below; "
            f"solver='first_order' detects that."
        ) from exc
    status = problem.status
    if status in _UNBOUNDED:
        raise UnboundedProgramError("the program is unbounded below (solver status %r)" % status)
    if status != "optimal":
        raise SolverError(
            f"cvxpy returned status {status!r}: the solution is not certified optimal. "
            "Try a larger alpha, fewer patterns, or solver_options for the backend."
        )
    stats = problem.solver_stats
    n_iter = int(stats.num_iters) if stats is not None and stats.num_iters is not None else 0
    return status, n_iter


def solve_univariate_cvxpy(program, solver_options=None, verbose=False):
    """Solve a 1-D program with the dense atom matrix.

    Parameters
    ----------
    program : UnivariateProgram
    solver_options : dict or None
        Passed to :meth:`cvxpy.Problem.solve` (default solver Clarabel).
    verbose : bool

    Returns
    -------
    UnivariateSolution
    """
    import cvxpy as cp

    n = program.n
    A = program.design_matrix()
    u = cp.Variable(program.n_atoms)
    f = A @ u
    slope = cp.Variable() if program.skip_connection else None
    intercept = cp.Variable() if program.skip_connection else None
    if slope is not None:
        f = f + slope * program.x + intercept
    penalty = program.penalty_weights() @ cp.abs(u)
    if program.objective == "dsm":
        objective = 0.5 * cp.sum_squares(f - program.targets) / n + penalty
    else:
        trace = program.linear_term() @ u + (n * slope if slope is not None else 0.0)
        objective = (0.5 * cp.sum_squares(f) + trace) / n + penalty
    # Clarabel's gap tolerances are partly absolute: state the program in its value unit
    problem = cp.Problem(cp.Minimize(objective / program.value_unit()))
    status, n_iter = _solve(problem, solver_options, verbose)
    coef = np.asarray(u.value, dtype=np.float64)
    v = float(slope.value) if slope is not None else 0.0
    coef[_clear_residue(coef, v)] = 0.0
    c = float(intercept.value) if intercept is not None else 0.0
    return UnivariateSolution(
        coef=coef,
        slope=v,
        intercept=c,
        objective=program.objective_value(coef, v, c),
        status=status,
        n_iter=n_iter,
    )


def solve_arrangement_output_cvxpy(program, k, solver_options=None, verbose=False):
    """Solve output ``k``'s cone-constrained program (math notes 4.1 / 4.2).

    The fit enters through its Gram matrix: with ``u`` the stacked
    ``v_i - w_i`` (and the skip row and intercept) and ``M`` the matching
    design, ``1/(2n) ||M u - y||^2 = 1/2 u^T (M^T M / n) u - (M^T y / n) u +
    const``. Clarabel takes the quadratic directly, so the KKT system grows with
    the number of variables instead of carrying ``n`` dense fit rows (about 10x
    faster at n = 1000 in 2-D). The cone constraints keep their ``n P`` sparse rows.

    Parameters
    ----------
    program : ArrangementProgram
    k : int
        Output coordinate.
    solver_options : dict or None
    verbose : bool

    Returns
    -------
    OutputSolution
    """
    import cvxpy as cp

    n, d, P = program.n, program.d, program.n_patterns
    features = program.features
    # column i (d + 1) + j of the design is S_i * features_j: u is pattern-major
    blocks = [(program.output_masks[:, :, None] * features[:, None, :]).reshape(n, P * (d + 1))]
    if program.skip_connection:
        blocks += [program.Z, np.ones((n, 1))]
    design = np.hstack(blocks)
    gram = design.T @ design / n

    positive = cp.Variable((P, d + 1))
    negative = cp.Variable((P, d + 1))
    parts = [cp.reshape(positive - negative, (P * (d + 1),), order="C")]
    skip_row = cp.Variable(d) if program.skip_connection else None
    intercept = cp.Variable(1) if program.skip_connection else None
    if skip_row is not None:
        parts += [skip_row, intercept]
    u = cp.hstack(parts)
    signs = program.signs
    constraints = [cp.multiply(signs, features @ positive.T) >= 0,
                   cp.multiply(signs, features @ negative.T) >= 0]
    penalty = program.alpha * (
        cp.sum(cp.norm(positive[:, :d], 2, axis=1)) + cp.sum(cp.norm(negative[:, :d], 2, axis=1))
    )
    fit = 0.5 * cp.quad_form(u, cp.psd_wrap(gram))
    if program.objective == "dsm":
        y = program.targets[:, k]
        objective = fit - (design.T @ y / n) @ u + 0.5 * float(np.mean(y**2)) + penalty
    else:
        trace = program.trace_counts() @ (positive[:, k] - negative[:, k])
        if skip_row is not None:
            trace = trace + n * skip_row[k]
        objective = fit + trace / n + penalty
    problem = cp.Problem(cp.Minimize(objective / program.value_unit(k)), constraints)
    status, n_iter = _solve(problem, solver_options, verbose)
    pos = np.asarray(positive.value, dtype=np.float64)
    neg = np.asarray(negative.value, dtype=np.float64)
    row = np.asarray(skip_row.value, dtype=np.float64) if skip_row is not None else np.zeros(d)
    c = float(intercept.value[0]) if intercept is not None else 0.0
    norms = np.linalg.norm(np.vstack([pos, neg]), axis=1)
    residue = _clear_residue(norms, np.linalg.norm(row))
    pos[residue[:P]] = 0.0
    neg[residue[P:]] = 0.0
    return OutputSolution(
        positive=pos,
        negative=neg,
        skip_row=row,
        intercept=c,
        objective=program.objective_value(k, pos, neg, row, c),
        status=status,
        n_iter=n_iter,
        constraint_violation=program.cone_violation(pos, neg),
    )
