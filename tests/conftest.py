"""Test-wide settings: offline, one torch thread (small models; tests run beside each other)."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GENAUG_NO_PLUGINS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
