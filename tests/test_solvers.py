"""Choosing and running a backend: the checks every answer passes before it is returned."""

import numpy as np
import pytest

import skconvexscore._solvers as solvers
from skconvexscore._cvxpy_solver import solve_arrangement_output_cvxpy
from skconvexscore._first_order import solve_arrangement_first_order
from skconvexscore._programs import (
    ArrangementProgram,
    SolverError,
    UnboundedProgramError,
    sample_patterns,
    standardize,
)
from skconvexscore._solution import OutputSolution


def _program(objective, alpha, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(40, 2))
    targets = None
    if objective == "dsm":
        eps = rng.normal(size=X.shape)
        Z, st = standardize(X + 0.3 * eps)
        targets = -eps / 0.3 * st.scale
    else:
        Z, _ = standardize(X)
    masks, gates = sample_patterns(Z, 10, "relu", np.random.RandomState(seed))
    return ArrangementProgram(objective, Z, masks, gates, alpha, "relu", True, targets)


@pytest.mark.parametrize("objective, alpha", [("sm", 0.05), ("dsm", 0.02)])
def test_an_answer_above_the_skip_connection_alone_is_refused(objective, alpha, monkeypatch):
    """The skip connection alone is feasible for every alpha, so a value above its value is
    not an optimum, whatever the backend certified (on points with spreads 1e4 and 1e-4 both
    backends returned such answers). Explicit cvxpy raises; auto falls back to the
    first-order solver, which finds the optimum."""
    program = _program(objective, alpha)
    reference = [solve_arrangement_output_cvxpy(program, k) for k in range(2)]
    for k, solution in enumerate(reference):
        assert solution.objective < program.skip_only_values()[k]  # units pay off here

    def no_units(program, k, options, verbose):
        none = np.zeros((program.n_patterns, 3))
        return OutputSolution(none, none.copy(), np.zeros(2), 0.0,
                              program.objective_value(k, none, none, np.zeros(2), 0.0))

    monkeypatch.setattr(solvers, "solve_arrangement_output_cvxpy", no_units)
    with pytest.raises(SolverError, match="skip connection alone"):
        solvers.solve_arrangement(program, "cvxpy")
    solutions, backend = solvers.solve_arrangement(program, "auto")
    assert backend == "first_order"
    for solution, expected in zip(solutions, reference):
        assert solution.objective == pytest.approx(expected.objective, rel=1e-4)


def test_auto_falls_back_to_cvxpy_when_the_first_order_solver_does_not_certify(monkeypatch):
    """"auto" picks the first-order solver by size; where ADMM did not certify within max_iter
    (2-D bimodal SM at n = 1000 and 3000, 100 patterns: relative gap ~2e-4 after 50,000
    iterations) fit raised, though Clarabel certifies those programs in 8-30 s."""
    import skconvexscore._first_order as first_order

    program = _program("sm", 0.05)
    reference = [solve_arrangement_output_cvxpy(program, k) for k in range(2)]

    def uncertified(*args, **kwargs):
        raise SolverError("the first-order solver did not reach tol")

    monkeypatch.setattr(first_order, "solve_arrangement_first_order", uncertified)
    monkeypatch.setattr(solvers, "_FIRST_ORDER_MIN_SIZE", program.n * program.n_patterns)
    solutions, backend = solvers.solve_arrangement(program, "auto")
    assert backend == "cvxpy"
    assert [s.objective for s in solutions] == [r.objective for r in reference]
    with pytest.raises(SolverError, match="did not reach tol"):
        solvers.solve_arrangement(program, "first_order")
    monkeypatch.setattr(solvers, "_CVXPY_FALLBACK_MAX_SIZE", program.n * program.n_patterns - 1)
    with pytest.raises(SolverError, match="did not reach tol"):
        solvers.solve_arrangement(program, "auto")


