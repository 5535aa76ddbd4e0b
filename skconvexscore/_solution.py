"""What a solver returns: the optimal point of one program and its certificate."""

from dataclasses import dataclass, field

import numpy as np

__all__ = ["OutputSolution", "UnivariateSolution"]


@dataclass
class UnivariateSolution:
    """Solution of a :class:`~skconvexscore._programs.UnivariateProgram`.

    Attributes
    ----------
    coef : ndarray of shape (n_atoms,)
        Atom coefficients ``u`` (slope changes at the kinks).
    slope, intercept : float
        Skip connection ``v x + c`` (zero without one).
    objective : float
        Optimal value, standardised units.
    status : str
        Solver status, ``"optimal"`` for a certified solution.
    n_iter : int
    duality_gap : float
        Certified bound on ``objective - optimum`` (nan where the solver does
        not report one).
    """

    coef: np.ndarray
    slope: float
    intercept: float
    objective: float
    status: str = "optimal"
    n_iter: int = 0
    duality_gap: float = float("nan")
    info: dict = field(default_factory=dict)


@dataclass
class OutputSolution:
    """Solution of one output's :class:`~skconvexscore._programs.ArrangementProgram`.

    Attributes
    ----------
    positive, negative : ndarray of shape (P, d + 1)
        ``v_i`` and ``w_i`` of every pattern.
    skip_row : ndarray of shape (d,)
        ``V_k`` (zeros without skip connection).
    intercept : float
        ``c_k``.
    objective : float
        Optimal value of this output's program, standardised units.
    status : str
    n_iter : int
    duality_gap : float
    constraint_violation : float
        Largest relative violation of the cone constraints.
    """

    positive: np.ndarray
    negative: np.ndarray
    skip_row: np.ndarray
    intercept: float
    objective: float
    status: str = "optimal"
    n_iter: int = 0
    duality_gap: float = float("nan")
    constraint_violation: float = 0.0
    info: dict = field(default_factory=dict)
