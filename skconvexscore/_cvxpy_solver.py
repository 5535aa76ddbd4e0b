"""Reference solver: the programs written in CVXPY and solved by Clarabel.

Interior point, accurate to about 1e-8, and slow for large problems: it is the
yardstick the structured solvers are tested against. The formulations are
vectorised (one matrix variable for all patterns, no Python loop building
expressions). cvxpy is imported lazily to keep ``import skconvexscore`` light.

In 1-D an answer is returned only after it has been checked
(:func:`solve_univariate_cvxpy`): near the well-posedness bound the optimal
coefficients reach ~1e8 (~1e12 on near-duplicate points), and there Clarabel
reported "optimal" for points from 1e-6 to 70 % above the optimum.
"""

import numpy as np

from ._programs import SolverError, UnboundedProgramError, affine_residual
from ._solution import OutputSolution, UnivariateSolution

__all__ = ["solve_arrangement_output_cvxpy", "solve_univariate_cvxpy"]

_UNBOUNDED = ("unbounded", "unbounded_inaccurate")

# An interior point leaves residue of about 1e-9 relative to the solution's
# size on coefficients that are zero at the optimum; clear it so that units
# are counted and recovered only where the optimum has them.
_RESIDUE_RTOL = 1e-7
_RESIDUE_ATOL = 1e-10

# A 1-D answer is rejected when a point better by more than this, relative to
# ``value_unit + |value|``, is found: Clarabel's right answers were within a
# few 1e-8 of the optimum, its wrong ones from 1e-6 to 70 % above it.
_VERIFY_RTOL = 1e-7
# Clarabel runs (variable units tried) per 1-D program before giving up.
_MAX_RUNS = 4
# Line-search directions whose estimated decrease is re-evaluated exactly.
_N_CHECKED_DIRECTIONS = 5
# An SM answer this many value units below zero is checked for a direction of
# unbounded descent before it is returned (Clarabel reported "optimal" at
# -3e10 on a program below its bound).
_SUSPECT_VALUE = 1e4


def _clear_residue(magnitudes, skip=0.0):
    """Mask of entries that are interior-point residue rather than solution.

    Relative to the largest entry or the skip connection's size (``skip``),
    whichever is larger: in the Gaussian regime every unit is residue and the
    skip connection is the whole solution.
    """
    magnitudes = np.abs(magnitudes)
    size = max(magnitudes.max(initial=0.0), abs(float(skip)))
    return magnitudes <= max(_RESIDUE_ATOL, _RESIDUE_RTOL * size)


def _run(problem, solver_options, verbose):
    """Solve with Clarabel (or the backend in ``solver_options``).

    Returns ``(status, n_iter, error)``; a failure inside the backend is the
    status ``"solver_error"`` with its exception, for the caller to judge.
    """
    import cvxpy as cp

    options = {"solver": cp.CLARABEL}
    options.update(solver_options or {})
    try:
        problem.solve(verbose=verbose, **options)
    except cp.error.SolverError as exc:
        return "solver_error", 0, exc
    stats = problem.solver_stats
    n_iter = int(stats.num_iters) if stats is not None and stats.num_iters is not None else 0
    return problem.status, n_iter, None


def _solve(problem, solver_options, verbose):
    status, n_iter, error = _run(problem, solver_options, verbose)
    if error is not None:
        raise SolverError(
            f"cvxpy failed to solve the program: {error} For score matching near its "
            f"well-posedness bound this can mean the program is unbounded below; "
            f"solver='first_order' detects that."
        ) from error
    if status in _UNBOUNDED:
        raise UnboundedProgramError("the program is unbounded below (solver status %r)" % status)
    if status != "optimal":
        raise SolverError(
            f"cvxpy returned status {status!r}: the solution is not certified optimal. "
            "Try a larger alpha, fewer patterns, or solver_options for the backend."
        )
    return status, n_iter


# --------------------------------------------------------------------------
# Univariate programs
# --------------------------------------------------------------------------


