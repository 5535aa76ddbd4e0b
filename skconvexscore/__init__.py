"""skconvexscore: two-layer ReLU score networks fitted globally by convex optimisation.

Score matching and denoising score matching with weight decay, for a two-layer
network whose hidden units each feed one output, are convex programs
(Zhang & Pilanci, arXiv:2402.01965). This package solves them and exposes the
result as scikit-learn estimators.
"""

from ._denoising import ConvexDenoisingScoreMatcher
from ._network import ScoreNetwork
from ._programs import gaussian_regime_alpha, univariate_alpha_bound
from ._score_matching import ConvexScoreMatcher

__version__ = "0.1.0"

__all__ = [
    "ConvexDenoisingScoreMatcher",
    "ConvexScoreMatcher",
    "ScoreNetwork",
    "gaussian_regime_alpha",
    "univariate_alpha_bound",
    "__version__",
]
