"""Benchmark scenarios. Run with ``make bench`` or ``python -m bench``."""

import os

# LiteLLM must read its cost map from the package, never from the network.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
