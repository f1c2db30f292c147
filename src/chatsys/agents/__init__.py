"""Role agents and the LLM and tool adapters they use (LiteLLM gateway, offline model).

LiteLLM reads its model cost map at import time; it must come from the installed
package, never from the network, so the setting is made before any submodule
imports LiteLLM.
"""

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