def _univariate_problem(program, A, scale):
    """The 1-D program in CVXPY, its atoms and line ``scale`` times the variables.

    Clarabel's stopping tolerances are partly absolute and its iterates carry
    the coefficients themselves: with optimal coefficients ~1e8 in units of
    one (outliers, abs without skip connection) it reported "optimal" 37 %
    above the optimum, and solved the same program to 1e-10 in units of 1e4.
    """
    import cvxpy as cp

    n = program.n
    atoms = cp.Variable(program.n_atoms)
    f = scale * (A @ atoms)
    slope = cp.Variable() if program.skip_connection else None
    intercept = cp.Variable() if program.skip_connection else None
    if slope is not None:
        f = f + scale * (slope * program.x + intercept)
    penalty = scale * (program.penalty_weights() @ cp.abs(atoms))
    if program.objective == "dsm":
        objective = 0.5 * cp.sum_squares(f - program.targets) / n + penalty
    else:
        trace = program.linear_term() @ atoms + (n * slope if slope is not None else 0.0)
        objective = (0.5 * cp.sum_squares(f) + scale * trace) / n + penalty
    # Clarabel's gap tolerances are partly absolute: state the program in its value unit
    problem = cp.Problem(cp.Minimize(objective / program.value_unit()))
    return problem, atoms, slope, intercept


def _read_point(program, scale, atoms, slope, intercept):
    """The run's point in the program's units, interior-point residue cleared if harmless.

    The residue is cleared relative to the largest coefficient, and near the
    bound (``max |u| ~ 1e8``) genuine kinks of size ~1 fall under that: the
    cleared point is kept only if it costs less than a tenth of what the
    check tolerates. Returns ``coef, slope, intercept, objective``.
    """
    coef = scale * np.asarray(atoms.value, dtype=np.float64)
    v = scale * float(slope.value) if slope is not None else 0.0
    c = scale * float(intercept.value) if intercept is not None else 0.0
    value = program.objective_value(coef, v, c)
    cleared = coef.copy()
    cleared[_clear_residue(cleared, v)] = 0.0
    cleared_value = program.objective_value(cleared, v, c)
    if cleared_value <= value + 0.1 * _VERIFY_RTOL * (program.value_unit() + abs(value)):
        return cleared, v, c, cleared_value
    return coef, v, c, value


def _piecewise_minimum(a, b, lam, u, d):
    r"""Minimum over ``t`` of ``a t^2 / 2 + b t + sum_k lam_k (|u_k + t d_k| - |u_k|)``.

    One row per direction, ``k`` over the columns of ``lam, u, d`` (the one
    or two atoms a direction moves). The function is convex and quadratic
    between its breakpoints ``-u_k / d_k``: its minimum is at a breakpoint or
    at the stationary point of one sign pattern, and all are evaluated.
    Returns the minima (at most 0) and the steps ``t`` reaching them.
    """
    m = u.shape[1]
    patterns = np.array(np.meshgrid(*([[-1.0, 1.0]] * m))).reshape(m, -1).T
    steps = [-u / d] + [(-(b + (lam * signs * d).sum(axis=1)) / a)[:, None] for signs in patterns]
    t = np.hstack(steps)
    moved = np.abs(u[:, None, :] + t[:, :, None] * d[:, None, :]) - np.abs(u)[:, None, :]
    phi = 0.5 * a[:, None] * t * t + b[:, None] * t + (lam[:, None, :] * moved).sum(axis=2)
    best = np.argmin(phi, axis=1)
    rows = np.arange(t.shape[0])
    return phi[rows, best], t[rows, best]


