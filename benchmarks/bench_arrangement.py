"""Benchmark the d >= 2 arrangement programs: our first-order solver, cvxpy, pyscnn and Adam.

Run (from the repository root)::

    python benchmarks/bench_arrangement.py                 # full run (long)
    python benchmarks/bench_arrangement.py --quick         # n = 100, 1000 (2-D), 100 (10-D)
    python benchmarks/bench_arrangement.py --device cuda   # adds a CUDA first-order column
    python benchmarks/bench_arrangement.py --dims 2 --sizes 10000 --programs dsm-noskip \\
        --solvers pyscnn adam --max-seconds 60             # one cell, two solvers

Full sizes: n = 1e2, 1e3, 1e4, 1e5 in 2-D (50 gates) and 1e2, 1e3, 1e4 in
10-D (100 gates). ``--threads N`` sets ``torch.set_num_threads`` in every cell
(use 1 on a shared machine: under other load, two spinning OpenMP threads made
small solves up to 50x slower in our runs). Every cell (one solver on one program) runs in its own subprocess
and is capped at ``--max-seconds`` (default 120 s of solve time; imports are
not counted): a cell that exceeds it prints ``timeout``, one that raises prints
``failed (ExcName)``, and the run goes on.

Programs (output k = 0 only; data: two Gaussian clusters, standardised)
-----------------------------------------------------------------------
* ``sm``: score matching (math notes 4.1), ReLU with skip connection,
  ``alpha = 4 d / n + 0.05`` (a bit above the well-posedness scale d / n).
* ``dsm``: denoising score matching (math notes 4.2), ReLU with skip
  connection, ``alpha = 0.05``, ``sigma = 0.3``, one noisy copy per point,
  targets ``-eps / sigma`` in standardised units (as ``make_program`` in
  tests/test_first_order.py). ``n`` is the number of noisy points.
* ``dsm-noskip``: the same DSM program WITHOUT skip connection. pyscnn has no
  skip connection, so this is the program on which it is compared with ours:
  every solver in a ``dsm-noskip`` row solves the identical program.

``P`` is the number of distinct non-trivial patterns kept from the gates
(``sample_patterns``); the non-convex network for Adam has ``2 P`` hidden units.

Columns
-------
All objectives are output 0's program value in standardised units, computed
by ``program.objective_value`` at each solver's returned point (so they are
comparable; lower is better). ``f*`` is the best objective of our two convex
solvers (first-order and cvxpy) in that row. Times are wall-clock seconds of
the solve alone.

* ``FO s / FO obj / FO it``: ``solve_arrangement_output_first_order`` on the
  CPU (``tol = --tol``): time, objective, iterations.
* ``FO gap``: ``(f_FO - f_cvxpy) / |f_cvxpy|`` when cvxpy ran; otherwise the
  solver's own certified duality gap relative to ``max(1, |f_FO|)``, printed
  as ``cert x``.
* ``CUDA s / CUDA obj``: the same solver with ``device="cuda"`` (only with
  ``--device cuda`` on a machine where CUDA is available).
* ``cvxpy s / cvxpy obj``: ``solve_arrangement_output_cvxpy`` (Clarabel);
  ``-`` when ``n P > --cvxpy-limit`` (default 2e5).
* ``pyscnn s / pyscnn obj / pyscnn viol``: pyscnn 0.0.10's augmented
  Lagrangian (``scnn.solvers.AL`` on ``ConvexReLU`` with ``NeuronGL1``),
  ``dsm-noskip`` rows only (``n/a`` elsewhere; ``pyscnn not installed`` when
  the import fails). ``obj`` is the value OUR program assigns to its mapped
  weights and ``viol`` is ``program.cone_violation`` of them (the largest
  cone violation relative to each block's norm: pyscnn's AL ends slightly
  infeasible, and its tiny leftover blocks make this relative number large),
  followed by the largest absolute violation ``max(-(2 D_i - 1) [Z, 1] u_i)``.
  An infeasible point's objective is not an upper bound on the optimum: it can
  sit below ``f*``. A time suffixed ``cap``
  means pyscnn was stopped at the cap and the weights are its last iterate.
* ``Adam s to tol / Adam gap / Adam it``: full-batch ``torch.optim.Adam``
  (float64, CPU, lr 1e-2 cosine-annealed to 1e-4 over its budget, at most
  ``--adam-iters`` iterations and ``--max-seconds`` seconds) on the
  non-convex two-layer ReLU network of width ``2 P`` (skip connection when the
  program has one) with the same objective and weight decay ``(alpha/2)
  sum_j (||w_j||^2 + a_j^2)``. ``s to tol`` is the first time its objective is
  within ``--adam-rtol`` (default 1e-3, relative) of ``f*`` (``never``
  otherwise), followed by ``(of T)``, Adam's total time; ``gap`` is the signed
  final relative gap ``(f_Adam - f*) / |f*|``; ``it`` its iterations. The gap
  can be negative: Adam is not restricted to the sampled patterns (with P
  patterns out of the O(n^d) of the full arrangement, the network can beat
  the restricted convex optimum on DSM). On SM it tends to stay at the
  Gaussian (skip-only) solution, as the math notes (3.1) describe in 1-D.
  Without any ``f*`` the cells read ``no f*`` and ``f=<Adam objective>``.

Matching pyscnn to our program
------------------------------
* Loss normalisation: pyscnn's squared loss is ``||F - y||^2 / (2 n)`` for one
  target, the same as ours, so its ``lam`` is our ``alpha`` unchanged.
* Patterns: pyscnn gets ``X = [Z, c 1]`` and gates ``[g[:d], g[d] / c]``
  (transposed, ``bias=False``), so ``1[X G > 0]`` are exactly our masks (our
  gates have a strictly positive margin; asserted after mapping pyscnn's
  sorted, de-duplicated patterns back to ours). ``unitize_data=False``,
  float64.
* Bias: pyscnn's group norm includes the bias coordinate, ours excludes it.
  With the bias column scaled by ``c = --pyscnn-bias-scale`` (default 10) the
  bias weight is ``b / c`` in pyscnn's variables and its penalty
  ``alpha sqrt(||w||^2 + b^2 / c^2)`` is close to ours; ``c = 1`` is pyscnn's
  native formulation (bias penalised, a different and larger optimum, but a
  better-conditioned and faster AL solve).
* Skip connection: none in pyscnn; hence the ``dsm-noskip`` rows.
* Stopping: pyscnn's own tolerances (``tol = constraint_tol = 1e-6``, no
  iteration limit) or the time cap, whichever comes first.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _arrangement_baselines import (
    make_program,
    pyscnn_available,
    run_capped,
    time_to_reach,
)

PROGRAMS = ("sm", "dsm", "dsm-noskip")
SOLVERS = ("fo", "cvxpy", "pyscnn", "adam")
FULL_SIZES = {2: [100, 1000, 10_000, 100_000], 10: [100, 1000, 10_000]}
QUICK_SIZES = {2: [100, 1000], 10: [100]}
GATES = {2: 50, 10: 100}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="cuda adds a CUDA first-order column when available")
    parser.add_argument("--max-seconds", type=float, default=120.0,
                        help="per-cell time cap in seconds (default 120)")
    parser.add_argument("--sizes", type=int, nargs="+", help="n values (all dims)")
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 10])
    parser.add_argument("--gates", type=int, help="gates drawn (default 50 in 2-D, 100 in 10-D)")
    parser.add_argument("--programs", nargs="+", choices=PROGRAMS, default=list(PROGRAMS))
    parser.add_argument("--solvers", nargs="+", choices=SOLVERS, default=list(SOLVERS))
    parser.add_argument("--tol", type=float, default=1e-6, help="first-order tolerance")
    parser.add_argument("--cvxpy-limit", type=float, default=2e5,
                        help="skip cvxpy when n * P exceeds this")
    parser.add_argument("--adam-rtol", type=float, default=1e-3)
    parser.add_argument("--adam-iters", type=int, default=20000)
    parser.add_argument("--adam-lr", type=float, default=1e-2)
    parser.add_argument("--pyscnn-bias-scale", type=float, default=10.0)
    parser.add_argument("--threads", type=int,
                        help="torch threads per cell (default: torch's own; use 1 on a "
                             "shared machine for stable timings)")
    return parser.parse_args(argv)


def cuda_available():
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def fmt_time(result):
    if result is None:
        return "-"
    if result.get("timeout"):
        return "timeout"
    if "error" in result:
        # the table keeps the exception's name; its message goes to stderr
        print(f"[{result['error']}] {result.get('message', '')}", file=sys.stderr)
        return f"failed ({result['error']})"
    suffix = " cap" if result.get("capped") else ""
    return f"{result['time']:.2f}{suffix}"


def fmt_value(result, key="objective", spec=".8g"):
    if result is None or result.get("timeout") or "error" in result:
        return "-"
    value = result.get(key)
    return "-" if value is None else format(value, spec)


def ok(result):
    return result is not None and not result.get("timeout") and "error" not in result


def relative_gap(value, reference):
    return (value - reference) / max(abs(reference), 1e-300)


def run_row(d, kind, n, args, use_cuda, have_pyscnn):
    """Run every requested solver on one program; return the row's cells."""
    n_gates = args.gates or GATES.get(d, 100)
    program = make_program(kind, n, d, n_gates)
    P = program.n_patterns
    cap = args.max_seconds
    threads = args.threads
    want = set(args.solvers)
    cells = [str(d), f"{kind} a={program.alpha:.3g}", str(n), str(P)]

    fo = fo_cuda = None
    if "fo" in want:
        fo = run_capped("first_order", program, cap, threads=threads, tol=args.tol)
        if use_cuda:
            fo_cuda = run_capped("first_order", program, cap, threads=threads, tol=args.tol,
                                 device="cuda")
    cvx = None
    cvx_cell = "-"
    if "cvxpy" in want:
        if n * P <= args.cvxpy_limit:
            cvx = run_capped("cvxpy", program, cap, threads=threads)
            cvx_cell = fmt_time(cvx)
        else:
            cvx_cell = "- (n P too large)"

    if ok(fo) and ok(cvx):
        fo_gap = f"{relative_gap(fo['objective'], cvx['objective']):.1e}"
    elif ok(fo):
        fo_gap = f"cert {fo['duality_gap'] / max(1.0, abs(fo['objective'])):.1e}"
    else:
        fo_gap = "-"
    cells += [fmt_time(fo), fmt_value(fo), fmt_value(fo, "n_iter", "d"), fo_gap]
    if use_cuda:
        cells += [fmt_time(fo_cuda), fmt_value(fo_cuda)]
    cells += [cvx_cell, fmt_value(cvx)]

    if "pyscnn" in want:
        if kind != "dsm-noskip":
            cells += ["n/a", "n/a", "n/a"]
        elif not have_pyscnn:
            cells += ["pyscnn not installed", "-", "-"]
        else:
            ps = run_capped("pyscnn", program, cap, self_stopping=True, threads=threads,
                            max_seconds=cap,
                            bias_scale=args.pyscnn_bias_scale)
            viol = "-"
            if ok(ps):
                viol = f"{ps['cone_violation']:.1e} (abs {ps['absolute_violation']:.0e})"
            cells += [fmt_time(ps), fmt_value(ps), viol]
    else:
        cells += ["-", "-", "-"]

    best = [r["objective"] for r in (fo, fo_cuda, cvx) if ok(r)]
    f_star = min(best) if best else None
    if "adam" in want:
        adam = run_capped("adam", program, cap, self_stopping=True, threads=threads,
                          max_seconds=cap,
                          max_iter=args.adam_iters, lr=args.adam_lr)
        if not ok(adam):
            cells += [fmt_time(adam), "-", "-"]
        elif f_star is None:
            cells += ["no f*", f"f={adam['objective']:.8g}", str(adam["n_iter"])]
        else:
            reach = time_to_reach(adam["times"], adam["values"], f_star, args.adam_rtol)
            reach_cell = "never" if reach is None else f"{reach:.2f}"
            gap = relative_gap(adam["objective"], f_star)
            cells += [f"{reach_cell} (of {adam['time']:.1f})", f"{gap:+.1e}", str(adam["n_iter"])]
    else:
        cells += ["-", "-", "-"]
    return cells


def main(argv=None):
    args = parse_args(argv)
    use_cuda = args.device == "cuda" and cuda_available()
    have_pyscnn = pyscnn_available()
    if args.device == "cuda" and not use_cuda:
        print("note: --device cuda requested but CUDA is not available; CPU only.")
    header = ["d", "program", "n", "P", "FO s", "FO obj", "FO it", "FO gap"]
    if use_cuda:
        header += ["CUDA s", "CUDA obj"]
    header += ["cvxpy s", "cvxpy obj", "pyscnn s", "pyscnn obj", "pyscnn viol",
               f"Adam s to {args.adam_rtol:g}", "Adam gap", "Adam it"]
    print(f"Per-cell cap {args.max_seconds:g} s; first-order tol {args.tol:g}; "
          f"pyscnn bias scale {args.pyscnn_bias_scale:g}; torch threads {args.threads or 'default'}; "
          f"output k = 0; standardised units.")
    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header), flush=True)
    for d in args.dims:
        sizes = args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES).get(d, [100])
        for n in sizes:
            for kind in args.programs:
                cells = run_row(d, kind, n, args, use_cuda, have_pyscnn)
                print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