def test_rounding_alone_does_not_fail_the_skip_only_check():
    """With a constant feature that output's optimum is the skip row, value 0 up to rounding
    (about 1e-29 here). Computed by two formulas, the value and the check's bound differed by
    4 % of that on one machine (numpy 2.5), and both backends' answers were refused."""
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=40), np.full(40, 5.0)])
    eps = rng.normal(size=X.shape)
    Z, st = standardize(X + 0.1 * eps)
    program = ArrangementProgram("dsm", Z, *sample_patterns(Z, 10, "relu", np.random.RandomState(0)),
                                 0.02, "relu", True, -eps / 0.1 * st.scale)
    bounds = program.skip_only_values()
    exact = program.affine_solution(1)
    assert exact is not None and 0 <= bounds[1] < 1e-25
    reference = solve_arrangement_output_cvxpy(program, 0)
    rounded = OutputSolution(exact.positive, exact.negative, exact.skip_row, exact.intercept,
                             1.04 * bounds[1] + 1e-30)
    solvers._check_not_above_skip_only(program, [reference, rounded], "cvxpy", 1e-6)
    above = OutputSolution(exact.positive, exact.negative, exact.skip_row, exact.intercept,
                           bounds[1] + 10 * program.value_rounding(1))
    with pytest.raises(SolverError, match="output 1 is not the optimum"):
        solvers._check_not_above_skip_only(program, [reference, above], "cvxpy", 1e-6)


def test_the_dsm_reference_solves_a_rank_deficient_design():
    """60 noisy points, abs with skip: the 60 x 66 design has rank 49. Its QR kept rows of
    rounding noise and Clarabel stopped at 'optimal_inaccurate' (SolverError); the program
    written out directly is solved, and so is the reference on the design's numerical range."""
    import cvxpy as cp

    rng = np.random.default_rng(5)
    X = 2 * np.vstack([rng.normal([-2, 0], 0.6, (15, 2)), rng.normal([2, 0.5], 0.6, (15, 2))]) + 3
    noise = np.random.RandomState(3)
    seed, eps = noise.randint(np.iinfo(np.int32).max), noise.standard_normal((2, 30, 2))
    Z, st = standardize(X)
    noisy = (Z[None] + 0.8 / st.scale * eps).reshape(-1, 2)
    targets = (-eps * st.scale / 0.8).reshape(-1, 2)
    masks, gates = sample_patterns(noisy, 30, "abs", np.random.RandomState(seed))
    program = ArrangementProgram("dsm", noisy, masks, gates, 0.002, "abs", True, targets)
    n, P = program.n, program.n_patterns
    features, sign = np.column_stack([noisy, np.ones(n)]), np.where(masks, 1.0, -1.0)
    positive, negative = cp.Variable((P, 3)), cp.Variable((P, 3))
    row, intercept = cp.Variable(2), cp.Variable()
    fit = cp.sum(cp.multiply(sign, features @ (positive - negative).T), axis=1) + noisy @ row + intercept
    penalty = cp.sum(cp.norm(positive[:, :2], 2, axis=1)) + cp.sum(cp.norm(negative[:, :2], 2, axis=1))
    direct = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(fit - targets[:, 0]) / n + 0.002 * penalty),
                        [cp.multiply(sign, features @ positive.T) >= 0,
                         cp.multiply(sign, features @ negative.T) >= 0])
    direct.solve(solver=cp.CLARABEL)
    assert direct.status == "optimal"
    solution = solve_arrangement_output_cvxpy(program, 0)
    assert solution.objective == pytest.approx(direct.value, rel=1e-7)


def test_an_unbounded_program_that_clarabel_calls_optimal_is_refused():
    """12 points in 2-D, ReLU without skip connection, alpha = 0.2: output 0 is unbounded
    below (the first-order solver's iterates run away too), but Clarabel stopped at
    'optimal' with the value -3.2e10 and the reference returned it. At alpha = 0.5 the same
    program is bounded and is solved as before."""
    Z, _ = standardize(np.random.default_rng(2).normal(size=(12, 2)))
    masks, gates = sample_patterns(Z, 60, "relu", np.random.RandomState(0))
    program = ArrangementProgram("sm", Z, masks, gates, 0.2, "relu", False)
    with pytest.raises(UnboundedProgramError, match="output 0 is numerically unbounded below"):
        solve_arrangement_first_order(program)
    with pytest.raises(UnboundedProgramError, match="output 0 is unbounded below: a direction"):
        solve_arrangement_output_cvxpy(program, 0)
    bounded = ArrangementProgram("sm", Z, masks, gates, 0.5, "relu", False)
    solution = solve_arrangement_output_cvxpy(bounded, 0)
    assert solution.objective == pytest.approx(
        solve_arrangement_first_order(bounded)[0].objective, rel=1e-4)


