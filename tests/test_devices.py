"""Device and dtype arguments, shared by sampling, the first-order solver and to_torch."""

import numpy as np
import pytest
import torch

from skconvexscore import ConvexScoreMatcher
from skconvexscore._devices import resolve_device, resolve_dtype


def test_devices():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device(torch.device("cpu")).type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="not a device"):
        resolve_device("gpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:0")
    else:
        with pytest.raises(ValueError, match="CUDA device"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    for other in ("meta", "mps"):  # devices torch names but the package does not run on
        with pytest.raises(ValueError, match="'cpu' or 'cuda'"):
            resolve_device(other)


def test_dtypes():
    cpu = torch.device("cpu")
    assert resolve_dtype(None, cpu) == torch.float64
    for name in ("float32", np.float32, torch.float32, np.dtype("float32")):
        assert resolve_dtype(name, cpu) == torch.float32
    for bad in ("float16", torch.int64, "no-such-dtype", int):
        with pytest.raises(ValueError, match="float32 or float64"):
            resolve_dtype(bad, cpu)


@pytest.fixture
def default_device_meta():
    """A user who set torch's default device elsewhere (meta stands in for a GPU here)."""
    torch.set_default_device("meta")
    yield
    torch.set_default_device(None)


def test_sampling_and_modules_ignore_torch_default_device(default_device_meta):
    """Every tensor is made on the device asked for: with another default device, sampling
    on the CPU used to fail inside the noise draw, and to_torch() left the CPU."""
    X = np.random.default_rng(0).normal(size=(60, 1))
    with torch.device("cpu"):
        model = ConvexScoreMatcher(alpha=0.5).fit(X)
    samples = model.sample(50, n_steps=20, random_state=0)
    assert samples.shape == (50, 1) and np.all(np.isfinite(samples))
    module = model.to_torch()
    assert {p.device.type for p in module.parameters()} == {"cpu"}
    with torch.no_grad():
        out = module(torch.as_tensor(X[:5], device="cpu")).numpy()
    np.testing.assert_allclose(out, model.predict(X[:5]), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype, expected", [(None, torch.float64), ("float32", torch.float32),
                                             (np.float32, torch.float32),
                                             (torch.float64, torch.float64)])
def test_to_torch_takes_the_dtype_names_of_every_entry_point(dtype, expected):
    """to_torch(dtype="float32") raised a raw TypeError inside torch; it reads dtypes as
    sampling does, and its module computes predict in that precision."""
    X = np.random.default_rng(0).normal(size=(60, 1))
    model = ConvexScoreMatcher(alpha=0.5).fit(X)
    module = model.to_torch(dtype=dtype)
    assert {p.dtype for p in module.parameters()} == {expected}
    with torch.no_grad():
        out = module(torch.as_tensor(X[:5], dtype=expected)).double().numpy()
    rtol = 1e-12 if expected == torch.float64 else 1e-5
    np.testing.assert_allclose(out, model.predict(X[:5]), rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dtype", [torch.int64, "float16", "int32"])
def test_to_torch_rejects_other_dtypes(dtype):
    model = ConvexScoreMatcher(alpha=0.5).fit(np.random.default_rng(0).normal(size=(30, 1)))
    with pytest.raises(ValueError, match="float32 or float64"):
        model.to_torch(dtype=dtype)
