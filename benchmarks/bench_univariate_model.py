"""Using a large univariate model: its linear pieces against its hidden units.

A score-matching fit on ``n`` points at ``alpha = 2/n`` (near the
well-posedness bound, where about 13.5 % of the points carry a kink) gives a
network with ``~0.135 n`` units. Evaluated unit by unit, the score of ``m``
points costs ``O(m x units)`` time and memory; read off its linear pieces
(:meth:`skconvexscore.ScoreNetwork.piecewise`, what ``predict``, ``score`` and
``sample`` use in 1-D) it costs ``O((m + units) log units)``.

Columns, for each fitted model:

* ``fit``: the estimator's fit time (s);
* ``predict``: the score at ``--points`` points, by the pieces (as ``predict``)
  and by the units (``relu(x W^T + b) A + V x + c`` in row blocks of 2^24
  activations, what one writes without the pieces), with the ratio;
* ``Langevin``: chain-steps per second of ``--chains`` chains, the package's
  sampler against the eager PyTorch loop over the units (``nn.Sequential``
  plus the skip, chains in blocks of 2^24 activations), with the ratio.

Usage::

    python benchmarks/bench_univariate_model.py                # n = 1e4, 1e5, 1e6
    python benchmarks/bench_univariate_model.py --sizes 1e4,1e5
"""

import argparse
import os
import platform
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir))

from bench_langevin import eager_baseline  # noqa: E402
from bench_univariate import timed  # noqa: E402

from skconvexscore import ConvexScoreMatcher  # noqa: E402
from skconvexscore._langevin import langevin_sample  # noqa: E402

BLOCK = 2**24  # activations per block for the unit-by-unit baselines


def score_by_units(network, X):
    """The score unit by unit, in row blocks (an (m, units) array would not fit)."""
    network = network.recentred(0.0)
    rows = max(1, BLOCK // max(network.n_units, 1))
    out = np.empty_like(X)
    for start in range(0, X.shape[0], rows):
        x = X[start:start + rows]
        hidden = np.maximum(x @ network.hidden_weights.T + network.hidden_biases, 0.0)
        out[start:start + rows] = (hidden @ network.output_weights + x @ network.skip_weights.T
                                   + network.output_bias)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e4,1e5,1e6", help="comma-separated n of the fits")
    parser.add_argument("--points", type=int, default=10_000, help="query points for predict")
    parser.add_argument("--chains", type=int, default=10_000, help="Langevin chains")
    parser.add_argument("--work", type=float, default=2e9,
                        help="chain-steps x units per Langevin measurement (sets the steps)")
    args = parser.parse_args()
    sizes = [int(float(s)) for s in args.sizes.split(",")]

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), float64")
    print("| n (fit) | units | fit (s) | predict: pieces (s) | predict: units (s) | ratio | max rel. diff "
          "| Langevin: pieces (chain-steps/s) | Langevin: units (chain-steps/s) | ratio |")
    print("|" + "---|" * 10)
    rng = np.random.default_rng(0)
    for n in sizes:
        X = rng.standard_normal((n, 1))
        fit_time, model = timed(lambda: ConvexScoreMatcher(alpha=2.0 / n).fit(X))
        network = model.networks_[0]
        query = rng.standard_normal((args.points, 1))
        t_pieces, by_pieces = timed(lambda: model.predict(query))
        t_units, by_units = timed(lambda: score_by_units(network, query))
        diff = float(np.max(np.abs(by_pieces - by_units)) / np.max(np.abs(by_units)))
        step = 0.1 / max(float(np.max(np.abs(network.piecewise().slopes))), 1.0)
        init = rng.standard_normal((args.chains, 1))
        steps_units = max(1, int(args.work / (args.chains * network.n_units)))
        steps_pieces = max(steps_units, 100)
        # warm-up: torch's first calls
        langevin_sample(network, args.chains, n_steps=1, step_size=step, init=init, random_state=0)
        t_lp, _ = timed(lambda: langevin_sample(network, args.chains, n_steps=steps_pieces,
                                                step_size=step, init=init, random_state=0))
        cpu, block = torch.device("cpu"), max(1, BLOCK // network.n_units)
        t_lu, _ = timed(lambda: eager_baseline(network, init, steps_units, step, cpu, torch.float64,
                                               block))
        rate_p = args.chains * steps_pieces / t_lp
        rate_u = args.chains * steps_units / t_lu
        print(f"| {n:.0e} | {network.n_units} | {fit_time:.2f} | {t_pieces:.4f} | {t_units:.3f} | "
              f"{t_units / t_pieces:.0f}x | {diff:.1e} | {rate_p:.3g} | {rate_u:.3g} | "
              f"{rate_p / rate_u:.0f}x |", flush=True)


if __name__ == "__main__":
    main()
