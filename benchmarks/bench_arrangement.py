"""Benchmark: first-order arrangement solver versus cvxpy (Clarabel) on SM and DSM programs.

Usage: PYTHONPATH=. python benchmarks/bench_arrangement.py [--quick]

Prints a Markdown table: fit time and objective (standardised units) of output 0's program.
cvxpy is run while n * P <= CVXPY_LIMIT. pyscnn and Adam columns are not implemented yet.
"""

import sys
import time

import numpy as np

from skconvexscore._cvxpy_solver import solve_arrangement_output_cvxpy
from skconvexscore._first_order import solve_arrangement_output_first_order
from skconvexscore._programs import ArrangementProgram, sample_patterns, standardize

CVXPY_LIMIT = 200_000


def program(objective, n, d, n_gates, alpha, seed=0, sigma=0.3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    X[:, 0] += 2.0 * np.sign(rng.normal(size=n))
    targets = None
    if objective == "dsm":
        eps = rng.normal(size=(n, d))
        Z, st = standardize(X + sigma * eps)
        targets = -eps / sigma * st.scale
    else:
        Z, _ = standardize(X)
    masks, gates = sample_patterns(Z, n_gates, "relu", np.random.RandomState(seed))
    return ArrangementProgram(objective, Z, masks, gates, alpha, "relu", True, targets)


def timed(fn):
    start = time.perf_counter()
    try:
        out = fn()
    except Exception as exc:  # report and go on
        return time.perf_counter() - start, f"failed ({type(exc).__name__})"
    return time.perf_counter() - start, out


def main():
    quick = "--quick" in sys.argv
    sizes_2d = [100, 1000] if quick else [100, 1000, 10_000, 100_000]
    sizes_10d = [100] if quick else [100, 1000, 10_000]
    rows = []
    for d, sizes, gates in ((2, sizes_2d, 50), (10, sizes_10d, 100)):
        for n in sizes:
            for objective, alpha in (("sm", 4.0 * d / n + 0.05), ("dsm", 0.05)):
                prog = program(objective, n, d, gates, alpha)
                t_fo, fo = timed(lambda: solve_arrangement_output_first_order(prog, 0, tol=1e-5))
                if n * prog.n_patterns <= CVXPY_LIMIT:
                    t_cv, cv = timed(lambda: solve_arrangement_output_cvxpy(prog, 0))
                else:
                    t_cv, cv = None, "skipped"
                fo_obj = f"{fo.objective:.8g}" if not isinstance(fo, str) else fo
                fo_it = fo.n_iter if not isinstance(fo, str) else "-"
                cv_obj = f"{cv.objective:.8g}" if not isinstance(cv, str) else cv
                cv_t = f"{t_cv:.2f}" if t_cv is not None else "-"
                rows.append(f"| {d} | {objective} a={alpha:.3g} | {n} | {prog.n_patterns} | "
                            f"{t_fo:.2f} | {fo_obj} | {fo_it} | {cv_t} | {cv_obj} |")
                print(rows[-1], flush=True)
    print()
    print("| d | program | n | P | first-order s | first-order objective | iters | cvxpy s | cvxpy objective |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