def _line_search_decrease(program, A, coef, value):
    """A decrease of the objective proven available from ``coef``, by exact line searches.

    Along every atom and every pair of neighbouring atoms of one orientation
    (``e_j +- e_{j+1}``; a pair of large opposite kinks on close points is
    what Clarabel left unfinished near the bound), with the skip connection
    refitted, the objective is convex and piecewise quadratic in the step, and
    its minimum is found in closed form for every direction at once. The
    closed form can lose digits (columns of ``A`` nearly parallel), so only
    the best few directions are taken, each evaluated with the program's own
    objective: what is returned is a decrease shown by an evaluated point, a
    proof that ``coef`` is not optimal, never an estimate.
    """
    from ._univariate_solver import _best_line

    n = program.n
    if program.skip_connection:
        v, c = _best_line(program, coef)
        # each direction comes with the line's optimal change: project the line off
        basis, _ = np.linalg.qr(np.column_stack([program.x, np.ones(n)]))
        columns = A - basis @ (basis.T @ A)
    else:
        v, c = 0.0, 0.0
        columns = A
    residual = program.evaluate(coef, v, c)
    if program.objective == "dsm":
        residual = residual - program.targets
    gradient = (A.T @ residual + program.linear_term()) / n
    lam = program.penalty_weights()
    norms = np.einsum("ij,ij->j", columns, columns) / n
    blocks = [np.arange(n), n + np.arange(n)] if program.reversed_atoms else [np.arange(n)]
    first = np.concatenate([block[:-1] for block in blocks])
    second = first + 1
    cross = np.einsum("ij,ij->j", columns[:, first], columns[:, second]) / n
    pairs = np.column_stack([first, second])
    ones = np.ones((first.size, 1))
    families = [(np.arange(program.n_atoms)[:, None], np.ones((program.n_atoms, 1)), norms,
                 gradient)]
    for sign in (1.0, -1.0):
        families.append((pairs, np.hstack([ones, sign * ones]),
                         norms[first] + norms[second] + 2.0 * sign * cross,
                         gradient[first] + sign * gradient[second]))
    candidates = []
    for idx, d, a, b in families:
        usable = a > 0
        drop, step = _piecewise_minimum(a[usable], b[usable], lam[idx[usable]],
                                        coef[idx[usable]], d[usable])
        candidates += [(drop[k], idx[usable][k], d[usable][k], step[k])
                       for k in np.flatnonzero(drop < 0)]
    candidates.sort(key=lambda item: item[0])
    decrease = value - program.objective_value(coef, v, c)
    for _, idx, d, t in candidates[:_N_CHECKED_DIRECTIONS]:
        moved = coef.copy()
        moved[idx] += t * d
        line = _best_line(program, moved) if program.skip_connection else (0.0, 0.0)
        decrease = max(decrease, value - program.objective_value(moved, *line))
    return max(decrease, 0.0)


def _structured_value(program):
    """The objective at the exact structured solver's point, or None if that solver fails.

    Every point bounds the optimum from above (the program is unconstrained),
    so a value below the reference's proves the reference suboptimal whatever
    the structured solver's own certificate is worth; its point is never
    returned.
    """
    from ._univariate_solver import solve_univariate_exact

    try:
        sol = solve_univariate_exact(program)
    except (ValueError, np.linalg.LinAlgError):  # SolverError, UnboundedProgramError included
        return None
    return program.objective_value(sol.coef, sol.slope, sol.intercept)


def _excess(program, A, coef, value, witness):
    """The largest decrease from ``coef`` the checks find, relative to ``value_unit + |value|``.

    The structured solver runs once per program (its value is kept in
    ``witness``), and only for answers the line searches do not reject.
    """
    scale = program.value_unit() + abs(value)
    decrease = _line_search_decrease(program, A, coef, value)
    if decrease <= _VERIFY_RTOL * scale:
        if "value" not in witness:
            witness["value"] = _structured_value(program)
        if witness["value"] is not None:
            decrease = max(decrease, value - witness["value"])
    return decrease / scale


def _next_units(program, coef, v, c, base):
    """Variable units to try after a rejected run with coefficients ``coef``.

    On 280 programs with optimal coefficients from 10 to 1e12, Clarabel was
    accurate in most units from about ``max |u| / max |s(x_i)|`` (variables of
    the order of the fitted values, the other variables of its quadratic) to
    ``max |u|``, with isolated failures at either end: ``10 max |u| / max
    |s(x_i)|`` and ``max |u|`` are proposed, then ``100 / var(x)`` in case the
    run said little. A rejected run's coefficients are of the right order
    (``1.2e8`` where the optimum has ``2.5e8``).
    """
    size = float(np.max(np.abs(coef), initial=0.0))
    values = float(np.max(np.abs(program.evaluate(coef, v, c)), initial=0.0))
    return [max(base, 10.0 * size / max(1.0, values)), max(base, size), 100.0 * base]


def _describe(unit, status, excess):
    found = f", {excess:.2g} above a better point" if np.isfinite(excess) else ""
    return f"unit {unit:.3g}: {status}{found}"


