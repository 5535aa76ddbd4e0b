"""Choosing and running a solver for a program.

The estimators call :func:`solve_univariate` and :func:`solve_arrangement`;
these pick a backend and run the independent per-output programs in parallel.
Solvers know nothing of scikit-learn and programs know nothing of solvers.
"""

import numpy as np
from joblib import Parallel, delayed

from ._cvxpy_solver import solve_arrangement_output_cvxpy, solve_univariate_cvxpy
from ._programs import SolverError, UnboundedProgramError

__all__ = ["SOLVERS", "solve_arrangement", "solve_univariate"]

#: Accepted values of the estimators' ``solver`` parameter.
SOLVERS = ("auto", "cvxpy", "univariate", "first_order")

_UNIVARIATE_TOL = 1e-8


def solve_univariate(program, solver="auto", *, tol=1e-8, max_iter=None, solver_options=None,
                     verbose=False):
    """Solve a 1-D program; ``"auto"`` is the exact structured solver.

    Returns
    -------
    solution : UnivariateSolution
    solver : str
        The backend that ran.
    """
    options = dict(solver_options or {})
    if solver == "cvxpy":
        return solve_univariate_cvxpy(program, options, verbose), "cvxpy"
    if solver == "first_order":
        # the wording "n_features = 1" is what sklearn's check_fit2d_1feature accepts
        raise ValueError("solver='first_order' is for d >= 2 (got n_features = 1); use 'auto', "
                         "'univariate' or 'cvxpy' for 1-D data.")
    if options:
        raise ValueError(
            f"solver='univariate' takes no solver_options (got {sorted(options)}); use tol and "
            "max_iter, or solver='cvxpy' with options for CVXPY."
        )
    from ._univariate_solver import solve_univariate_exact

    # The interior point proves a kink inactive (an exact zero) only once its
    # multiplier has separated from the l1 weight; at 1e-6 most have not, and
    # the last digits cost two or three cheap iterations.
    tol = min(tol, _UNIVARIATE_TOL)
    return solve_univariate_exact(program, tol=tol, max_iter=max_iter, verbose=verbose), "univariate"


def solve_arrangement(program, solver="auto", *, tol=1e-6, max_iter=None, solver_options=None,
                      n_jobs=None, verbose=False):
    """Solve every output's arrangement program (they are independent).

    With ``solver="auto"`` and no ``solver_options``, a CVXPY/Clarabel
    failure (numerical, near the well-posedness bound) falls back to the
    first-order solver, which certifies the optimum or detects an unbounded
    program; and a first-order run that does not certify (where "auto" chose
    it by size) falls back to CVXPY up to ``n P = 300,000``.

    Returns
    -------
    solutions : list of OutputSolution, one per output coordinate
    solver : str
        The backend that ran.
    """
    if solver == "univariate":
        raise ValueError("solver='univariate' is for 1-D data; use 'auto', 'cvxpy' or 'first_order' for d >= 2.")
    options = dict(solver_options or {})
    automatic = solver == "auto"
    if automatic:
        solver = _choose_arrangement_solver(program, options)
    fallback = automatic and not options
    if solver == "cvxpy":
        try:
            return _solve_with_cvxpy(program, options, n_jobs, verbose, tol), "cvxpy"
        except UnboundedProgramError:
            raise
        except SolverError:
            # Clarabel can fail numerically near the well-posedness bound; the
            # first-order solver then certifies the optimum or detects unboundedness
            if not fallback:
                raise
        fallback = False
    from ._first_order import solve_arrangement_first_order

    unknown = set(options) - _FIRST_ORDER_ACCEPTS
    if unknown:
        raise ValueError(
            f"solver_options {sorted(unknown)} are not options of the first-order solver, which "
            f"takes {sorted(_FIRST_ORDER_ACCEPTS)}; tol and max_iter are the estimator's own "
            f"parameters."
        )
    try:
        solutions = solve_arrangement_first_order(
            program, tol=tol, max_iter=max_iter, verbose=verbose, n_jobs=n_jobs, **options
        )
    except UnboundedProgramError:
        raise
    except SolverError as exc:
        # chosen by size alone, ADMM may not certify within max_iter (2-D bimodal SM at
        # n = 1000-3000, 100 patterns; abs DSM without skip on a ring) where Clarabel
        # certifies in 8-30 s: the reference is tried while it is affordable
        if fallback and program.n * program.n_patterns <= _CVXPY_FALLBACK_MAX_SIZE:
            try:
                return _solve_with_cvxpy(program, options, n_jobs, verbose, tol), "cvxpy"
            except UnboundedProgramError:
                raise
            except SolverError:
                pass
        hint = _anisotropy_hint(program.Z)
        if hint is None:
            raise
        raise SolverError(f"{exc} {hint}") from exc
    _check_not_above_skip_only(program, solutions, "first-order", tol)
    return solutions, "first_order"


