"""Reference solver in d >= 2: the fit through a p x p factor vs one row per point.

``solve_arrangement_output_cvxpy`` gives Clarabel the DSM fit through the thin QR
factorisation of the design ``M = Q R``, ``1/(2n) ||R u - Q^T y||^2`` plus a
constant (``R`` is as small as the Gram matrix ``M^T M``, which an earlier version
used, and its terms do not cancel); the textbook formulation writes one residual
row per point, ``1/(2n) ||M u - y||^2``. Both solve the same program (same data,
patterns and alpha); this script times them side by side on 2-D DSM programs.

    python benchmarks/bench_cvxpy_formulation.py [--quick]
"""

import argparse
import time

import cvxpy as cp
import numpy as np

from skconvexscore._cvxpy_solver import solve_arrangement_output_cvxpy
from skconvexscore._programs import ArrangementProgram, sample_patterns, standardize


def dsm_program(n_points, n_patterns=100, sigma=0.3, alpha=0.01, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[-2.0, 0.0], [2.0, 0.5]])
    X = centres[rng.integers(0, 2, n_points)] + 0.5 * rng.standard_normal((n_points, 2))
    eps = rng.standard_normal(X.shape)
    Z, st = standardize(X + sigma * eps)
    masks, gates = sample_patterns(Z, n_patterns, "relu", np.random.RandomState(seed))
    return ArrangementProgram("dsm", Z, masks, gates, alpha, "relu", True, -eps / sigma * st.scale)


def solve_by_rows(program, k):
    """The same program with one residual row per point."""
    n, d, P = program.n, program.d, program.n_patterns
    F = program.features
    pos, neg = cp.Variable((d + 1, P)), cp.Variable((d + 1, P))
    skip, c = cp.Variable(d), cp.Variable()
    f = cp.sum(cp.multiply(program.output_masks, F @ (pos - neg)), axis=1) + program.Z @ skip + c
    penalty = program.alpha * (cp.sum(cp.norm(pos[:d], 2, axis=0)) + cp.sum(cp.norm(neg[:d], 2, axis=0)))
    problem = cp.Problem(
        cp.Minimize(0.5 * cp.sum_squares(f - program.targets[:, k]) / n + penalty),
        [cp.multiply(program.signs, F @ pos) >= 0, cp.multiply(program.signs, F @ neg) >= 0],
    )
    problem.solve(solver=cp.CLARABEL)
    return problem.status, problem.value


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n up to 1000 only")
    args = parser.parse_args()
    sizes = [200, 1000] if args.quick else [200, 1000, 2000]
    print("| n | P | library s | library objective | rows s | rows objective | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for n in sizes:
        program = dsm_program(n)
        start = time.perf_counter()
        gram = solve_arrangement_output_cvxpy(program, 0)
        t_gram = time.perf_counter() - start
        start = time.perf_counter()
        status, value = solve_by_rows(program, 0)
        t_rows = time.perf_counter() - start
        print(f"| {n} | {program.n_patterns} | {t_gram:.2f} | {gram.objective:.8g} | {t_rows:.2f} | "
              f"{value:.8g} ({status}) | {t_rows / t_gram:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