def solve_univariate_cvxpy(program, solver_options=None, verbose=False):
    """Solve a 1-D program with the dense atom matrix, and check the answer.

    The atoms and the skip connection are variables in a unit, first
    ``1/var(x)`` (the slopes' natural unit). A run's answer is returned only if
    Clarabel calls it optimal and no point better by more than ``1e-7
    (value_unit + |value|)`` is found:

    * by exact line searches along every atom and every pair of neighbouring
      atoms, skip connection refitted (:func:`_line_search_decrease`);
    * at the point of the exact structured solver
      (:func:`~skconvexscore._univariate_solver.solve_univariate_exact`), a
      witness only: its value bounds the optimum from above, its point is
      never returned, and if it fails the line searches check alone.

    Otherwise Clarabel runs again with the coefficients in units read off the
    rejected answer (:func:`_next_units`), four runs at most. The checks can
    only prove an answer wrong: one that passes them is Clarabel's (residue
    cleared), not a certified optimum.

    Parameters
    ----------
    program : UnivariateProgram
    solver_options : dict or None
        Passed to :meth:`cvxpy.Problem.solve` (default solver Clarabel) on every run.
    verbose : bool

    Returns
    -------
    UnivariateSolution
        ``info["variable_unit"]`` is the unit of the accepted run and
        ``info["runs"]`` lists ``(unit, status, excess)`` for every run,
        ``excess`` being the largest decrease found relative to ``value_unit +
        |value|`` (nan where the run was not checked).

    Raises
    ------
    UnboundedProgramError
        If Clarabel reports the program unbounded below and ``alpha`` is under
        the well-posedness bound (above it, such a report is a numerical failure).
    SolverError
        If no run gives an answer that passes the checks.
    """
    exact = program.affine_solution()
    if exact is not None:
        return exact
    A = program.design_matrix()
    var = float(np.var(program.x))
    base = 1.0 / var if var > 0 and np.isfinite(var) else 1.0
    bound = program.well_posedness_bound()
    units = [base]
    runs = []
    n_iter = 0
    witness = {}
    while units and len(runs) < _MAX_RUNS:
        unit = units.pop(0)
        problem, atoms, slope, intercept = _univariate_problem(program, A, unit)
        status, iters, error = _run(problem, solver_options, verbose)
        n_iter += iters
        if status in _UNBOUNDED and not program.alpha >= bound:
            raise UnboundedProgramError("the program is unbounded below (solver status %r)" % status)
        if atoms.value is None:
            runs.append((unit, status + (f" ({error})" if error is not None else ""), np.nan))
            proposals = [100.0 * base]
        else:
            coef, v, c, value = _read_point(program, unit, atoms, slope, intercept)
            excess = _excess(program, A, coef, value, witness) if status == "optimal" else np.nan
            runs.append((unit, status, excess))
            if excess <= _VERIFY_RTOL:
                return UnivariateSolution(
                    coef=coef, slope=v, intercept=c, objective=value, status=status,
                    n_iter=n_iter, info={"variable_unit": unit, "runs": runs},
                )
            proposals = _next_units(program, coef, v, c, base)
        if verbose:
            print(f"cvxpy run rejected: {_describe(*runs[-1])}")
        tried = [u for u, _, _ in runs] + units
        for proposal in proposals:
            if all(not (u / 3.0 < proposal < 3.0 * u) for u in tried):
                units.append(proposal)
                tried.append(proposal)
    report = "; ".join(_describe(*run) for run in runs)
    loosened = " or with the tolerances in solver_options" if solver_options else ""
    raise SolverError(
        f"cvxpy/Clarabel did not solve this 1-D program to a relative {_VERIFY_RTOL:g} in "
        f"{len(runs)} runs ({report}). Clarabel stops early where the optimal coefficients are "
        f"huge (near the well-posedness bound, on near-duplicate points){loosened}; use "
        f"solver='univariate' (or 'auto'), the exact structured solver, which certifies its "
        f"optimum."
    )