def _solve_with_cvxpy(program, options, n_jobs, verbose, tol):
    solutions = Parallel(n_jobs=n_jobs)(
        delayed(solve_arrangement_output_cvxpy)(program, k, options, verbose)
        for k in range(program.d)
    )
    _check_not_above_skip_only(program, solutions, "cvxpy", tol)
    return solutions


def _check_not_above_skip_only(program, solutions, backend, tol):
    """Raise SolverError if an output's value is above that of the skip connection alone.

    That point is feasible for every alpha (:meth:`ArrangementProgram.skip_only_values`),
    so an answer above it, beyond the solvers' accuracy, is not the optimum: on points
    whose spreads differ by 1e8 across directions a Gram-based step lost the thin
    direction and such answers were certified.
    """
    bounds = program.skip_only_values()
    if bounds is None:
        return
    slack = 2.0 * max(tol, 1e-6)
    for k, (solution, bound) in enumerate(zip(solutions, bounds)):
        allowed = slack * (program.value_unit(k) + abs(bound)) + program.value_rounding(k)
        if solution.objective > bound + allowed:
            raise SolverError(
                f"the {backend} solver's answer for output {k} is not the optimum: its value "
                f"{solution.objective:.8g} is above {bound:.8g}, the value of the skip "
                f"connection alone (no hidden unit), which is feasible for every alpha. "
                f"{_anisotropy_hint(program.Z) or ''}".rstrip()
            )


# Ratio of the data's largest to smallest spread (singular values of the
# centred points) beyond which a first-order failure is blamed on it.
_ANISOTROPY_HINT_RATIO = 30.0


def _anisotropy_hint(Z):
    """Why ADMM may have failed on these points, and what to do; None if they are well spread.

    The program is not invariant under per-feature scaling (the weight decay
    acts on the hidden weights in the data's coordinates), so the estimators
    only centre and scale isotropically; features whose spreads differ by
    orders of magnitude leave the program badly conditioned, and ADMM then
    converges too slowly to certify (d = 2, spreads 1 and 1e-2, n = 2000:
    dual residual stuck at 1.3e-3 after 50,000 iterations, where Clarabel
    certifies in 5 s).
    """
    spreads = np.linalg.svd(Z - Z.mean(axis=0), compute_uv=False)
    ratio = float(spreads[0] / max(float(spreads[-1]), 1e-300))
    if ratio < _ANISOTROPY_HINT_RATIO:
        return None
    return (
        f"The data's spreads differ by a factor of {ratio:.3g} across directions, which makes "
        "the program badly conditioned for the first-order solver: try solver='cvxpy', or "
        "standardise the features first (e.g. StandardScaler in a Pipeline; this changes the "
        "model, since the weight decay is not invariant to per-feature scaling)."
    )


# n x P above which "auto" runs the first-order solver on the CPU: from here on
# it is faster than Clarabel at the same certificate (docs/benchmarks.md).
_FIRST_ORDER_MIN_SIZE = 50_000
# n x P up to which "auto" retries with cvxpy when the first-order solver fails to certify
_CVXPY_FALLBACK_MAX_SIZE = 300_000
# options that name the first-order solver under "auto", and all that it takes
_FIRST_ORDER_OPTIONS = {"device", "dtype"}
_FIRST_ORDER_ACCEPTS = _FIRST_ORDER_OPTIONS | {"warm_start"}


def _choose_arrangement_solver(program, options):
    """Interior point for small programs; the first-order solver for large ones.

    Clarabel's cost grows with the ``n P`` cone rows while an ADMM iteration
    does not (it carries a working set of rows), so ``"auto"`` switches at
    ``n P = 50,000``. Options name their backend: ``device`` or ``dtype`` mean
    the first-order solver, anything else is for CVXPY.
    """
    if options:
        first_order = set(options) & _FIRST_ORDER_OPTIONS
        if first_order and not set(options) <= _FIRST_ORDER_ACCEPTS:
            raise ValueError(
                f"solver_options mix the first-order solver's {sorted(first_order)} with "
                f"{sorted(set(options) - _FIRST_ORDER_ACCEPTS)}, which it does not take; "
                f"pass solver='cvxpy' or solver='first_order' with options of that backend."
            )
        return "first_order" if first_order else "cvxpy"
    return "first_order" if program.n * program.n_patterns >= _FIRST_ORDER_MIN_SIZE else "cvxpy"
