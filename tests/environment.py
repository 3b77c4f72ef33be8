"""Loaded with `-p tests.environment` (pyproject addopts), before Django's settings.

The test process and the server processes it starts must share a SECRET_KEY,
or tokens minted here would be refused there; and the servers run with DEBUG
off, where the development key is refused.
"""

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-shared-by-the-test-process-and-its-servers")
