"""``python -m skconvexscore``: fit a convex score model, report, and draw it.

Runs on an embedded data set generated in code (a 2-D ring by default, or a
1-D bimodal sample), or on a CSV / NPY file of shape (n_samples, n_features).
"""

import argparse
import os
import sys
import time
import warnings

import numpy as np

DATASETS = ("ring", "bimodal")


def make_dataset(name, random_state=0):
    """The embedded demo data sets.

    ``"ring"``: 200 points on a noisy circle of radius 2 in 2-D.
    ``"bimodal"``: 300 points from 0.4 N(-2, 0.5^2) + 0.6 N(1.5, 0.7^2) in 1-D.
    """
    rng = np.random.default_rng(random_state)
    if name == "ring":
        angle = rng.uniform(0, 2 * np.pi, 200)
        radius = 2.0 + 0.15 * rng.standard_normal(200)
        return np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
    if name == "bimodal":
        left = rng.random(300) < 0.4
        x = np.where(left, rng.normal(-2.0, 0.5, 300), rng.normal(1.5, 0.7, 300))
        return x[:, None]
    raise ValueError(f"unknown data set {name!r}; choose one of {DATASETS}")


def load_data(path):
    """Read an (n_samples, n_features) array from ``.npy`` or CSV (header allowed).

    Raises ``ValueError`` with a message fit for the command line.
    """
    if not os.path.isfile(path):
        raise ValueError(f"--data {path!r}: no such file, and not an embedded data set "
                         f"({', '.join(DATASETS)})")
    try:
        if path.lower().endswith(".npy"):
            X = np.load(path, allow_pickle=False)
        else:
            # ndmin=2: one column stays (n, 1) and one row stays (1, d)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "Empty input file": reported below
                X = np.genfromtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
            if X.size and np.all(np.isnan(X[0])):
                X = X[1:]  # a header row
        X = np.asarray(X, dtype=np.float64)
    except (OSError, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError(f"--data {path!r}: cannot read it as a comma-separated CSV or a .npy "
                         f"array of numbers ({type(exc).__name__}: {exc})") from None
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ValueError(f"--data {path!r}: expected a 1-D or 2-D array (n_samples, n_features), "
                         f"got shape {X.shape}")
    if X.shape[0] < 2:
        raise ValueError(f"--data {path!r}: need at least 2 samples (rows), got {X.shape[0]}")
    bad = ~np.isfinite(X)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(f"--data {path!r}: {int(bad.sum())} missing, non-numeric or infinite "
                         f"value(s), first at data row {row + 1}, column {col + 1} (comma-separated "
                         f"numbers expected; one header row is allowed)")
    return X


def choose_alpha(X, random_state=0, n_patterns=100):
    """Pick alpha by 3-fold GridSearchCV on the held-out Hyvarinen score."""
    from sklearn.exceptions import FitFailedWarning
    from sklearn.model_selection import GridSearchCV

    from . import ConvexScoreMatcher

    n, d = X.shape
    if n < 3:
        raise ValueError(f"--alpha auto needs at least 3 samples for 3-fold cross-validation, got {n}")
    bound = (1.0 if d == 1 else 1.5 * d) / (2 * n // 3)  # well-posedness on a training fold
    grid = np.geomspace(2 * bound, 1.0, 6)
    search = GridSearchCV(
        ConvexScoreMatcher(n_patterns=n_patterns, random_state=random_state), {"alpha": grid},
        cv=3, error_score=np.nan,
    )
    with warnings.catch_warnings():
        # ill-posed grid values fail and score NaN: expected, not worth a page of tracebacks
        warnings.simplefilter("ignore", FitFailedWarning)
        warnings.filterwarnings("ignore", message="One or more of the test scores are non-finite")
        try:
            search.fit(X)
        except ValueError as exc:
            reason = [line for line in str(exc).splitlines() if line.strip()]
            raise ValueError(f"--alpha auto: no alpha in {np.round(grid, 4).tolist()} could be "
                             f"fitted on these data ({reason[-1] if reason else exc}); pass "
                             "--alpha explicitly") from None
    return float(search.best_params_["alpha"])


def plot(model, X, path, samples=None):
    """1-D: the learned score over a histogram; 2-D: data and score field."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = X.shape[1]
    if d == 1:
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.hist(X[:, 0], bins=40, density=True, color="0.8", label="data")
        if samples is not None:
            ax.hist(samples[:, 0], bins=40, density=True, histtype="step", color="C1", label="Langevin samples")
        grid = np.linspace(X.min() - 1, X.max() + 1, 600)[:, None]
        twin = ax.twinx()
        twin.plot(grid[:, 0], model.predict(grid)[:, 0], color="C0", label="learned score")
        twin.axhline(0, color="k", lw=0.5)
        twin.set_ylabel("score  d/dx log p(x)")
        ax.set_xlabel("x")
        ax.set_ylabel("density")
        handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
        ax.legend(handles=handles, loc="upper left")
    else:
        fig, ax = plt.subplots(figsize=(6, 6))
        lo, hi = X[:, :2].min(axis=0) - 1, X[:, :2].max(axis=0) + 1
        gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 25), np.linspace(lo[1], hi[1], 25))
        grid = np.tile(X.mean(axis=0), (gx.size, 1))
        grid[:, 0], grid[:, 1] = gx.ravel(), gy.ravel()
        field = model.predict(grid)
        ax.quiver(gx, gy, field[:, 0], field[:, 1], color="C0", alpha=0.6, angles="xy")
        ax.scatter(X[:, 0], X[:, 1], s=8, color="k", label="data")
        if samples is not None:
            ax.scatter(samples[:, 0], samples[:, 1], s=6, color="C1", alpha=0.6, label="Langevin samples")
        ax.set_aspect("equal")
        ax.legend(loc="upper right")
    ax.set_title(f"{type(model).__name__}: alpha={model.alpha:.3g}, {model.n_neurons_} units")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _alpha(text):
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a positive number, got {text!r}") from None
    if not (np.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"alpha must be a positive finite number, got {text!r}")
    return value


def _int_at_least(low):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value
    return parse


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m skconvexscore",
        description=(
            "Fit a two-layer ReLU score network by score matching as one convex program "
            "(global optimum), print a report and save a picture."
        ),
    )
    parser.add_argument("--data", default="ring",
                        help="a CSV (comma-separated, one header row allowed) or .npy file of "
                             "shape (n_samples, n_features), or an embedded "
                             f"data set: {', '.join(DATASETS)} (default: ring, 200 points in 2-D)")
    parser.add_argument("--alpha", default="auto", type=_alpha,
                        help="weight decay; 'auto' (default) picks it by 3-fold GridSearchCV on the "
                             "held-out Hyvarinen score")
    parser.add_argument("--n-patterns", type=_int_at_least(1), default=100,
                        help="sampled activation patterns for d >= 2 (default: 100)")
    parser.add_argument("--samples", type=_int_at_least(0), default=500,
                        help="Langevin samples to draw and plot (default: 500; 0 to skip)")
    parser.add_argument("--output", default="skconvexscore_demo.png",
                        help="path of the picture (default: skconvexscore_demo.png)")
    parser.add_argument("--random-state", type=int, default=0, help="seed (default: 0)")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1


def _check_output(path):
    """Fail before any fitting if the picture cannot be written; return the path written."""
    try:
        import matplotlib
    except ImportError:
        raise ValueError("the picture needs matplotlib: pip install 'skconvexscore[examples]'") from None
    matplotlib.use("Agg")
    from matplotlib.backend_bases import FigureCanvasBase

    root, ext = os.path.splitext(path)
    if not ext:
        path = path + ".png"  # what savefig would write
    elif ext[1:].lower() not in FigureCanvasBase.get_supported_filetypes():
        raise ValueError(f"--output {path!r}: unsupported picture format {ext!r} "
                         f"(use one of {', '.join(sorted(FigureCanvasBase.get_supported_filetypes()))})")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"--output {path!r}: folder {folder!r} does not exist")
    if os.path.isdir(path):
        raise ValueError(f"--output {path!r} is a folder; give a file name")
    return path


def _run(args):
    from . import ConvexScoreMatcher

    output = _check_output(args.output)
    X = make_dataset(args.data, args.random_state) if args.data in DATASETS else load_data(args.data)
    n, d = X.shape
    alpha = (choose_alpha(X, args.random_state, args.n_patterns) if args.alpha == "auto"
             else args.alpha)
    model = ConvexScoreMatcher(alpha=alpha, n_patterns=args.n_patterns, random_state=args.random_state)
    model.fit(X)

    samples, sample_time = None, None
    if args.samples > 0 and hasattr(model, "sample"):
        start = time.perf_counter()
        samples = model.sample(args.samples, random_state=args.random_state)
        sample_time = time.perf_counter() - start

    lines = [
        f"data            {args.data}: n = {n}, d = {d}",
        f"alpha           {alpha:.4g}" + ("  (chosen by GridSearchCV)" if args.alpha == "auto" else ""),
        f"objective J_SM  {model.objective_:.6g}",
        f"hidden units    {model.n_neurons_}",
        f"patterns        {model.n_patterns_}" + ("  (1-D: every data point is a kink)" if d == 1 else ""),
        f"solver          {model.solver_} ({model.solver_status_}, {model.n_iter_} iterations)",
        f"fit time        {model.fit_time_:.3f} s",
        f"train score     {model.score(X):.6g}  (Hyvarinen criterion, higher is better)",
    ]
    if samples is not None:
        lines.append(f"samples         {len(samples)} Langevin samples in {sample_time:.3f} s")
    plot(model, X, output, samples)
    lines.append(f"picture         {output}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
