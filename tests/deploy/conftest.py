from __future__ import annotations

import pytest

# Deployment tests start nginx and real chatsys processes; room on a 2-core machine.
pytestmark = pytest.mark.timeout(420)
