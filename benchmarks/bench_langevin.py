"""Langevin sampling throughput: skconvexscore vs a plain eager PyTorch loop.

Chain-steps per second (chains x steps / wall time) of the unadjusted update
x <- x + (eps/2) s(x) + sqrt(eps) z for a random two-layer score network in
d = 2 with 100 and 1000 hidden units, 1e4 to 1e6 chains, on the CPU (float64,
the package default there) and on CUDA when available (float32). The baseline
is what one writes by hand: an ``nn.Sequential`` network plus a linear skip,
evaluated in an eager loop under ``torch.no_grad``, all chains in one tensor.

Usage::

    python benchmarks/bench_langevin.py            # full table
    python benchmarks/bench_langevin.py --quick    # 1e4 and 1e5 chains, shorter runs
    python benchmarks/bench_langevin.py --threads 1
"""

import argparse
import math
import os
import platform
import sys
import time

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir))

from skconvexscore import ScoreNetwork  # noqa: E402
from skconvexscore._langevin import langevin_sample  # noqa: E402

D = 2
STEP = 1e-3


def random_network(n_units, seed=0):
    """Per-output units (as the convex fit produces) and a contracting skip."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(n_units, D))
    b = rng.normal(size=n_units)
    A = np.zeros((n_units, D))
    A[np.arange(n_units), rng.integers(D, size=n_units)] = rng.normal(size=n_units) / n_units
    return ScoreNetwork(W, b, A, -np.eye(D), np.zeros(D))


def eager_baseline(network, x, n_steps, step, device, dtype, block=None):
    """The loop one writes by hand: nn.Sequential + skip, no autograd.

    ``block``: chains advanced together (default all; a large network needs
    blocks, its activations are chains x units).
    """
    network = network.recentred(0.0)
    d, units = network.n_features, network.n_units
    mlp = nn.Sequential(nn.Linear(d, units), nn.ReLU(), nn.Linear(units, d))
    skip = nn.Linear(d, d, bias=False)
    with torch.no_grad():
        mlp[0].weight.copy_(torch.as_tensor(network.hidden_weights))
        mlp[0].bias.copy_(torch.as_tensor(network.hidden_biases))
        mlp[2].weight.copy_(torch.as_tensor(network.output_weights.T))
        mlp[2].bias.copy_(torch.as_tensor(network.output_bias))
        skip.weight.copy_(torch.as_tensor(network.skip_weights))
    mlp, skip = mlp.to(device=device, dtype=dtype), skip.to(device=device, dtype=dtype)
    x = torch.as_tensor(x, device=device, dtype=dtype).clone()
    block = x.shape[0] if block is None else block
    with torch.no_grad():
        for start in range(0, x.shape[0], block):
            chains = x[start:start + block]
            for _ in range(n_steps):
                chains = (chains + 0.5 * step * (mlp(chains) + skip(chains))
                          + math.sqrt(step) * torch.randn_like(chains))
            x[start:start + block] = chains
    return x.cpu().numpy()


def timed(fn, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1e4 and 1e5 chains, shorter runs")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice); 1 is stable on a shared machine")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    chains = [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000]
    budget = 2e6 if args.quick else 2e7  # chain-steps per measurement (CPU, 100 units)
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
          + (f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""))
    header = "| device | dtype | units | chains | steps | skconvexscore (chain-steps/s) | eager PyTorch (chain-steps/s) | speed-up |"
    print(header)
    print("|" + "---|" * 8)
    for device in devices:
        dtype = torch.float64 if device.type == "cpu" else torch.float32
        for n_units in (100, 1000):
            network = random_network(n_units)
            for n in chains:
                work = budget * (100 / n_units) * (50 if device.type == "cuda" else 1)
                n_steps = int(max(3, min(200, work // n)))
                init = np.random.default_rng(1).normal(size=(n, D))
                # warm-up (CUDA context, allocator, kernels)
                langevin_sample(network, n, n_steps=1, step_size=STEP, init=init, device=device,
                                dtype=dtype, random_state=0)
                eager_baseline(network, init, 1, STEP, device, dtype)
                ours = timed(lambda: langevin_sample(network, n, n_steps=n_steps, step_size=STEP,
                                                     init=init, device=device, dtype=dtype,
                                                     random_state=0), device)
                eager = timed(lambda: eager_baseline(network, init, n_steps, STEP, device, dtype), device)
                rate, base = n * n_steps / ours, n * n_steps / eager
                print(f"| {device.type} | {str(dtype).replace('torch.', '')} | {n_units} | {n:.0e} | "
                      f"{n_steps} | {rate:.3g} | {base:.3g} | {rate / base:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
