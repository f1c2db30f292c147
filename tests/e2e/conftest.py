from __future__ import annotations

import pytest

# e2e tests start real processes; give them room on a 2-core machine.
pytestmark = pytest.mark.timeout(300)
