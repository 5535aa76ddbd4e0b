"""Shared test configuration.

The networks in these tests are small: one torch thread is faster than
several, and avoids oversubscription when the machine is busy.
"""

import torch

torch.set_num_threads(1)