def _blocks_in_cones(program):
    """Output blocks ``v_i, w_i`` as cvxpy variables, their cone constraints and group penalty.

    Returns ``(positive, negative, constraints, norm_sum)``: the blocks are
    ``(P, d + 1)`` (bias last), the cones ``(2 D_i - I) X~ v_i >= 0`` (math
    notes 4.1) and ``norm_sum`` the sum of the blocks' input-weight norms.
    """
    import cvxpy as cp

    d, P = program.d, program.n_patterns
    positive = cp.Variable((P, d + 1))
    negative = cp.Variable((P, d + 1))
    constraints = [cp.multiply(program.signs, program.features @ positive.T) >= 0,
                   cp.multiply(program.signs, program.features @ negative.T) >= 0]
    norm_sum = (cp.sum(cp.norm(positive[:, :d], 2, axis=1))
                + cp.sum(cp.norm(negative[:, :d], 2, axis=1)))
    return positive, negative, constraints, norm_sum


def _recession_cost(program, k, solver_options=None):
    r"""Least slope of output ``k``'s SM objective along a direction that keeps the fit.

    Along blocks in their cones whose fit on the data is zero (skip part
    included) the objective changes linearly, by ``trace / n + alpha pen``
    per unit of the direction: the program is unbounded below iff that slope
    is negative for some direction. With ``pen <= 1`` this is a bounded
    program (value 0 when the program is bounded). Returns nan when it is not
    solved to "optimal".
    """
    import cvxpy as cp

    n, d = program.n, program.d
    positive, negative, constraints, pen = _blocks_in_cones(program)
    fit = cp.sum(cp.multiply(program.output_masks, program.features @ (positive - negative).T),
                 axis=1)
    trace = program.trace_counts() @ (positive[:, k] - negative[:, k])
    if program.skip_connection:
        row, c = cp.Variable(d), cp.Variable()
        fit = fit + program.Z @ row + c
        trace = trace + n * row[k]
    constraints += [fit == 0, pen <= 1]
    problem = cp.Problem(cp.Minimize(trace / n + program.alpha * pen), constraints)
    status, _, _ = _run(problem, solver_options, False)
    return float(problem.value) if status == "optimal" else float("nan")


