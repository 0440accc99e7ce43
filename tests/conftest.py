"""Shared pytest setup."""

import torch

# Tests use tiny tensors: one thread avoids oversubscribing the (often 2) shared cores.
torch.set_num_threads(1)
