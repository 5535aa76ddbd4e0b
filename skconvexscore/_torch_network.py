"""PyTorch twin of :class:`~skconvexscore._network.ScoreNetwork` (imported lazily)."""

import warnings

import torch
from torch import nn

from ._devices import resolve_device, resolve_dtype

__all__ = ["TorchScoreNetwork"]

# Elements of the (rows x hidden units) activation per chunk of rows when no gradient is
# recorded: a 1-D fit near the well-posedness bound has 1e4-1e5 units, and 1e5 query rows
# would otherwise build a 1e5 x 1e4 float64 activation (8 GB, twice: pre-activation and phi).
_FORWARD_CHUNK_ELEMENTS = 2**24


class TorchScoreNetwork(nn.Module):
    r"""``s(x) = A^T phi(W (x - o) + b) + V (x - o) + c`` as a trainable module.

    Built by :meth:`from_network`; parameters ``hidden`` (``W``, ``b``),
    ``output`` (``A``, ``c``) and ``skip`` (``V``) mirror the NumPy network,
    the buffer ``origin`` its origin ``o`` (the data's mean for fitted
    networks: far from zero the biases of ``W x + b`` would lose digits).
    """

    def __init__(self, n_features, n_units, activation="relu"):
        super().__init__()
        self.activation = activation
        with warnings.catch_warnings():
            # a network without units (the Gaussian regime) is a valid model
            warnings.filterwarnings("ignore", "Initializing zero-element tensors", UserWarning)
            self.hidden = nn.Linear(n_features, n_units)
            self.output = nn.Linear(n_units, n_features)
        self.skip = nn.Linear(n_features, n_features, bias=False)
        self.register_buffer("origin", torch.zeros(n_features))

    @classmethod
    def from_network(cls, network, dtype=None, device=None):
        """The module of a :class:`~skconvexscore._network.ScoreNetwork`.

        ``dtype`` defaults to float64 and ``device`` to the CPU (whatever
        torch's default device); they take the names of
        :func:`~skconvexscore._devices.resolve_dtype` (float32 or float64, as a
        torch dtype, a string or a NumPy dtype) and
        :func:`~skconvexscore._devices.resolve_device`.
        """
        device = resolve_device("cpu" if device is None else device)
        # float64 on every device unless asked: a module is a copy of the fit, not a sampler
        dtype = torch.float64 if dtype is None else resolve_dtype(dtype, device)
        with torch.device(device):
            module = cls(network.n_features, network.n_units, network.activation)
        with torch.no_grad():
            for param, value in (
                (module.hidden.weight, network.hidden_weights),
                (module.hidden.bias, network.hidden_biases),
                (module.output.weight, network.output_weights.T),
                (module.output.bias, network.output_bias),
                (module.skip.weight, network.skip_weights),
                (module.origin, network.origin),
            ):
                param.data = torch.as_tensor(value, dtype=dtype, device=device).clone()
        return module

    def _dense(self, x):
        pre = self.hidden(x)
        hidden = pre.abs() if self.activation == "abs" else torch.relu(pre)
        return self.output(hidden) + self.skip(x)

    def forward(self, x):
        x = x - self.origin
        n_units = max(self.hidden.out_features, 1)
        rows = max(1, _FORWARD_CHUNK_ELEMENTS // n_units)
        if torch.is_grad_enabled() or x.dim() != 2 or x.shape[0] <= rows:
            return self._dense(x)
        # inference: bounded memory, the same numbers row by row
        return torch.cat([self._dense(chunk) for chunk in torch.split(x, rows)])
