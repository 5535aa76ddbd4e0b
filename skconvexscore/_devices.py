"""Devices and dtypes for the PyTorch parts (Langevin sampling, the first-order solver, modules).

One place decides what ``device`` and ``dtype`` arguments mean, so every entry
point accepts the same names and fails with the same messages. Torch is
imported inside the functions so that ``import skconvexscore`` stays light.
"""

import numpy as np

__all__ = ["resolve_device", "resolve_dtype"]


def resolve_device(device):
    """The :class:`torch.device` that ``device`` names.

    Parameters
    ----------
    device : str or torch.device
        ``"cpu"``, ``"cuda"``, ``"cuda:N"``, a :class:`torch.device`, or
        ``"auto"`` (CUDA when available, else the CPU).

    Returns
    -------
    device : torch.device

    Raises
    ------
    ValueError
        If the name is not a device, names one the package does not run on,
        or CUDA (or that CUDA device) is requested but unavailable.
    """
    import torch

    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a device: use 'cpu', 'cuda', 'cuda:N', a torch.device or 'auto'."
        ) from exc
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device={device!r}: skconvexscore runs on 'cpu' or 'cuda' devices only.")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available (torch "
                f"{torch.__version__}, built {'with' if torch.backends.cuda.is_built() else 'without'} "
                "CUDA). Use device='cpu', or device='auto' to pick a GPU only when there is one."
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r}: only {torch.cuda.device_count()} CUDA device(s) are visible."
            )
    return resolved


def resolve_dtype(dtype, device):
    """float64 on the CPU, float32 on a GPU, unless ``dtype`` says otherwise.

    ``dtype`` may be None, a :class:`torch.dtype`, or anything NumPy reads as a
    dtype (``"float32"``, ``np.float64``, ...); only float32 and float64 are
    accepted.
    """
    import torch

    if dtype is None:
        return torch.float64 if device.type == "cpu" else torch.float32
    if isinstance(dtype, torch.dtype):
        resolved = dtype
    else:
        try:
            name = np.dtype(dtype).name
        except TypeError:
            name = None
        resolved = {"float32": torch.float32, "float64": torch.float64}.get(name)
    if resolved not in (torch.float32, torch.float64):
        raise ValueError(f"dtype={dtype!r}: use float32 or float64.")
    return resolved