def _raise_if_unbounded(program, k, solver_options, failure):
    """Raise UnboundedProgramError if output ``k``'s SM program has a descent ray.

    Run only on an answer that failed or looks wrong (``failure`` says how):
    a well-behaved solve costs nothing extra.
    """
    cost = _recession_cost(program, k, solver_options)
    if cost < -1e-6 * program.alpha:
        raise UnboundedProgramError(
            f"the score-matching program of output {k} is unbounded below: a direction in "
            f"the cones that leaves the fit unchanged lowers the objective by {-cost:.3g} "
            f"per unit of weight norm (cvxpy: {failure})"
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

    exact = program.affine_solution(k)
    if exact is not None:
        return exact
    n, d, P = program.n, program.d, program.n_patterns
    features = program.features
    # column i (d + 1) + j of the design is S_i * features_j: u is pattern-major
    blocks = [(program.output_masks[:, :, None] * features[:, None, :]).reshape(n, P * (d + 1))]
    if program.skip_connection:
        blocks += [program.Z, np.ones((n, 1))]
    design = np.hstack(blocks)

    positive, negative, constraints, norm_sum = _blocks_in_cones(program)
    parts = [cp.reshape(positive - negative, (P * (d + 1),), order="C")]
    skip_row = cp.Variable(d) if program.skip_connection else None
    intercept = cp.Variable(1) if program.skip_connection else None
    if skip_row is not None:
        parts += [skip_row, intercept]
    u = cp.hstack(parts)
    size, affine = 1.0, np.zeros(d + 1)
    if program.objective == "dsm":
        # The fit 1/(2n) ||M u - y||^2 is stated through the thin QR factorisation
        # M = Q R: the part of y outside M's range is a constant and the rest p squares.
        # The Gram form 1/2 u^T G u - (M^T y / n) u + mean(y^2)/2 is the same function,
        # but its terms cancel down to the optimum: with noise far above the data's
        # spread the affine part of the targets carries all but (s / sigma)^2 of
        # mean(y^2), and Clarabel's gap tolerances, on the terms, let it stop up to
        # 20 % above the optimum (above the affine fit itself). For the same reason the
        # skip connection's share of the affine fit is taken out exactly first, and the
        # targets are divided by the size of what is left (the program is homogeneous:
        # targets and alpha divided by t divide the solution by t, the value by t^2).
        y = program.targets[:, k]
        if program.skip_connection:
            affine, y = affine_residual(program.Z, y)
        size = float(np.sqrt(program.value_unit(k)))
        y = y / size
        # a thin SVD truncated at the design's numerical rank, not a QR: the design is
        # rank deficient whenever the patterns outnumber the points or share columns
        # (abs: S_i = 2 D_i - 1), and the QR's R then keeps rows of rounding noise that
        # left Clarabel at "optimal_inaccurate" on a 60-point, 21-pattern program
        left, sing, right = np.linalg.svd(design, full_matrices=False)
        rank = int(np.sum(sing > max(design.shape) * np.finfo(np.float64).eps * sing[0]))
        q, r = left[:, :rank], sing[:rank, None] * right[:rank]
        inside = q.T @ y
        outside = y - q @ inside
        objective = (0.5 * cp.sum_squares(r @ u - inside) / n
                     + 0.5 * float(outside @ outside) / n + (program.alpha / size) * norm_sum)
    else:
        gram = design.T @ design / n
        fit = 0.5 * cp.quad_form(u, cp.psd_wrap(gram))
        trace = program.trace_counts() @ (positive[:, k] - negative[:, k])
        if skip_row is not None:
            trace = trace + n * skip_row[k]
        objective = (fit + trace / n + program.alpha * norm_sum) / program.value_unit(k)
    problem = cp.Problem(cp.Minimize(objective), constraints)
    try:
        status, n_iter = _solve(problem, solver_options, verbose)
    except SolverError:
        if program.objective == "sm":
            _raise_if_unbounded(program, k, solver_options, "the solver failed")
        raise
    except UnboundedProgramError as exc:
        if program.objective == "sm":
            # Clarabel's infeasibility certificate is numerical: on full-rank data 1e6 times
            # wider along one axis it reported alpha = 50 unbounded (first-order: -0.70064)
            _raise_if_unbounded(program, k, solver_options, f"status {exc}")
            raise SolverError(
                f"cvxpy reported the score-matching program of output {k} unbounded ({exc}), "
                "but no direction in the cones that leaves the fit unchanged lowers the "
                "objective: a numerical failure. Try solver='first_order', or rescale features "
                "that differ by orders of magnitude."
            ) from exc
        # least squares is bounded below by zero: the status is a numerical failure
        raise SolverError(
            f"cvxpy reported the denoising program of output {k} unbounded ({exc}), which "
            "it cannot be (a least-squares program is bounded below by zero): a numerical "
            "failure. Try solver='first_order', or a noise_level closer to the data's spread."
        ) from exc
    # residue is cleared in the program's natural units (the scaled variables), before
    # the affine fit taken out is added back: an absolute floor in standardised units
    # cleared genuine blocks of size 1e-11 when the targets are small (noise far above
    # the data's spread) and the affine part left the skip row as the reference
    pos = np.asarray(positive.value, dtype=np.float64)
    neg = np.asarray(negative.value, dtype=np.float64)
    row = np.asarray(skip_row.value, dtype=np.float64) if skip_row is not None else np.zeros(d)
    c = float(intercept.value[0]) if intercept is not None else 0.0
    norms = np.linalg.norm(np.vstack([pos, neg]), axis=1)
    residue = _clear_residue(norms, np.linalg.norm(row))
    pos[residue[:P]] = 0.0
    neg[residue[P:]] = 0.0
    pos, neg = size * pos, size * neg
    if skip_row is not None:
        row, c = size * row + affine[:d], size * c + affine[d]
    value = program.objective_value(k, pos, neg, row, c)
    if program.objective == "sm" and value < -_SUSPECT_VALUE * program.value_unit(k):
        _raise_if_unbounded(program, k, solver_options,
                            f"status {status!r} at the value {value:.3g}")
    if np.any(pos) or np.any(neg):
        # every block may be residue (an optimum without units, the zero network
        # without skip connection): the largest block is then no reference for clearing
        zero = np.zeros_like(pos)
        zero_value = program.objective_value(k, zero, zero, row, c)
        if zero_value <= value + 1e-9 * (program.value_unit(k) + abs(value)):
            pos, neg, value = zero, zero.copy(), zero_value
    return OutputSolution(
        positive=pos,
        negative=neg,
        skip_row=row,
        intercept=c,
        objective=value,
        status=status,
        n_iter=n_iter,
        constraint_violation=program.cone_violation(pos, neg),
    )