def test_an_unbounded_status_is_confirmed_before_it_is_reported(monkeypatch):
    """On full-rank 2-D data 1e6 times wider along one axis Clarabel reported alpha = 50
    'unbounded' (the first-order solver certifies -0.70064) and the estimator told the user to
    raise alpha. The status is now checked with the exact descent-ray program: a bounded
    program gets a SolverError (which "auto" answers with the first-order solver), an
    unbounded one still the UnboundedProgramError."""
    from skconvexscore import _cvxpy_solver

    def reports_unbounded(problem, solver_options, verbose):
        raise UnboundedProgramError("the program is unbounded below (solver status 'unbounded')")

    Z, _ = standardize(np.random.default_rng(2).normal(size=(12, 2)))
    masks, gates = sample_patterns(Z, 60, "relu", np.random.RandomState(0))
    bounded = ArrangementProgram("sm", Z, masks, gates, 0.5, "relu", False)
    reference = solve_arrangement_output_cvxpy(bounded, 0)
    monkeypatch.setattr(_cvxpy_solver, "_solve", reports_unbounded)
    with pytest.raises(SolverError, match="numerical failure") as caught:
        solve_arrangement_output_cvxpy(bounded, 0)
    assert not isinstance(caught.value, UnboundedProgramError)
    solutions, backend = solvers.solve_arrangement(bounded, "auto")
    assert backend == "first_order"
    assert solutions[0].objective == pytest.approx(reference.objective, rel=1e-4)
    unbounded = ArrangementProgram("sm", Z, masks, gates, 0.2, "relu", False)
    with pytest.raises(UnboundedProgramError, match="output 0 is unbounded below: a direction"):
        solve_arrangement_output_cvxpy(unbounded, 0)


def test_a_clarabel_failure_on_an_unbounded_program_says_unbounded():
    """22 points in 2-D, ReLU with skip connection, alpha = 0.0845 (below the bound): Clarabel
    fails outright, and the estimator said only that the program *may* be unbounded. The
    recession check run on the failure proves it, as the first-order solver does."""
    from skconvexscore import ConvexScoreMatcher

    rng = np.random.default_rng(0)
    X = rng.normal(size=(int(rng.integers(8, 25)), 2))
    for solver in ("cvxpy", "first_order"):
        model = ConvexScoreMatcher(alpha=0.08452, solver=solver, n_patterns=60, random_state=0)
        with pytest.raises(ValueError, match="is unbounded below on these data") as caught:
            model.fit(X)
        assert not isinstance(caught.value, SolverError)


@pytest.mark.parametrize("solver, options, message", [
    ("first_order", {"devcie": "cpu"}, r"\['devcie'\] are not options of the first-order"),
    ("first_order", {"max_iter": 10}, "tol and max_iter are the estimator's own"),
    ("auto", {"device": "cpu", "max_iters": 3}, r"mix the first-order solver's \['device'\]"),
    ("first_order", {"warm_start": 3}, "warm_start must be a list of 2 OutputSolution"),
    ("first_order", {"warm_start": [None, None]}, "warm_start must be a list of 2 OutputSolution"),
])
def test_solver_options_are_checked_before_they_reach_a_backend(solver, options, message):
    """They were passed on unchecked: a TypeError naming an internal function, or Clarabel
    rejecting 'device'."""
    with pytest.raises(ValueError, match=message):
        solvers.solve_arrangement(_program("sm", 0.05), solver, solver_options=options)
