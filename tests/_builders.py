"""Data sets and hand-built networks shared by the test modules."""

import numpy as np
import torch

from skconvexscore import ScoreNetwork


def bimodal(n, seed=0):
    """``n`` points from 0.5 N(-2, 0.5^2) + 0.5 N(2, 0.6^2), shape (n, 1)."""
    rng = np.random.default_rng(seed)
    left = rng.random(n) < 0.5
    return np.where(left, rng.normal(-2.0, 0.5, n), rng.normal(2.0, 0.6, n))[:, None]


def mixture_2d(n, seed=0):
    """``n`` points from two isotropic Gaussians (sd 0.5) at (-2, 0) and (2, 0.5)."""
    rng = np.random.default_rng(seed)
    centres = np.array([[-2.0, 0.0], [2.0, 0.5]])
    return centres[rng.integers(0, 2, n)] + 0.5 * rng.standard_normal((n, 2))


def univariate_network(w, b, a, v, c, activation="relu"):
    """``s(x) = sum_j a_j phi(w_j x + b_j) + v x + c``."""
    return ScoreNetwork(
        np.asarray(w, float).reshape(-1, 1),
        np.asarray(b, float).reshape(-1),
        np.asarray(a, float).reshape(-1, 1),
        np.array([[v]], float),
        np.array([c], float),
        activation,
    )


def minimise_with_adam(objective, parameters, steps, lr=1e-2):
    """Run Adam on ``objective()`` over ``parameters``; return the final value."""
    optimiser = torch.optim.Adam(parameters, lr=lr)
    for _ in range(steps):
        optimiser.zero_grad()
        objective().backward()
        optimiser.step()
    with torch.no_grad():
        return float(objective())
